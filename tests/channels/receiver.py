"""A real local HTTP server that records every request it receives (for webhook and Alipay tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[[Received], tuple[int, bytes, str]]
"""A request → (status, body, content type)."""


def ok(_request: Received) -> tuple[int, bytes, str]:
    return 200, b'{"received":true}', "application/json"


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    respond: Responder = ok
    headers: dict[str, str] = field(default_factory=dict)
    """Sent with every answer (``Retry-After`` …)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def record(self, request: Received) -> None:
        with self.lock:
            self.requests.append(request)
        with self.arrived:
            self.arrived.notify_all()

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@contextmanager
def receiver(respond: Responder = ok, headers: dict[str, str] | None = None) -> Iterator[Receiver]:
    """Serve on 127.0.0.1 (a free port) in a background thread while the block runs."""
    state: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            assert state is not None
            state.record(request)
            status, body, content_type = state.respond(request)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in state.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client went away (a killed worker)
                pass

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Receiver(
        f"http://127.0.0.1:{server.server_address[1]}/hooks", respond=respond, headers=headers or {}
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
