"""Credentials in an endpoint's URL: kept out of cache keys and messages."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

#: a query parameter is a secret when one of the words of its name (split at ``_``, ``-``
#: and ``.``, case-insensitive) is one of these: ``api_key``, ``access_token``,
#: ``X-Amz-Signature`` or ``sessionId`` are; ``design``, ``signal`` or ``max_tokens`` not
_SECRET_WORD = re.compile(r"(api)?key|(access|auth|id|refresh)?token|secret|pass(word|wd)?|"
                          r"auth(orization)?|sig(nature)?|credentials?|session(id)?", re.I)


def public_url(url: str) -> str:
    """``url`` without credentials: no user name or password, no query parameter whose
    name looks like a secret (``api_key``, ``token``, ``sig``, ...).

    >>> public_url("https://user:pw@api.example.com/v1/predict?api_key=abc&model=b")
    'https://api.example.com/v1/predict?model=b'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not _is_secret_param(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _is_secret_param(name: str) -> bool:
    return any(_SECRET_WORD.fullmatch(w) for w in re.split(r"[_\-.]", name) if w)


def url_secrets(url: str) -> list[str]:
    """The credentials in a URL as a server might echo them: the password, user:password
    and its Basic encoding, and credential-like query values (raw and percent-encoded)."""
    parts = urlsplit(url)
    found = []
    if parts.password:
        pair = f"{parts.username or ''}:{parts.password}"
        found += [parts.password, unquote(parts.password), pair, unquote(pair),
                  base64.b64encode(unquote(pair).encode()).decode()]
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if _is_secret_param(key) and value:
            found += [value, quote(value, safe=""), quote_plus(value)]
    return found
