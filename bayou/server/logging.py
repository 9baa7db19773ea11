"""Logging set-up for the ``bayou`` command (library use leaves logging alone).

Loggers: ``bayou.server`` (lifecycle, errors), ``bayou.access`` (one line per
request / WebSocket event, common log format). ``--verbosity``: 0 warnings
only, 1 info (default), 2 debug, 3 debug plus asyncio debug mode.
"""

from __future__ import annotations

import logging
import sys

from bayou.server.config import Config

__all__ = ["DEFAULT_LOG_FORMAT", "configure_logging"]

DEFAULT_LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s %(message)s"

_LEVELS = {0: logging.WARNING, 1: logging.INFO}


def configure_logging(config: Config) -> None:
    """Configure the root handler (stderr) and the access log from ``config``.

    The access log goes to the root handler by default, to stdout with
    ``access_log_path="-"``, or appended to a file; it is off when
    ``config.access_log`` is False or, unless a path is given, at verbosity 0.
    """
    level = _LEVELS.get(config.verbosity, logging.DEBUG)
    logging.basicConfig(
        level=level, format=config.log_fmt or DEFAULT_LOG_FORMAT, stream=sys.stderr, force=True
    )
    logging.getLogger("bayou").setLevel(level)
    if config.verbosity >= 3:
        logging.getLogger("asyncio").setLevel(logging.DEBUG)

    access = logging.getLogger("bayou.access")
    for handler in list(access.handlers):
        access.removeHandler(handler)
        handler.close()
    access.propagate = True
    if not config.access_log:
        access.setLevel(logging.CRITICAL + 1)
        return
    if config.access_log_path is None:
        access.setLevel(logging.NOTSET)
        return
    stream_handler: logging.Handler
    if config.access_log_path == "-":
        stream_handler = logging.StreamHandler(sys.stdout)
    else:
        stream_handler = logging.FileHandler(config.access_log_path, encoding="utf-8")
    # The lines are already in common log format; no logging prefix.
    stream_handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(stream_handler)
    access.setLevel(logging.INFO)
    access.propagate = False
