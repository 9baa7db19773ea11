"""bayou: realtime for Django.

A Channels-compatible API (``channels.X`` becomes ``bayou.X``), its own ASGI
interface server and channel layers. This module imports nothing heavy.
"""

__version__ = "0.1.0"

DEFAULT_CHANNEL_LAYER = "default"

__all__ = ["DEFAULT_CHANNEL_LAYER", "__version__"]
