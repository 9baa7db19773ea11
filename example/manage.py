#!/usr/bin/env python3
"""Django's command-line utility for the bayou example project.

    python example/manage.py migrate
    python example/manage.py runserver 127.0.0.1:8000

Works from any current directory: the project directory is put on ``sys.path``.
"""

import os
import sys
from pathlib import Path


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
