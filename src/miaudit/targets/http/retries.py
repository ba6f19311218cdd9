"""Retries and pacing of an HTTP target: server messages (redacted), Retry-After, a token
bucket for the rate limit."""

from __future__ import annotations

import json
import math
import threading
import time
from email.utils import parsedate_to_datetime

_MESSAGE_CHARS = 300


MAX_RETRY_AFTER = 600.0


def server_message(resp) -> str:
    """The server's own explanation, one line, truncated."""
    text = ""
    try:
        data = resp.json()
    except ValueError:
        text = resp.text
    else:
        if isinstance(data, dict):
            for key in ("error", "message", "detail", "errors"):
                if key in data:
                    value = data[key]
                    if isinstance(value, dict):
                        value = value.get("message", value)
                    text = value if isinstance(value, str) else json.dumps(value)
                    break
            else:
                text = json.dumps(data)
        else:
            text = json.dumps(data)
    text = " ".join(str(text).split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


def hint(status: int) -> str:
    hints = {401: " (check the credentials in auth_env / auth_header)",
             403: " (the credentials lack access to this endpoint)",
             404: " (check the URL)", 405: " (the endpoint does not accept POST)",
             413: " (lower batch_size)", 422: " (check the request mapping)",
             400: " (check the request mapping and the number of features)"}
    if 300 <= status < 400:
        return " (the endpoint redirects; give the final URL)."
    return hints.get(status, "") + "."


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class TokenBucket:
    """At most ``rate`` acquisitions per second, evenly spaced (one token)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)
