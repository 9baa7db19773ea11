"""Every buffer and size bayou enforces, in one place, with safe defaults.

The settings reference (docs/reference/settings.md) documents each field; the
CLI exposes them as ``--limit-*`` flags.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class Limits:
    # HTTP/1.1 request head
    max_request_line: int = 8 * KiB
    """Longest request line (method, target, version), bytes -> 414/400 beyond."""
    max_header_bytes: int = 64 * KiB
    """Total size of all header lines of one request head -> 431 beyond."""
    max_headers: int = 100
    """Number of header fields in one request -> 431 beyond."""
    max_trailer_bytes: int = 8 * KiB
    """Total size of chunked-body trailers -> 431 beyond."""
    max_chunk_extension: int = 1 * KiB
    """Longest chunk extension on one chunk-size line -> 400 beyond."""
    max_pipelined_requests: int = 16
    """Requests parsed ahead of the one being answered before reading pauses."""
    http_read_buffer: int = 64 * KiB
    """Request body bytes buffered while the app is not receiving before reading pauses."""

    # WebSocket
    ws_max_message_size: int = 1 * MiB
    """Largest incoming message after reassembly and decompression -> close 1009. 0 = unlimited."""
    ws_max_frame_size: int = 1 * MiB
    """Largest incoming frame payload -> close 1009. 0 = unlimited."""
    ws_max_send_buffer: int = 4 * MiB
    """Cap on the transport buffer for frames the server sends on its own (pongs)
    to a client that does not read: beyond it, reading from that client pauses
    until the buffer drains. (The application's ``send`` already waits at
    ``ws_send_high_water``.) See docs/topics/flow-control.md."""
    ws_send_high_water: int = 64 * KiB
    """Transport write-buffer high-water mark: above it, the app's send() waits."""
    ws_incoming_queue: int = 64
    """Complete messages buffered for an app that is not calling receive() before reading pauses."""
    ws_incoming_queue_bytes: int = 1 * MiB
    """Payload bytes of complete messages buffered for an app that is not calling
    receive() before reading pauses (text counted by its in-memory size). With
    ``ws_incoming_queue`` it bounds what one connection holds for its app to
    about this much plus one read and one message being reassembled."""
    ws_early_data: int = 64 * KiB
    """Bytes a client may send behind its upgrade request before the app accepts
    (or denies) before reading pauses."""
