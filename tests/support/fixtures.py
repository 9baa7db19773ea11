"""Shared fixtures. Area owners add their fixture modules to tests/conftest.py."""
