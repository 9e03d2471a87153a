"""The server side of Thrift's SASL transport with the PLAIN mechanism (RFC 4616).

HiveServer2 clients (the Hive JDBC driver, beeline, ODBC drivers, PyHive) open a Thrift
``TSaslClientTransport``. Its negotiation messages are a status byte, a 4-byte big-endian
length and a payload:

1. client ``START`` with the mechanism name (``PLAIN``);
2. client ``OK`` or ``COMPLETE`` with ``authzid NUL authcid NUL password``;
3. server ``COMPLETE`` (signed in) or ``BAD`` with the catalogued reason, then it closes.

After that every Thrift message travels in frames: a 4-byte big-endian length and the bytes
(PLAIN negotiates no integrity or privacy layer: the socket is the gateway's TLS connection,
so the password and the rows travel encrypted).
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

from thrift.transport.TTransport import TTransportBase, TTransportException

from lakehouse.errors import ErrorCode, LakehouseError, error

START, OK, BAD, ERROR, COMPLETE = 1, 2, 3, 4, 5
#: Largest negotiation payload or frame accepted (a statement is far smaller).
MAX_MESSAGE = 16 * 1024 * 1024


class SaslServerTransport(TTransportBase):  # type: ignore[misc]
    """One accepted connection: PLAIN negotiation, then length-framed reads and writes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._rbuf = b""
        self._rpos = 0
        self._wbuf: list[bytes] = []
        self._open = True

    # -- negotiation ---------------------------------------------------------------------
    def negotiate(self, authenticate: Callable[[str, str], Any]) -> Any:
        """Run the PLAIN exchange; ``authenticate(user, password)``'s result, or raise
        ``LH-SQL-001`` (bad handshake) or the authenticator's error, told to the client."""
        status, mechanism = self._message()
        if status != START:
            self._refuse(error(ErrorCode.SQL_AUTH_HANDSHAKE, reason="expected a START message"))
        if mechanism.strip().upper() != b"PLAIN":
            self._refuse(
                error(ErrorCode.SQL_AUTH_HANDSHAKE, reason="only the PLAIN mechanism is offered")
            )
        status, response = self._message()
        if status not in (OK, COMPLETE):
            self._refuse(error(ErrorCode.SQL_AUTH_HANDSHAKE, reason="expected the credentials"))
        parts = response.split(b"\0")
        if len(parts) != 3 or not parts[1]:
            self._refuse(error(ErrorCode.SQL_AUTH_HANDSHAKE, reason="malformed PLAIN credentials"))
        try:
            user, password = parts[1].decode("utf-8"), parts[2].decode("utf-8")
        except UnicodeDecodeError:
            self._refuse(error(ErrorCode.SQL_AUTH_HANDSHAKE, reason="credentials not UTF-8"))
        try:
            who = authenticate(user, password)
        except LakehouseError as exc:
            self._refuse(exc)
        self._send(COMPLETE, b"")
        return who

    def _refuse(self, exc: LakehouseError) -> Any:
        with contextlib.suppress(OSError):
            self._send(BAD, f"[{exc.code.id}] {exc.render()}".encode())
        raise exc

    def _message(self) -> tuple[int, bytes]:
        head = self._exact(5)
        status, length = head[0], struct.unpack(">I", head[1:])[0]
        if status not in (START, OK, BAD, ERROR, COMPLETE) or length > MAX_MESSAGE:
            raise error(ErrorCode.SQL_AUTH_HANDSHAKE, reason="not a SASL negotiation message")
        return status, self._exact(length)

    def _send(self, status: int, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">BI", status, len(payload)) + payload)

    def _exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise TTransportException(TTransportException.END_OF_FILE, "peer closed")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    # -- TTransportBase ------------------------------------------------------------------
    def isOpen(self) -> bool:  # noqa: N802 (Thrift's name)
        return self._open

    def open(self) -> None:
        pass

    def close(self) -> None:
        if self._open:
            self._open = False
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()

    def read(self, sz: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            length = struct.unpack(">I", self._exact(4))[0]
            if length > MAX_MESSAGE:
                raise TTransportException(TTransportException.SIZE_LIMIT, "frame too large")
            self._rbuf, self._rpos = self._exact(length), 0
        out = self._rbuf[self._rpos : self._rpos + sz]
        self._rpos += len(out)
        return out

    def write(self, buf: bytes) -> None:
        self._wbuf.append(bytes(buf))

    def flush(self) -> None:
        data = b"".join(self._wbuf)
        self._wbuf = []
        self.sock.sendall(struct.pack(">I", len(data)) + data)
