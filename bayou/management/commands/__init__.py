"""bayou's management commands; Django finds them when ``"bayou"`` is in INSTALLED_APPS."""

__all__: list[str] = []
