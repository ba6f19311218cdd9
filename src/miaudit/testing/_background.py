"""A local HTTP server run in a background thread: start, stop, and ``with`` blocks."""

from __future__ import annotations

import threading
from typing import Self


class BackgroundServer:
    """Mixin for the test servers: ``self._httpd`` (a ``socketserver`` server) is served
    by a daemon thread between :meth:`start` and :meth:`stop` (or a ``with`` block)."""

    _httpd: object
    _thread: threading.Thread | None = None
    #: Name of the serving thread.
    thread_name = "miaudit-serve"

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
