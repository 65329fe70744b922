"""The wire format between the ``segflow`` launcher and the command daemon (stdlib only).

Frames of one channel byte, a 4-byte big-endian length and the payload. The launcher sends
one ``r`` frame (the request, JSON); the daemon answers ``o`` (stdout bytes) and ``e``
(stderr bytes) frames, then ``x`` (the exit code, ASCII), or a lone ``b`` (busy).

>>> import socket
>>> a, b = socket.socketpair()
>>> write_frame(a, b"o", b"hello")
>>> read_frame(b)
(b'o', b'hello')
>>> a.close(); read_frame(b) is None
True
"""

from __future__ import annotations

import socket
import struct

__all__ = ["read_frame", "write_frame"]

_HEADER = struct.Struct(">cI")


def write_frame(sock: socket.socket, channel: bytes, payload: bytes) -> None:
    """Send one frame."""
    sock.sendall(_HEADER.pack(channel, len(payload)) + payload)


def read_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """Receive one frame, or None when the other side closed the connection first."""
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    channel, size = _HEADER.unpack(header)
    payload = _read_exactly(sock, size)
    return None if payload is None else (channel, payload)


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        part = sock.recv(left)
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
