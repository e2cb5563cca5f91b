"""A generated local site for crawl benchmarks: N hosts (ports on 127.0.0.1), each with M articles.

Run as a separate process so serving never competes with the crawler for the GIL:
    python benchmarks/bench_site.py --hosts 20 --articles 100     # prints one line: the ports, as JSON
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# a vocabulary of its own (not the test site's), one string so it stays one line of data
WORDS = (  # noqa: SIM905
    "harbour lantern quarry meadow thistle copper ledger pulley kettle saddle orchard furnace chisel "
    "compass lattice mortar tundra glacier beacon cellar parcel ribbon anchor barley spindle marble "
    "canopy ferry cobble hinge tavern pepper willow basket engine signal ladder candle"
).split()


def article(host: int, n: int) -> bytes:
    rng = random.Random(host * 100_003 + n)
    paragraphs = "".join(
        "<p>"
        + " ".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(9, 16))).capitalize() + "."
            for _ in range(rng.randint(4, 7))
        )
        + "</p>"
        for _ in range(rng.randint(6, 9))
    )
    links = "".join(f'<a href="/{rng.randint(1, 100)}.html">related</a> ' for _ in range(5))
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Host {host} article {n}</title>'
        f'<meta name="author" content="Writer {n % 17}"></head><body><nav><a href="/">Home</a></nav>'
        f"<article><h1>Host {host} article {n}</h1>{paragraphs}</article><aside>{links}</aside>"
        f"<footer>Copyright · Contact · Privacy</footer></body></html>"
    ).encode()


class Handler(BaseHTTPRequestHandler):
    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; with Nagle on, the second waits ~40 ms for an ACK
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    protocol_version = "HTTP/1.1"
    host_number = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/robots.txt":
            body, ctype = b"User-agent: *\nAllow: /\n", "text/plain"
        else:
            name = self.path.strip("/").removesuffix(".html")
            body, ctype = (article(self.host_number, int(name)) if name.isdigit() else b"<html></html>"), "text/html"
        self.send_response(200)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(hosts: int) -> list[int]:
    ports = []
    for number in range(hosts):
        handler = type(f"Host{number}", (Handler,), {"host_number": number})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
        server.daemon_threads = True
        server.request_queue_size = 256  # the default backlog of 5 refuses bursts of connections
        server.server_bind()
        server.server_activate()
        ports.append(server.server_address[1])
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return ports


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(serve(args.hosts)), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
