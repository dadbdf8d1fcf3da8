"""The search process's end of the link to a relay trial: listen, accept the relay, send, say done.

Why TCP rather than a file the relay tails: the connection doubles as the start-up handshake (the relay is ready
when it connects) and as a liveness signal both ways. When the search process dies, however abruptly, the kernel
closes the socket and the relay stops the experiment and exits; when the relay dies, the next report fails at
once instead of writing to a file nobody reads.
"""
from __future__ import annotations

import logging
import secrets
import socket
from typing import Any

from . import _protocol as protocol

__all__ = ['RelayLink']

_logger = logging.getLogger('nni.proxyless.webui')

_ACK_TIMEOUT = 30.0


class RelayLink:
    """A localhost listener that relay trials connect to, one at a time, proving themselves with a token."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._reader: Any = None

    @property
    def port(self) -> int:
        """The port the relay connects to."""
        assert self._listener is not None, 'listen() first'
        return self._listener.getsockname()[1]

    @property
    def connected(self) -> bool:
        """Whether a relay is connected."""
        return self._conn is not None

    def listen(self) -> None:
        """Open the listener on a free localhost port."""
        self._listener = socket.create_server(('127.0.0.1', 0))
        self._listener.settimeout(0.5)

    def accept(self, timeout: float) -> dict[str, Any] | None:
        """Wait up to about half a second for a relay; its hello (name, NNI id) once one has proved itself."""
        assert self._listener is not None, 'listen() first'
        try:
            conn, _ = self._listener.accept()
        except TimeoutError:
            return None
        conn.settimeout(max(timeout, 1.0))
        reader = conn.makefile('rb')
        try:
            hello = protocol.decode(reader.readline())
        except (OSError, ValueError):
            hello = None
        if not isinstance(hello, dict) or not secrets.compare_digest(str(hello.get('token')), self.token):
            _logger.warning('Ignored a connection that did not present the relay token')
            reader.close()
            conn.close()
            return None
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn, self._reader = conn, reader
        return hello

    def send(self, message: dict[str, Any]) -> str | None:
        """Send one message; ``None`` when the relay acknowledged it, else what went wrong."""
        assert self._conn is not None, 'no relay connected'
        try:
            self._conn.settimeout(_ACK_TIMEOUT)
            self._conn.sendall(protocol.encode(message))
            answer = protocol.decode(self._reader.readline())
        except (OSError, ValueError):
            answer = None
        if isinstance(answer, dict) and answer.get('ok'):
            return None
        return answer.get('error') if isinstance(answer, dict) else 'no reply'

    def finish(self, failed: bool) -> None:
        """Tell the connected relay the trial is done (``failed`` or not) and wait until it has exited."""
        assert self._conn is not None, 'no relay connected'
        try:
            self._conn.settimeout(10)
            self._conn.sendall(protocol.encode({'type': protocol.DONE, 'failed': failed}))
            self._reader.read()  # returns at EOF: the relay has exited
        except OSError as exc:
            _logger.warning('Relay did not confirm the end of the search: %s', exc)
        finally:
            self._reader.close()
            self._conn.close()
            self._conn = self._reader = None

    def close(self) -> None:
        """Close the listener: a relay still starting up now fails to connect and exits."""
        if self._listener is not None:
            self._listener.close()
