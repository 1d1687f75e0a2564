"""Slow HTTP clients, as an attacker runs them: many raw sockets that send a request a byte at a time.

Used by tests/test_slow_clients.py and bench/slow_clients.py against a real `connector serve`.
One thread drives every socket (non-blocking), so 200 of them cost the test one thread.
A connection the server drops is opened again, as an attacker's would be, and counted.
"""

from __future__ import annotations

import socket
import threading
import time

# A signed-looking webhook request whose body never finishes: it claims 100 KB.
BODY_HEAD = (b"POST /webhooks/jira HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n"
             b"X-Atlassian-Webhook-Identifier: slow\r\nContent-Length: 100000\r\n\r\n")
# Headers that never finish: the request line, then header bytes one at a time.
HEADER_HEAD = b"POST /webhooks/jira HTTP/1.1\r\nHost: receiver\r\n"
HEADER_TRICKLE = b"X-Padding: " + b"a" * 200_000


class SlowClients:
    """`count` connections to host:port, each trickling `mode` ("body" or "headers") at one
    byte per `interval` seconds. `reconnect=False` leaves a dropped connection closed."""

    def __init__(self, host: str, port: int, count: int, mode: str = "body", interval: float = 1.0,
                 reconnect: bool = True):
        if mode not in ("body", "headers"):
            raise ValueError(f"mode {mode!r}; use body or headers")
        self.address = (host, port)
        self.count = count
        self.mode = mode
        self.interval = interval
        self.reconnect = reconnect
        self.sockets: list[socket.socket | None] = []
        self.sent: list[int] = []
        self.dropped = 0  # connections the server closed
        self.opened = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self) -> socket.socket | None:
        sock = socket.socket()
        sock.settimeout(5)
        try:
            sock.connect(self.address)
            sock.sendall(BODY_HEAD if self.mode == "body" else HEADER_HEAD)
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        self.opened += 1
        return sock

    def start(self) -> "SlowClients":
        for _ in range(self.count):
            self.sockets.append(self._open())
            self.sent.append(0)
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._thread.start()
        return self

    def open_count(self) -> int:
        return sum(1 for s in self.sockets if s is not None)

    def _closed_by_server(self, sock: socket.socket) -> bool:
        try:
            return sock.recv(65536) == b""  # an answer (408/400) or EOF: the server is done with us
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for i, sock in enumerate(self.sockets):
                if sock is None:
                    if self.reconnect and not self._stop.is_set():
                        self.sockets[i], self.sent[i] = self._open(), 0
                    continue
                byte = b"x" if self.mode == "body" else HEADER_TRICKLE[self.sent[i] % len(HEADER_TRICKLE):][:1]
                try:
                    if self._closed_by_server(sock):
                        raise ConnectionResetError
                    sock.send(byte)
                    self.sent[i] += 1
                except OSError:
                    sock.close()
                    self.sockets[i] = None
                    self.dropped += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for sock in self.sockets:
            if sock is not None:
                sock.close()
        self.sockets = [None] * len(self.sockets)


def lying_request(host: str, port: int, claimed: int = 1024 * 1024, sent: bytes = b'{"webhook') -> socket.socket:
    """A request that claims `claimed` body bytes and sends only `sent`, then waits."""
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(b"POST /webhooks/jira HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (claimed, sent))
    return sock


def wait_closed(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closed `sock` (EOF or reset), or None if it is still open."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < timeout:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - started
    return None
