"""``manage.py runworker CHANNEL [CHANNEL ...]``: run a Worker on channel-layer channels.

Same arguments and errors as Channels' ``runworker``. The worker stops gracefully on
SIGTERM/SIGINT (see :mod:`bayou.worker`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management import BaseCommand, CommandError
from django.core.management.base import CommandParser

from bayou import DEFAULT_CHANNEL_LAYER
from bayou.layers import get_channel_layer
from bayou.worker import Worker

__all__ = ["Command"]

# Channels' logger name: it sits under Django's "django" logger, so with the default
# LOGGING the start-up line shows on the console when DEBUG is on, as it does with
# Channels; projects that configured this name keep their configuration.
logger = logging.getLogger("django.channels.worker")


class Command(BaseCommand):
    help = "Runs a channel-layer worker for the given channels."
    leave_locale_alone = True
    #: The worker class to run (replaceable by subclasses and tests).
    worker_class: type[Worker] = Worker

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--layer",
            action="store",
            dest="layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="Channel layer alias to use, if not the default.",
        )
        parser.add_argument("channels", nargs="+", help="Channels to listen on.")

    def handle(self, *args: Any, **options: Any) -> None:
        from bayou.routing import get_default_application

        self.verbosity = options.get("verbosity", 1)
        self.channel_layer = get_channel_layer(options["layer"])
        if self.channel_layer is None:
            raise CommandError("You do not have any CHANNEL_LAYERS configured.")
        logger.info("Running worker for channels %s", options["channels"])
        worker = self.worker_class(
            application=get_default_application(),
            channels=options["channels"],
            channel_layer=self.channel_layer,
        )
        worker.run()
