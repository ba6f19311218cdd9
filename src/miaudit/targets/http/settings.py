"""The settings of an :class:`~miaudit.targets.http.HTTPTarget`, checked once at the
boundary."""

from __future__ import annotations

import math
import os
from urllib.parse import urlsplit

from miaudit.errors import ConfigError
from miaudit.targets.http.urls import public_url


def check_settings(url: str, *, batch_size: int, concurrency: int, retries: int,
                   budget: int | None, timeout: float, rate_limit: float | None,
                   backoff: float, auth_env: str | None, auth_header: str,
                   request: object, response: object) -> None:
    """Refuse an :class:`HTTPTarget` setting out of range, naming it (ConfigError)."""
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"The target URL {public_url(str(url))!r} is not an http(s) "
                          "URL; write it as http://host:port/path.")
    checks = [("batch_size", batch_size, 1), ("concurrency", concurrency, 1),
              ("retries", retries, 0)]
    for name, value, low in checks:
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        raise ConfigError(f"budget must be an integer >= 0 or None, got {budget!r}.")
    for name, value in (("timeout", timeout), ("rate_limit", rate_limit)):
        if value is not None and not (isinstance(value, int | float) and value > 0
                                      and math.isfinite(value)):
            raise ConfigError(f"{name} must be a positive number of seconds"
                              f"{'' if name == 'timeout' else ' (requests per second)'}, "
                              f"got {value!r}.")
    if not (isinstance(backoff, int | float) and 0 <= backoff < math.inf):
        raise ConfigError(f"backoff must be a number of seconds >= 0, got {backoff!r}.")
    if auth_env is not None and not os.environ.get(auth_env):
        raise ConfigError(f"The environment variable {auth_env} (auth_env) is not set or "
                          "empty; export it with the value of the "
                          f"{auth_header} header.")
    if not (isinstance(request, str) or callable(request)):
        raise ConfigError("request must be a dotted path (e.g. 'instances') or a "
                          f"callable, got {type(request).__name__}.")
    if response is not None and not (isinstance(response, str) or callable(response)):
        raise ConfigError("response must be a dotted path (e.g. 'predictions') or a "
                          f"callable, got {type(response).__name__}.")
