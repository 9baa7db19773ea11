"""Django management commands shipped by the bayou app (``runserver``, ``runworker``)."""
