"""Make ``harness`` and ``clients`` importable as run.py does (bench/ on sys.path)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
