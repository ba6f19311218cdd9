"""Retries and pacing of an HTTP target: the retry policy (tenacity), server messages,
Retry-After, a token bucket for the rate limit.

tenacity decides when to try again and how long to wait; what it cannot know stays here,
small and hand-written: which answers are worth another attempt (HTTP semantics, carried by
:class:`RetryableFailure`), the seconds a server asks for in ``Retry-After`` (seconds or an
HTTP date), the server's own one-line explanation and a hint per 4xx status.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from tenacity import RetryCallState, Retrying

_MESSAGE_CHARS = 300


#: Longest Retry-After honoured (seconds); a server asking for more is not retried.
MAX_RETRY_AFTER = 600.0


class RetryableFailure(Exception):
    """One attempt failed in a way worth another: 429, 408, 5xx, a timeout, a dropped
    connection, or a 200 answer that cannot be read.

    Attributes
    ----------
    problem : str
        What went wrong, one line (the last one is named when no attempt is left).
    wait_s : float or None
        Seconds the server asked to wait (``Retry-After``).
    error : Exception or None
        Raised as it is when no attempt is left (a malformed answer's own message).
    attempts : int
        Attempts made, set when the policy gives up.
    """

    def __init__(self, problem: str, wait_s: float | None = None,
                 error: Exception | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait_s = wait_s
        self.error = error
        self.attempts = 0


def backoff_wait(backoff: float) -> Callable[[Any], float]:
    """Seconds before the n-th retry: ``backoff * 2**(n-1)`` times a random factor in
    [0.5, 1.5), as tenacity's exponential wait (half of it) plus its randomised exponential
    wait (a uniform share of it)."""
    from tenacity import wait_exponential, wait_random_exponential

    return wait_exponential(multiplier=backoff / 2) + wait_random_exponential(multiplier=backoff)


def _asked_wait(state: RetryCallState) -> float | None:
    failure = state.outcome.exception() if state.outcome is not None else None
    return failure.wait_s if isinstance(failure, RetryableFailure) else None


def _give_up(state: RetryCallState) -> NoReturn:
    failure = state.outcome.exception()  # type: ignore[union-attr]
    failure.attempts = state.attempt_number  # type: ignore[union-attr]
    raise failure  # type: ignore[misc]


def retry_policy(retries: int, backoff: float) -> Retrying:
    """tenacity's :class:`~tenacity.Retrying` for one batch: at most ``retries + 1``
    attempts, retrying only :class:`RetryableFailure`; before each retry it waits the
    server's ``Retry-After`` when there is one, else :func:`backoff_wait`. It stops at once
    when ``Retry-After`` asks for more than :data:`MAX_RETRY_AFTER`. When it stops, the last
    :class:`RetryableFailure` is raised with ``attempts`` set."""
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

    exponential = backoff_wait(backoff)

    def wait(state: RetryCallState) -> float:
        asked = _asked_wait(state)
        return exponential(state) if asked is None else min(asked, MAX_RETRY_AFTER)

    def asks_too_long(state: RetryCallState) -> bool:
        asked = _asked_wait(state)
        return asked is not None and asked > MAX_RETRY_AFTER

    return Retrying(stop=stop_after_attempt(retries + 1) | asks_too_long, wait=wait,
                    retry=retry_if_exception_type(RetryableFailure),
                    retry_error_callback=_give_up)


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
