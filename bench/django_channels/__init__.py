"""The benchmark Django project on channels: settings, consumers, the ASGI application."""
