"""A small HTTP proxy in front of the real S3 server that fails chosen requests.

The proxy forwards every request unchanged (the Host header too, so SigV4 signatures still
hold) unless ``rule(method, path)`` returns a status code, then it answers that status with an
S3 error body; ``"reset"`` closes the connection without an answer.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Rule = Callable[[str, str], "int | str | None"]


class FaultProxy:
    def __init__(self, upstream: str, rule: Rule) -> None:
        target = urlsplit(upstream)
        self.rule = rule
        self.seen: list[tuple[str, str, object]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                verdict = proxy.rule(self.command, self.path)
                proxy.seen.append((self.command, self.path, verdict))
                if verdict == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if isinstance(verdict, int):
                    payload = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError'
                        b"</Code><Message>injected</Message></Error>"
                    )
                    self.send_response(verdict)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
