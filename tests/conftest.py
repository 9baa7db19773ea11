"""Fixtures live in tests/support/; they are registered here."""

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.redis",
]
