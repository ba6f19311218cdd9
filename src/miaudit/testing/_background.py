"""A local HTTP server run in a background thread: start, stop, and ``with`` blocks; the
secret it may require, read from the environment."""

from __future__ import annotations

import hmac
import os
import threading
from typing import Self

from miaudit.errors import ConfigError


def write_json(handler, status: int, data: bytes, headers: dict | None = None) -> None:
    """Send ``data`` (a JSON body, already encoded) as the answer of a
    ``BaseHTTPRequestHandler``, with its length and any extra ``headers``."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


class BackgroundServer:
    """Mixin for the test servers: ``self._httpd`` (a ``socketserver`` server) is served
    by a daemon thread between :meth:`start` and :meth:`stop` (or a ``with`` block)."""

    _httpd: object
    _thread: threading.Thread | None = None
    _expected: str | None = None
    #: Name of the serving thread.
    thread_name = "miaudit-serve"

    def _listen(self, server_class, handler, host: str, port: int, *,
                secret_env: str | None = None, option: str = "auth_env") -> None:
        """Read the required secret (if ``secret_env`` names a variable), then bind
        ``server_class((host, port), handler)`` with ``app`` set to ``self``."""
        if secret_env is not None:
            self._expected = os.environ.get(secret_env)
            if not self._expected:
                raise ConfigError(f"The environment variable {secret_env} ({option}) is not "
                                  "set or empty.")
        try:
            self._httpd = server_class((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") \
                from None
        self._httpd.app = self

    def _matches_secret(self, value: str | None, prefix: str = "") -> bool:
        """Whether a request's credential is ``prefix`` + the secret (always, without one);
        compared in constant time."""
        if self._expected is None:
            return True
        want = f"{prefix}{self._expected}"
        return value is not None and hmac.compare_digest(value.encode(), want.encode())

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop`."""
        self._httpd.serve_forever(poll_interval=0.1)

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, name=self.thread_name,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
