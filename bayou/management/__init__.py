"""Django management commands shipped by the bayou app (``runserver``, ``runworker``)."""

__all__: list[str] = []
