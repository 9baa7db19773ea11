"""Message serializers for the Redis layers (``serializer_format``).

Same registry API as ``channels_redis.serializers``: ``registry.register_serializer(name,
cls)`` and ``registry.get_serializer(name, **options)``; ``"msgpack"`` (default) and
``"json"`` are registered. A serializer turns a message dict into bytes and back;
:class:`BaseMessageSerializer` adds optional symmetric encryption (Fernet, with key
rotation: the first key encrypts, every key decrypts; needs the ``cryptography``
package) and an optional random prefix.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import msgpack  # type: ignore[import-untyped]

__all__ = [
    "BaseMessageSerializer",
    "JSONSerializer",
    "MissingSerializer",
    "MsgPackSerializer",
    "SerializerDoesNotExist",
    "SerializersRegistry",
    "registry",
]


class SerializerDoesNotExist(KeyError):
    """No serializer is registered under the requested format name."""


class BaseMessageSerializer(abc.ABC):
    """Bytes <-> message, with optional encryption and random prefix.

    ``serialize`` = :meth:`as_bytes`, then encrypt (if keys were given), then prepend
    ``random_prefix_length`` random bytes; ``deserialize`` reverses the steps. Encrypted
    messages older than ``expiry + 10`` seconds are refused on decryption.
    """

    def __init__(
        self,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        random_prefix_length: int = 0,
        expiry: float | None = None,
    ) -> None:
        self.random_prefix_length = random_prefix_length
        self.expiry = expiry
        self.crypter: Any = None
        if symmetric_encryption_keys:
            if isinstance(symmetric_encryption_keys, (str, bytes)):
                raise ValueError("symmetric_encryption_keys must be a list of possible keys")
            try:
                from cryptography.fernet import (  # type: ignore[import-not-found,unused-ignore]
                    MultiFernet,
                )
            except ImportError:
                raise ValueError(
                    "Cannot run with encryption without 'cryptography' installed "
                    "(pip install cryptography)."
                ) from None
            self.crypter = MultiFernet([self.make_fernet(key) for key in symmetric_encryption_keys])

    def make_fernet(self, key: str | bytes) -> Any:
        """A Fernet for ``key``: any length of secret, stretched with SHA-256."""
        from cryptography.fernet import Fernet  # type: ignore[import-not-found,unused-ignore]

        if isinstance(key, str):
            key = key.encode("utf-8")
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key).digest()))

    @abc.abstractmethod
    def as_bytes(self, message: Any) -> bytes:
        """Encode ``message`` (no encryption, no prefix)."""

    @abc.abstractmethod
    def from_bytes(self, data: bytes) -> Any:
        """Decode what :meth:`as_bytes` produced."""

    def serialize(self, message: Any) -> bytes:
        """The bytes stored in Redis for ``message``."""
        data = self.as_bytes(message)
        if self.crypter is not None:
            data = self.crypter.encrypt(data)
        if self.random_prefix_length > 0:
            data = os.urandom(self.random_prefix_length) + data
        return data

    def deserialize(self, data: bytes) -> Any:
        """The message stored as ``data``; raises if it cannot be decrypted or decoded."""
        if self.random_prefix_length > 0:
            data = data[self.random_prefix_length :]
        if self.crypter is not None:
            ttl = None if self.expiry is None else int(self.expiry) + 10
            data = self.crypter.decrypt(data, ttl)
        return self.from_bytes(data)


class MissingSerializer(BaseMessageSerializer):
    """Placeholder that fails on use (e.g. a format whose library is not installed)."""

    exception: Exception | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise self.exception or RuntimeError("This serializer is not available")

    def as_bytes(self, message: Any) -> bytes:  # pragma: no cover - never constructed
        raise NotImplementedError

    def from_bytes(self, data: bytes) -> Any:  # pragma: no cover - never constructed
        raise NotImplementedError


class JSONSerializer(BaseMessageSerializer):
    """UTF-8 JSON. Cannot carry ``bytes`` values (use msgpack for those)."""

    def as_bytes(self, message: Any) -> bytes:
        return json.dumps(message, separators=(",", ":")).encode("utf-8")

    def from_bytes(self, data: bytes) -> Any:
        return json.loads(data)


class MsgPackSerializer(BaseMessageSerializer):
    """msgpack with separate ``bytes`` and ``str`` types (the default)."""

    def as_bytes(self, message: Any) -> bytes:
        data: bytes = msgpack.packb(message, use_bin_type=True)
        return data

    def from_bytes(self, data: bytes) -> Any:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)


class SerializersRegistry:
    """Format name -> serializer class."""

    def __init__(self) -> None:
        self._registry: dict[str, type[Any]] = {}

    def register_serializer(self, format: str, serializer_class: type[Any]) -> None:
        """Register (or replace) ``format``.

        The class must subclass :class:`BaseMessageSerializer` or at least have
        ``serialize`` and ``deserialize`` methods (``AssertionError`` otherwise).
        """
        if not issubclass(serializer_class, BaseMessageSerializer) and not (
            callable(getattr(serializer_class, "serialize", None))
            and callable(getattr(serializer_class, "deserialize", None))
        ):
            raise AssertionError(
                f"{serializer_class!r} must subclass BaseMessageSerializer or define "
                "serialize() and deserialize()"
            )
        self._registry[format] = serializer_class

    def get_serializer(self, format: str, *args: Any, **kwargs: Any) -> Any:
        """A new instance of the serializer for ``format`` (``SerializerDoesNotExist``)."""
        try:
            serializer_class = self._registry[format]
        except KeyError:
            raise SerializerDoesNotExist(format) from None
        return serializer_class(*args, **kwargs)


#: The global registry the layers look ``serializer_format`` up in.
registry = SerializersRegistry()
registry.register_serializer("json", JSONSerializer)
registry.register_serializer("msgpack", MsgPackSerializer)
