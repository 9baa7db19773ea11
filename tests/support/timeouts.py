"""Every test timeout is scaled from one environment variable.

``BAYOU_TEST_TIMEOUT_SCALE=3 pytest`` gives slow machines three times longer.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("BAYOU_TEST_TIMEOUT_SCALE", "1") or "1")


def scaled(seconds: float) -> float:
    """``seconds`` multiplied by BAYOU_TEST_TIMEOUT_SCALE."""
    return seconds * SCALE
