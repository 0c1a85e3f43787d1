"""Serve a JWKS file over HTTP on loopback, for Envoy's remote_jwks mode and key-rotation tests.

The file is read on every request, so rotating keys is rewriting the file (DevKeyring does).

    python -m devstack.jwks_server .devstack/jwt/jwks.json --port 8765
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.process import free_port

JWKS_PATH = "/.well-known/jwks.json"


@dataclass
class JwksServer:
    jwks_file: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"  # 0.0.0.0 only inside a container network (docker-compose)
    requests: int = field(default=0, init=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{JWKS_PATH}"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != JWKS_PATH:
                    self.send_error(404)
                    return
                owner.requests += 1
                body = owner.jwks_file.read_bytes()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests print nothing
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="jwks-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.jwks_server")
    parser.add_argument("jwks_file", type=Path)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = JwksServer(args.jwks_file, port=args.port, host=args.host)
    server.start()
    print(server.uri, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
