"""The benchmark Django project on bayou: settings, consumers, the ASGI application."""
