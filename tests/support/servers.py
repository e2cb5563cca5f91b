"""What the local test servers share: a threaded HTTP server on 127.0.0.1:0 in a daemon thread, whose
handler class reaches its owner through `owner`, with Nagle off and client hang-ups kept quiet."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default listen backlog of 5 refuses bursts of concurrent clients

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-body is what several fault pages are for


class OwnedHandler(BaseHTTPRequestHandler):
    owner: Any
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; with Nagle on, the second waits ~40 ms for an ACK
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LoopbackServer:
    handler: type[OwnedHandler]

    def __init__(self) -> None:
        self.host, self.port = "127.0.0.1", 0
        self._server: QuietServer | None = None

    def start(self) -> Self:
        handler = type(f"{type(self).__name__}Handler", (self.handler,), {"owner": self})
        self._server = QuietServer((self.host, 0), handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
