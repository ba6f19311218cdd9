"""Query a deployed prediction endpoint over HTTP: :class:`HTTPTarget`.

An :class:`HTTPTarget` is a :class:`~miaudit.models.adapters.Target` whose outputs come
from a JSON web API, so a deployed model can be audited exactly like a local one:
``miaudit.audit(data=ds, model=HTTPTarget(url), members=mask)``. It sends the records in
batches, a few requests at a time, within a rate limit; retries with exponential backoff
on 429 (honouring ``Retry-After``), 5xx, timeouts and dropped connections; counts every
row sent against an optional hard budget; and caches the answers on disk so that a re-run
or a resumed run sends nothing already answered. :func:`detect_exposure` tells from the
answers what the endpoint releases (``probabilities``, ``logits``, ``top-k:K``,
``rounded:D`` or ``label``).

Request and response mapping
----------------------------
Request (``request``): by default the body is ``{"instances": [[x11, x12, ...], ...]}``,
one list of feature values per record. A dotted path names another place
(``request="inputs"`` gives ``{"inputs": [...]}``, ``request="data.rows"`` gives
``{"data": {"rows": [...]}}``); a callable ``request(rows: ndarray) -> JSON object`` builds
any body.

Response (``response``): by default the JSON body holds one of

==============================================  ==========================================
``{"predictions": [item, ...]}``                one item per record (below)
``{"probabilities": [[p, ...], ...]}``          probability vectors
``{"logits": [[z, ...], ...]}``                 logits
``{"top_k": [[{"label": i, "probability": p}, ...], ...]}``  top-k lists
``{"labels": [i, ...]}``                        labels only
==============================================  ==========================================

and an item of ``predictions`` is a bare list of numbers (a probability vector; taken as
logits when a value lies outside [0, 1]), ``{"probabilities": [...]}``,
``{"logits": [...]}``, ``{"top_k": [{"label": i, "probability": p}, ...]}``,
``{"label": i}`` or a bare label. A label is a class index ``0..C-1`` or, with
``classes``, a class name. A dotted path (``response="output.scores"``) names the list of
items elsewhere (its last key, when one of the names above, says what the items are); a
callable ``response(json) -> list of items (or an (N, C) array of probabilities)`` reads
any shape.

How the answers become outputs: probability vectors whose rows do not sum to 1 (rounded
answers) are renormalised (a row of zeros becomes uniform); a top-k answer becomes a full
vector with the K released probabilities and the leftover mass spread evenly over the
other classes (never above the K-th probability), which is exactly what the ``top-k:K``
exposure assumes; a label becomes a one-hot vector.

Credentials: ``auth_env`` names an environment variable whose value is sent in the
``auth_header`` header. The value is read from the environment for each request and is
never stored in the object, the cache, logs or error messages (a server message that
echoes it is redacted). User names, passwords and credential-like query parameters
(``api_key=...``, ``token=...``) in the URL are left out of the cache key and of every
message. Proxies (``HTTPS_PROXY``) and CA bundles (``SSL_CERT_FILE``) come from the
environment, as for any httpx client; redirects are not followed.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import json
import math
import os
import random
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

import numpy as np

from miaudit.errors import (
    ConfigError,
    DataError,
    DependencyError,
    MiauditWarning,
    OutputError,
    QueryBudgetError,
)
from miaudit.models.outputs import ModelOutputs, check_outputs

__all__ = ["DetectedExposure", "HTTPTarget", "QueryCount", "detect_exposure", "public_url"]

#: Per-row answer codes (also the cache's format): bare vector, probabilities, logits,
#: top-k list of [label, probability], label.
_FORMS = {"v": "probabilities", "p": "probabilities", "z": "logits", "k": "top-k",
          "l": "label"}
_ITEM_KEYS = (("probabilities", "p"), ("probs", "p"), ("logits", "z"), ("top_k", "k"),
              ("label", "l"))
_BATCH_KEYS = (("predictions", None), ("probabilities", "p"), ("probs", "p"),
               ("logits", "z"), ("top_k", "k"), ("labels", "l"), ("label", "l"))
#: a query parameter is a secret when one of the words of its name (split at ``_``, ``-``
#: and ``.``, case-insensitive) is one of these: ``api_key``, ``access_token``,
#: ``X-Amz-Signature`` or ``sessionId`` are; ``design``, ``signal`` or ``max_tokens`` not
_SECRET_WORD = re.compile(r"(api)?key|(access|auth|id|refresh)?token|secret|pass(word|wd)?|"
                          r"auth(orization)?|sig(nature)?|credentials?|session(id)?", re.I)
_CACHE_CHECK_ROWS = 8
_MESSAGE_CHARS = 300
_MAX_RETRY_AFTER = 600.0
_PROB_TOLERANCE = 1e-3
_MAX_ROUNDED_DECIMALS = 6
_CACHE_FORMAT = 2


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


def _url_secrets(url: str) -> list[str]:
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


@dataclass
class QueryCount:
    """Rows sent and rows answered from the cache, for one tag (see
    :meth:`HTTPTarget.counting`)."""

    queries: int = 0
    cache_hits: int = 0


_CURRENT_TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "miaudit_http_tag", default=None)


class HTTPTarget:
    """A model behind a JSON prediction endpoint, queried in batches over HTTP.

    Parameters
    ----------
    url : str
        The endpoint, e.g. ``"https://models.example.com/v1/predict"`` (``http`` or
        ``https``); every batch is one ``POST`` of a JSON body.
    request : str or callable, default "instances"
        Where the rows go in the request body: a dotted path, or
        ``request(rows: ndarray (B, D)) -> JSON object`` (see the module docstring).
    response : str or callable, optional
        Where the answers are in the response body: default, the standard keys
        (``predictions``, ``probabilities``, ``logits``, ``top_k``, ``labels``); a dotted
        path; or ``response(json) -> list of items``.
    auth_env : str, optional
        Name of an environment variable holding the value of the ``auth_header`` header
        (e.g. ``"Bearer sk-..."``). Required to be set when given; its value is never
        written anywhere.
    auth_header : str, default "Authorization"
    batch_size : int, default 256
        Rows per request.
    concurrency : int, default 4
        Requests in flight at once.
    rate_limit : float, optional
        Most requests per second (a token bucket of one token: evenly spaced); retries
        count too. ``None``: unlimited.
    timeout : float, default 10
        Seconds to connect, send and read one request before it counts as failed.
    retries : int, default 5
        Further attempts of a failed request (429, 408, 5xx, timeout, dropped
        connection); 4xx answers are not retried.
    backoff : float, default 0.5
        Seconds before the first retry; doubled after each (times a random factor in
        [0.5, 1.5)). A 429 or 503 with ``Retry-After`` waits as long as it says.
    budget : int, optional
        Most rows that may ever be sent (every attempt of every batch counts: a request
        whose answer was lost may still have been processed). A batch that would go over
        it is not sent and :class:`~miaudit.errors.QueryBudgetError` is raised, after the
        batches in flight have finished (and been cached).
    cache_dir : str or Path, optional
        Folder of the answer cache (one SQLite file). Each row's answer is stored under a
        SHA-256 of the endpoint (full URL and credential, digested) and the request body
        that row alone would have; cached rows are not sent and not counted as queries.
        Before the first cached answer is used, up to 8 cached rows are asked again (and
        counted): if the endpoint answers any differently, every cached answer of this
        endpoint is dropped (``cache_dropped``). The cache assumes the endpoint answers the
        same row the same way (leave it off for randomised endpoints).
    n_classes : int, optional
        Number of classes, needed when the endpoint returns top-k lists or labels
        (default: ``len(classes)``, else the largest label seen + 1).
    classes : sequence of str, optional
        Class names, to read labels given as names (in index order).

    Attributes
    ----------
    queries : int
        Rows sent so far (retries included; cache hits not).
    cache_hits : int
        Rows answered from the cache.
    requests : int
        HTTP requests made (retries included).
    retries_made : int
        Requests that were retries.
    answer_form : str or None
        What the last answers were: ``probabilities``, ``logits``, ``top-k`` or ``label``.

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.serve import serve_in_thread
    >>> url, stop = serve_in_thread(lambda X: np.tile([0.25, 0.75], (len(X), 1)),
    ...                             "probabilities")
    >>> with HTTPTarget(url, batch_size=2) as target:
    ...     out = target.outputs(np.zeros((5, 3)))
    ...     out.values[0].tolist(), target.queries, target.requests
    ([0.25, 0.75], 5, 3)
    >>> stop()
    """

    def __init__(
        self,
        url: str,
        *,
        request: str | Callable[[np.ndarray], Any] = "instances",
        response: str | Callable[[Any], Any] | None = None,
        auth_env: str | None = None,
        auth_header: str = "Authorization",
        batch_size: int = 256,
        concurrency: int = 4,
        rate_limit: float | None = None,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.5,
        budget: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        n_classes: int | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
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
        self.classes = None if classes is None else tuple(str(c) for c in classes)
        if n_classes is None and self.classes is not None:
            n_classes = len(self.classes)
        if n_classes is not None and (not isinstance(n_classes, int) or n_classes < 2):
            raise ConfigError(f"n_classes must be an integer >= 2, got {n_classes!r}.")
        self._url = str(url)
        self.endpoint = public_url(self._url)
        self.request = request
        self.response = response
        self.auth_env = auth_env
        self.auth_header = auth_header
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.budget = budget
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.n_classes = n_classes
        self.queries = 0
        self.cache_hits = 0
        self.cache_dropped = False  # cached answers found stale and dropped this run
        self._cache_checked = False
        self._identity: str | None = None
        self.requests = 0
        self.retries_made = 0
        self.answer_form: str | None = None
        self._by_tag: dict[str, QueryCount] = {}
        self._lock = threading.Lock()
        self._limiter = _TokenBucket(rate_limit) if rate_limit else None
        self._jitter = random.Random()
        self._client = None
        self._pool: ThreadPoolExecutor | None = None
        self._cache: _AnswerCache | None = None

    # ---------------------------------------------------------------- public interface

    def __repr__(self) -> str:
        auth = f", auth_env={self.auth_env!r}" if self.auth_env else ""
        return (f"HTTPTarget({self.endpoint!r}, batch_size={self.batch_size}, "
                f"concurrency={self.concurrency}, budget={self.budget}{auth})")

    def outputs(self, X: np.ndarray, *, tag: str | None = None) -> ModelOutputs:
        """The endpoint's answers on the rows of ``X`` as :class:`ModelOutputs`
        (``logits`` when it returns logits, else ``probs``).

        Parameters
        ----------
        X : ndarray (N, D)
            Finite numbers; each row is sent as a list of JSON numbers.
        tag : str, optional
            Attribute the rows sent to this tag (default: the :meth:`counting` block).

        Raises
        ------
        QueryBudgetError
            A batch would go over the budget (it was not sent). For partial results the
            error carries ``answered`` (bool ``(N,)``: the rows answered, from the cache or
            before the budget ran out) and ``outputs`` (:class:`ModelOutputs` of those
            rows, in order, or ``None``).
        ConfigError
            The endpoint answered 4xx (the status and its message are shown).
        OutputError
            No answer after the retries, or an answer that cannot be read.
        """
        try:
            answers = self._answers(X, tag)
        except QueryBudgetError as exc:
            partial = exc.partial_answers  # type: ignore[attr-defined]
            exc.outputs = self._convert(partial) if partial else None  # type: ignore[attr-defined]
            raise
        return self._convert(answers)

    def _convert(self, answers: list[list]) -> ModelOutputs:
        values, kind = _to_matrix(answers, self.n_classes, self.classes)
        self.answer_form = _form_of(answers)
        return check_outputs(values, kind, n_records=len(answers),
                             source=f"the endpoint {self.endpoint}")

    def labels(self, X: np.ndarray, *, tag: str | None = None) -> np.ndarray:
        """The predicted label (class index) of every row of ``X``: ``(N,)`` int64."""
        answers = self._answers(X, tag)
        self.answer_form = _form_of(answers)
        if answers and answers[0][0] == "l":
            return np.array([_label_index(a[1], self.classes) for a in answers], np.int64)
        values, _ = _to_matrix(answers, self.n_classes, self.classes)
        return np.argmax(values, axis=1).astype(np.int64) if len(values) else np.zeros(0,
                                                                                   np.int64)

    @contextlib.contextmanager
    def counting(self, tag: str) -> Iterator[QueryCount]:
        """Attribute the queries made inside the block (in this thread or task) to ``tag``.

        >>> target = HTTPTarget("http://127.0.0.1:9/predict")
        >>> with target.counting("label-boundary") as count:
        ...     pass
        >>> count.queries, target.queries_by_tag
        (0, {'label-boundary': 0})
        """
        count = self._tag_count(tag)
        token = _CURRENT_TAG.set(tag)
        try:
            yield count
        finally:
            _CURRENT_TAG.reset(token)

    @property
    def queries_by_tag(self) -> dict[str, int]:
        """Rows sent per tag (only tagged queries)."""
        with self._lock:
            return {t: c.queries for t, c in self._by_tag.items()}

    @property
    def cache_hits_by_tag(self) -> dict[str, int]:
        """Rows answered from the cache per tag."""
        with self._lock:
            return {t: c.cache_hits for t, c in self._by_tag.items()}

    @property
    def remaining(self) -> int | None:
        """Rows that may still be sent (``None``: no budget)."""
        return None if self.budget is None else self.budget - self.queries

    def stats(self) -> dict:
        """Counters for a report: endpoint, queries, cache hits, requests, retries, budget."""
        return {"endpoint": self.endpoint, "queries": self.queries,
                "cache_hits": self.cache_hits, "cache_dropped": self.cache_dropped,
                "requests": self.requests,
                "retries": self.retries_made, "budget": self.budget,
                "queries_by_tag": self.queries_by_tag}

    def close(self) -> None:
        """Close the connections, the worker threads and the cache file."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> HTTPTarget:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_lock", "_client", "_pool", "_cache", "_limiter", "_jitter"):
            state[key] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._limiter = _TokenBucket(self.rate_limit) if self.rate_limit else None
        self._jitter = random.Random()

    # ---------------------------------------------------------------- internals

    def _tag_count(self, tag: str) -> QueryCount:
        with self._lock:
            return self._by_tag.setdefault(tag, QueryCount())

    def _answers(self, X: np.ndarray, tag: str | None) -> list[list]:
        """One answer ``[code, payload]`` per row: from the cache, else from the endpoint."""
        X = _check_rows(X)
        tag = tag if tag is not None else _CURRENT_TAG.get()
        count = self._tag_count(tag) if tag is not None else None
        n = len(X)
        answers: list[list | None] = [None] * n
        if n == 0:
            return []
        if self.cache_dir is not None:
            keys = [self._row_key(X[i : i + 1]) for i in range(n)]
            cached = self._open_cache().get_many(set(keys))
            if cached and not self._cache_checked:
                try:
                    cached = self._check_cache(X, keys, cached, count)
                except QueryBudgetError as exc:  # nothing of this call answered yet
                    exc.answered = np.zeros(n, dtype=bool)  # type: ignore[attr-defined]
                    exc.partial_answers = []  # type: ignore[attr-defined]
                    raise
            todo_keys: dict[str, list[int]] = {}
            for i, key in enumerate(keys):
                if key in cached:
                    answers[i] = cached[key]
                else:
                    todo_keys.setdefault(key, []).append(i)
            hits = n - sum(len(v) for v in todo_keys.values())
            with self._lock:
                self.cache_hits += hits
                if count is not None:
                    count.cache_hits += hits
            # each distinct row once; the answer goes to all its copies
            send = [rows[0] for rows in todo_keys.values()]
            copies = list(todo_keys.values())
            send_keys = list(todo_keys)
        else:
            send = list(range(n))
            copies = [[i] for i in send]
            send_keys = None
        batches = [send[s : s + self.batch_size] for s in range(0, len(send), self.batch_size)]
        try:
            for b, got in self._run_batches(X, batches, count):
                start = b * self.batch_size
                for j, answer in enumerate(got):
                    for i in copies[start + j]:
                        answers[i] = answer
                if send_keys is not None:
                    self._open_cache().put_many(
                        zip(send_keys[start : start + len(got)], got, strict=True),
                        self._cache_identity())
        except QueryBudgetError as exc:
            # what was answered before the budget ran out, for partial results
            exc.answered = np.array([a is not None for a in answers])  # type: ignore[attr-defined]
            exc.partial_answers = [a for a in answers if a is not None]  # type: ignore[attr-defined]
            raise
        return answers  # type: ignore[return-value]

    def _run_batches(self, X: np.ndarray, batches: list[list[int]],
                     count: QueryCount | None) -> Iterator[tuple[int, list[list]]]:
        """Send the batches (at most ``concurrency`` in flight), yielding ``(index,
        answers)`` as each finishes; on the first error, send nothing more, let the
        batches in flight finish (they are yielded), then raise it."""
        bodies = (self._body(X[rows]) for rows in batches)
        if self.concurrency == 1 or len(batches) == 1:
            for b, (rows, body) in enumerate(zip(batches, bodies, strict=True)):
                self._reserve(len(rows), count, retry=False)
                yield b, self._send(body, len(rows), count)
            return
        self._http()  # one client for all threads, made before they start
        pool = self._executor()
        pending: dict[Future, int] = {}
        error: BaseException | None = None
        results: list[tuple[int, list[list]]] = []
        try:
            for b, (rows, body) in enumerate(zip(batches, bodies, strict=True)):
                while len(pending) >= self.concurrency and error is None:
                    error = self._collect(pending, results, error)
                    yield from results
                    results.clear()
                if error is not None:
                    break
                try:
                    self._reserve(len(rows), count, retry=False)
                except QueryBudgetError as exc:
                    error = exc
                    break
                pending[pool.submit(self._send, body, len(rows), count)] = b
            while pending:
                error = self._collect(pending, results, error)
                yield from results
                results.clear()
        finally:
            for fut in pending:  # only on an interrupt: nothing more starts
                fut.cancel()
        if error is not None:
            raise error

    @staticmethod
    def _collect(pending: dict[Future, int], results: list, error: BaseException | None):
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for fut in sorted(done, key=pending.__getitem__):
            b = pending.pop(fut)
            exc = fut.exception()
            if exc is None:
                results.append((b, fut.result()))
            elif error is None:
                error = exc
        return error

    def _reserve(self, n: int, count: QueryCount | None, *, retry: bool) -> None:
        with self._lock:
            if self.budget is not None and self.queries + n > self.budget:
                what = "Resending" if retry else "Sending"
                cached = (f"; the rows answered so far are cached in {self.cache_dir}, so a "
                          "run with a larger budget resumes from them"
                          if self.cache_dir is not None else "")
                raise QueryBudgetError(
                    f"{what} {n} more rows to {self.endpoint} would exceed the query budget "
                    f"of {self.budget} ({self.queries} sent, {self.budget - self.queries} "
                    f"left); nothing more was sent{cached}.")
            self.queries += n
            if count is not None:
                count.queries += n

    def _body(self, rows: np.ndarray) -> bytes:
        if callable(self.request):
            payload = self.request(rows)
        else:
            payload = _nest(self.request, rows.tolist())
        try:
            return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"The request body for {self.endpoint} cannot be written as "
                              f"JSON ({exc}).") from None

    def _cache_identity(self) -> str:
        """SHA-256 of what decides the answers besides the row: the full URL (credentials
        included: another key may reach another model) and the credential, and how answers
        are read. Only this digest is stored."""
        if self._identity is None:
            h = hashlib.sha256(f"miaudit-http-endpoint {_CACHE_FORMAT}\n".encode())
            for part in (self._url, self._secret() or "", repr(self.response)):
                h.update(part.encode() + b"\n")
            self._identity = h.hexdigest()
        return self._identity

    def _row_key(self, row: np.ndarray) -> str:
        h = hashlib.sha256(f"miaudit-http-cache {_CACHE_FORMAT}\n".encode())
        h.update(self._cache_identity().encode())
        h.update(self._body(row))
        return h.hexdigest()

    def _check_cache(self, X: np.ndarray, keys: list[str], cached: dict[str, list],
                     count: QueryCount | None) -> dict[str, list]:
        """Before the first answer is taken from the cache, ask the endpoint again for a
        few cached rows: if it now answers differently (a new model behind the same URL),
        drop every cached answer of this endpoint. Costs at most 8 queries per target (as
        many as the budget leaves)."""
        most = _CACHE_CHECK_ROWS
        if self.budget is not None:
            most = min(most, max(self.budget - self.queries, 0))
        self._cache_checked = True
        if most == 0:
            warnings.warn(f"The cached answers of {self.endpoint} were used without checking "
                          "them against the endpoint: the query budget has no row left.",
                          MiauditWarning, stacklevel=4)
            return cached
        rows, seen = [], set()
        for i, key in enumerate(keys):
            if key in cached and key not in seen:
                seen.add(key)
                rows.append(i)
            if len(rows) == most:
                break
        batches = [rows[b : b + self.batch_size] for b in range(0, len(rows), self.batch_size)]
        fresh = [a for _, got in sorted(self._run_batches(X, batches, count)) for a in got]
        if all(_same_answer(a, cached[keys[i]]) for a, i in zip(fresh, rows, strict=True)):
            return cached
        self._open_cache().forget(self._cache_identity())
        self.cache_dropped = True
        warnings.warn(f"{self.endpoint} now answers differently from its cached answers "
                      f"(in {self.cache_dir}): the model behind it changed; the cached "
                      "answers were dropped and every row is asked again.",
                      MiauditWarning, stacklevel=4)
        return {}

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="miaudit-http")
        return self._pool

    def _http(self):
        if self._client is None:
            try:
                import httpx
            except ImportError:
                raise DependencyError("Querying a model over HTTP needs httpx: "
                                      "pip install 'miaudit[http]'.") from None
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=self.concurrency,
                                    max_keepalive_connections=self.concurrency),
                headers={"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "miaudit"},
                follow_redirects=False)  # proxies and CA files from the environment
        return self._client

    def _open_cache(self) -> _AnswerCache:
        if self._cache is None:
            assert self.cache_dir is not None
            self._cache = _AnswerCache(self.cache_dir)
        return self._cache

    def _secret(self) -> str | None:
        if self.auth_env is None:
            return None
        value = os.environ.get(self.auth_env)
        if not value:
            raise ConfigError(f"The environment variable {self.auth_env} (auth_env) is not "
                              "set or empty.")
        return value

    def _redact(self, text: str) -> str:
        """``text`` without the credentials (a server may echo what it received)."""
        text = text.replace(self._url, self.endpoint)
        secrets = _url_secrets(self._url)
        secret = os.environ.get(self.auth_env) if self.auth_env else None
        if secret:
            secrets += [secret, secret.split()[-1] if secret.split() else ""]
        for s in sorted(set(secrets), key=len, reverse=True):
            if len(s) >= 4:
                text = text.replace(s, "***")
        return text

    def _send(self, body: bytes, n_rows: int, count: QueryCount | None) -> list[list]:
        """POST one batch (already reserved) until it is answered; the answers, parsed."""
        import httpx

        client = self._http()
        attempt = 0
        while True:
            if attempt:
                self._reserve(n_rows, count, retry=True)
            if self._limiter is not None:
                self._limiter.acquire()
            secret = self._secret()
            headers = {self.auth_header: secret} if secret else None
            with self._lock:
                self.requests += 1
                self.retries_made += bool(attempt)
            wait_s = None
            try:
                resp = client.post(self._url, content=body, headers=headers)
            except httpx.TimeoutException:
                problem = f"no answer within {self.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                status = resp.status_code
                if 200 <= status < 300:
                    return self._parse(resp, n_rows)
                message = _server_message(resp)
                problem = f"HTTP {status} {resp.reason_phrase}" + (
                    f": {message}" if message else "")
                if status not in (408, 429) and status < 500:
                    raise ConfigError(self._redact(
                        f"The endpoint {self.endpoint} refused the request with {problem}"
                        + _hint(status)))
                if status in (429, 503):
                    wait_s = _retry_after(resp.headers.get("Retry-After"))
            if attempt >= self.retries:
                raise OutputError(self._redact(
                    f"The endpoint {self.endpoint} did not answer a batch of {n_rows} rows "
                    f"after {attempt + 1} attempt(s); last: {problem}. Try again later, "
                    "or raise retries / timeout."))
            if wait_s is not None and wait_s > _MAX_RETRY_AFTER:
                raise OutputError(f"The endpoint {self.endpoint} asks to retry after "
                                  f"{wait_s:.0f} s (Retry-After); try again later.")
            if wait_s is None:
                wait_s = self.backoff * 2.0 ** attempt * (0.5 + self._jitter.random())
            time.sleep(wait_s)
            attempt += 1

    def _parse(self, resp, n_rows: int) -> list[list]:
        try:
            data = resp.json()
        except ValueError:
            text = resp.text[:80].replace("\n", " ")
            raise OutputError(self._redact(
                f"The endpoint {self.endpoint} answered HTTP {resp.status_code} with a body "
                f"that is not JSON ({text!r}...).")) from None
        return _read_items(data, self.response, n_rows, self.endpoint)


# -------------------------------------------------------------------- request/response


def _check_rows(X) -> np.ndarray:
    try:
        X = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise DataError(f"The records to send cannot be read as an array ({exc}).") from None
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise DataError(f"The records to send must be a 2-D array of real numbers (records x "
                        f"features), got shape {X.shape} and dtype {X.dtype}.")
    if not np.isfinite(X).all():
        raise DataError("The records to send hold NaN or infinite values, which JSON cannot "
                        "carry; impute or drop them first.")
    return X


def _nest(path: str, value: Any) -> dict:
    keys = [k for k in path.split(".") if k]
    if not keys:
        raise ConfigError(f"The request path {path!r} is empty; use e.g. 'instances'.")
    out: Any = value
    for key in reversed(keys):
        out = {key: out}
    return out


def _server_message(resp) -> str:
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


def _hint(status: int) -> str:
    hints = {401: " (check the credentials in auth_env / auth_header)",
             403: " (the credentials lack access to this endpoint)",
             404: " (check the URL)", 405: " (the endpoint does not accept POST)",
             413: " (lower batch_size)", 422: " (check the request mapping)",
             400: " (check the request mapping and the number of features)"}
    if 300 <= status < 400:
        return " (the endpoint redirects; give the final URL)."
    return hints.get(status, "") + "."


def _retry_after(value: str | None) -> float | None:
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


def _read_items(data: Any, response, n_rows: int, endpoint: str) -> list[list]:
    """The response body as one ``[code, payload]`` per row."""
    where = f"The endpoint {endpoint}"
    hint = None
    if callable(response):
        try:
            items = response(data)
        except Exception as exc:  # the user's function: show what went wrong
            raise OutputError(f"{where}: the response function failed on its answer "
                              f"({type(exc).__name__}: {exc}).") from None
        if isinstance(items, np.ndarray):
            items = items.tolist()
    elif isinstance(response, str):
        items = data
        for key in [k for k in response.split(".") if k]:
            if isinstance(items, dict) and key in items:
                items = items[key]
            elif isinstance(items, list) and key.isdigit() and int(key) < len(items):
                items = items[int(key)]
            else:
                have = sorted(items)[:10] if isinstance(items, dict) else type(items).__name__
                raise OutputError(f"{where}: the answer has no {key!r} on the path "
                                  f"{response!r} (found: {have}).")
        hint = dict(_BATCH_KEYS).get(response.split(".")[-1])
    else:
        if not isinstance(data, dict):
            raise OutputError(f"{where} answered a JSON {type(data).__name__}; expected an "
                              "object with 'predictions' (or probabilities, logits, top_k, "
                              "labels); pass response= for other shapes.")
        for key, code in _BATCH_KEYS:
            if key in data:
                items, hint = data[key], code
                break
        else:
            raise OutputError(f"{where}'s answer has none of the keys predictions, "
                              f"probabilities, logits, top_k, labels (found: "
                              f"{sorted(data)[:10]}); pass response= to read it.")
    if not isinstance(items, list):
        raise OutputError(f"{where}: expected a list with one answer per record, got "
                          f"{type(items).__name__}.")
    if len(items) != n_rows:
        raise OutputError(f"{where} returned {len(items)} answers for {n_rows} records; it "
                          "must answer every record of a batch, in order.")
    return [_read_item(item, hint, where) for item in items]


def _read_item(item: Any, hint: str | None, where: str) -> list:
    if isinstance(item, dict):
        for key, code in _ITEM_KEYS:
            if key in item:
                return _read_item(item[key], code, where)
        raise OutputError(f"{where}: an answer has none of the keys probabilities, logits, "
                          f"top_k, label (found: {sorted(item)[:10]}).")
    if hint == "k":
        if not isinstance(item, list) or not item:
            raise OutputError(f"{where}: a top_k answer must be a non-empty list of "
                              "{'label': i, 'probability': p}.")
        pairs = []
        for entry in item:
            if isinstance(entry, dict):
                label = entry.get("label", entry.get("class"))
                prob = entry.get("probability", entry.get("score"))
            elif isinstance(entry, list) and len(entry) == 2:
                label, prob = entry
            else:
                label = prob = None
            if label is None or not _is_number(prob):
                raise OutputError(f"{where}: a top_k entry must be {{'label': i, "
                                  f"'probability': p}}, got {json.dumps(entry)[:80]}.")
            pairs.append([label, float(prob)])
        return ["k", pairs]
    if hint == "l" or (hint is None and (isinstance(item, str) or _is_int(item))):
        if not (isinstance(item, str) or _is_int(item)):
            raise OutputError(f"{where}: a label must be a class index or name, got "
                              f"{json.dumps(item)[:80]}.")
        return ["l", item]
    if isinstance(item, list) and item and all(_is_number(v) for v in item):
        values = [float(v) for v in item]
        if not all(math.isfinite(v) for v in values):
            raise OutputError(f"{where} returned NaN or infinite outputs.")
        return [hint or "v", values]
    raise OutputError(f"{where}: cannot read an answer {json.dumps(item)[:80]}: expected a "
                      "list of numbers, a label, or an object with probabilities, logits, "
                      "top_k or label.")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _label_index(label: Any, classes: tuple[str, ...] | None) -> int:
    if _is_int(label):
        return int(label)
    if classes is not None and str(label) in classes:
        return classes.index(str(label))
    raise OutputError(f"The endpoint returned the label {label!r}, which is not a class index "
                      + ("nor one of the classes." if classes else
                         "; pass classes= to read labels given as names."))


def _form_of(answers: list[list]) -> str | None:
    return _FORMS[answers[0][0]] if answers else None


def _to_matrix(answers: list[list], n_classes: int | None,
               classes: tuple[str, ...] | None) -> tuple[np.ndarray, str]:
    """Answers as an ``(N, C)`` matrix and its kind (``logits`` or ``probs``)."""
    if not answers:
        return np.zeros((0, n_classes or 2)), "probs"
    codes = {a[0] for a in answers}
    if codes == {"v", "p"}:
        codes = {"p"}
    if len(codes) > 1:
        names = sorted({_FORMS[c] if c != "v" else "vectors" for c in codes})
        raise OutputError(f"The endpoint's answers mix {' and '.join(names)}; it must answer "
                          "every record in the same form.")
    code = codes.pop()
    n = len(answers)
    if code in ("v", "p", "z"):
        widths = {len(a[1]) for a in answers}
        if len(widths) > 1:
            raise OutputError(f"The endpoint returned vectors of different lengths "
                              f"({sorted(widths)[:5]}); expected one value per class.")
        M = np.array([a[1] for a in answers], dtype=np.float64)
        if code == "z" or (code == "v" and (M.min() < -_PROB_TOLERANCE
                                           or M.max() > 1 + _PROB_TOLERANCE)):
            return M, "logits"
        M = np.clip(M, 0.0, 1.0)
        sums = M.sum(axis=1, keepdims=True)
        off = np.abs(sums - 1.0) > _PROB_TOLERANCE
        M = np.where(off & (sums > 0), M / np.where(sums > 0, sums, 1.0), M)
        M[(sums[:, 0] == 0)] = 1.0 / M.shape[1]
        return M, "probs"
    if code == "l":
        labels = np.array([_label_index(a[1], classes) for a in answers], dtype=np.int64)
        c = _classes_needed(n_classes, int(labels.max()) + 1, labels.min())
        M = np.zeros((n, c))
        M[np.arange(n), labels] = 1.0
        return M, "probs"
    # top-k: the released probabilities, the leftover spread over the other classes
    idx = [[_label_index(lab, classes) for lab, _ in a[1]] for a in answers]
    c = _classes_needed(n_classes, max(max(i) for i in idx) + 1, min(min(i) for i in idx))
    M = np.zeros((n, c))
    for r, (a, labs) in enumerate(zip(answers, idx, strict=True)):
        probs = np.clip([p for _, p in a[1]], 0.0, 1.0)
        k = len(set(labs))
        if k < c:
            rest = min(max(1.0 - float(probs.sum()), 0.0) / (c - k), float(probs.min()))
            M[r] = rest
        M[r, labs] = probs
    sums = M.sum(axis=1, keepdims=True)
    off = np.abs(sums - 1.0) > _PROB_TOLERANCE  # rounded top-k values
    M = np.where(off & (sums > 0), M / np.where(sums > 0, sums, 1.0), M)
    return M, "probs"


def _classes_needed(n_classes: int | None, seen: int, lowest: int) -> int:
    if lowest < 0:
        raise OutputError(f"The endpoint returned the label {lowest}; class indices start at 0.")
    if n_classes is None:
        return max(seen, 2)
    if seen > n_classes:
        raise OutputError(f"The endpoint returned the label {seen - 1}, outside the "
                          f"{n_classes} classes 0..{n_classes - 1}.")
    return n_classes


# -------------------------------------------------------------------- exposure detection


class DetectedExposure(NamedTuple):
    """What an endpoint releases: a miaudit exposure setting and why.

    Attributes
    ----------
    setting : str
        ``probabilities``, ``logits``, ``top-k:K``, ``rounded:D`` or ``label``
        (:func:`~miaudit.signals.parse_exposure` reads it).
    explanation : str
        One line saying what in the answers gave it away.
    """

    setting: str
    explanation: str


def detect_exposure(target: object, X_probe: np.ndarray) -> DetectedExposure:
    """Tell from the answers on ``X_probe`` what a target releases.

    Parameters
    ----------
    target : HTTPTarget or any Target
        An :class:`HTTPTarget` is judged from its raw answers (top-k lists, labels,
        decimals as sent); any other target from its ``outputs``.
    X_probe : ndarray (N, D)
        A few records (say 50 to 200; these are real queries, counted and cached).

    Returns
    -------
    DetectedExposure
        ``(setting, explanation)``: a full probability vector is ``probabilities``; rows
        with values outside [0, 1] or not summing to 1 are ``logits``; K (label,
        probability) pairs are ``top-k:K``; probabilities that are all multiples of
        10^-D (D <= 6) are ``rounded:D``; one-hot or label answers are ``label``.

    Examples
    --------
    >>> from miaudit.models import CallableTarget
    >>> detect_exposure(CallableTarget(lambda X: np.tile([0.3, 0.7], (len(X), 1))),
    ...                 np.zeros((4, 2))).setting
    'rounded:1'
    """
    X_probe = _check_rows(X_probe)
    if len(X_probe) == 0:
        raise DataError("detect_exposure needs at least one probe record.")
    if isinstance(target, HTTPTarget):
        answers = target._answers(X_probe, None)
        code = {a[0] for a in answers}
        if len(code) > 1 and code != {"v", "p"}:
            raise OutputError(f"The endpoint {target.endpoint}'s answers mix forms "
                              f"({sorted(_FORMS[c] for c in code)}).")
        code = code.pop()
        where = "the endpoint"
        if code == "l":
            return DetectedExposure("label", f"{where} answers with a class label only.")
        if code == "k":
            ks = {len(a[1]) for a in answers}
            k = max(ks)
            probs = np.array([p for a in answers for _, p in a[1]])
            c = target.n_classes
            if c is not None and k >= c:
                M, _ = _to_matrix(answers, target.n_classes, target.classes)
                return _judge_vectors(M, where, f"all {c} (label, probability) pairs")
            d = _decimals(probs)
            rounded = f", probabilities rounded to {d} decimals" if d is not None else ""
            varies = f" (at most; {min(ks)} to {k})" if len(ks) > 1 else ""
            return DetectedExposure(
                f"top-k:{k}", f"{where} returns {k} (label, probability) pair(s) per "
                f"record{varies}{rounded}.")
        M = np.array([a[1] for a in answers], dtype=np.float64)
        if code == "z":
            return DetectedExposure("logits", f"{where} returns logits ({M.shape[1]} values "
                                              "per record, under the key 'logits').")
        return _judge_vectors(M, where, f"{M.shape[1]} values per record")
    if not hasattr(target, "outputs"):
        raise ConfigError(f"Cannot probe an object of type {type(target).__name__}: pass an "
                          "HTTPTarget or an object with outputs(X).")
    out = target.outputs(X_probe)  # type: ignore[attr-defined]
    if out.kind == "logits":
        return DetectedExposure("logits", f"the model returns logits ({out.n_classes} "
                                          "values per record).")
    return _judge_vectors(out.values, "the model", f"{out.n_classes} values per record")


def _judge_vectors(M: np.ndarray, where: str, what: str) -> DetectedExposure:
    sums = M.sum(axis=1)
    in_unit = M.min() >= -1e-9 and M.max() <= 1 + 1e-9
    if not in_unit:
        return DetectedExposure("logits", f"{where} returns {what} with values outside "
                                          f"[0, 1] (from {M.min():.3g} to {M.max():.3g}).")
    onehot = np.isin(M, (0.0, 1.0)).all() and np.allclose(sums, 1.0)
    if onehot:
        return DetectedExposure("label", f"{where} returns one-hot vectors: the label only.")
    d = _decimals(M.ravel())
    if d is not None:
        return DetectedExposure(f"rounded:{d}", f"{where} returns {what}, every one a "
                                                f"multiple of 10^-{d} (rounded to {d} "
                                                "decimals).")
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > 1e-4:
        return DetectedExposure("logits", f"{where} returns {what} that do not sum to 1 "
                                          f"(record {worst} sums to {sums[worst]:.6g}): "
                                          "scores, not probabilities.")
    return DetectedExposure("probabilities", f"{where} returns {what} in [0, 1] summing to "
                                             "1, at full precision: the probability vector.")


def _decimals(values: np.ndarray) -> int | None:
    """The fewest decimals D <= 6 that write every value exactly (shortest round-trip
    text), or None when some value needs more (full precision)."""
    most = 0
    for v in np.unique(np.asarray(values, dtype=np.float64)):
        exp = Decimal(repr(float(v))).normalize().as_tuple().exponent
        d = max(0, -int(exp))  # type: ignore[arg-type]
        if d > _MAX_ROUNDED_DECIMALS:
            return None
        most = max(most, d)
    return most


# -------------------------------------------------------------------- helpers


class _TokenBucket:
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


_TABLE = f"answers_v{_CACHE_FORMAT}"  # answers of earlier formats are never read


def _same_answer(a, b, tol: float = 1e-9) -> bool:
    """Whether two cached answers ``[code, payload]`` agree (numbers to ``tol``)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_answer(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(
            a, bool) and not isinstance(b, bool):
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


class _AnswerCache:
    """Answers by row key in one SQLite file (each batch written in one transaction)."""

    def __init__(self, root: Path) -> None:
        if root.exists() and not root.is_dir():
            raise ConfigError(f"The cache path {root} exists and is not a folder.")
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "http-answers.sqlite"
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            with self._db:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (key TEXT PRIMARY "
                                 "KEY, endpoint TEXT NOT NULL, answer TEXT NOT NULL)")
                self._db.execute(f"CREATE INDEX IF NOT EXISTS {_TABLE}_endpoint "
                                 f"ON {_TABLE} (endpoint)")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"Cannot open the answer cache {self.path}: {exc}.") from None

    def get_many(self, keys: set[str]) -> dict[str, list]:
        out: dict[str, list] = {}
        items = list(keys)
        with self._lock:
            for s in range(0, len(items), 500):
                chunk = items[s : s + 500]
                marks = ",".join("?" * len(chunk))
                for key, answer in self._db.execute(
                        f"SELECT key, answer FROM {_TABLE} WHERE key IN ({marks})", chunk):
                    out[key] = json.loads(answer)
        return out

    def put_many(self, items, endpoint: str) -> None:
        rows = [(k, endpoint, json.dumps(a, separators=(",", ":"))) for k, a in items]
        with self._lock, self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {_TABLE} VALUES (?, ?, ?)", rows)

    def forget(self, endpoint: str) -> None:
        """Drop every answer of one endpoint (by its identity digest)."""
        with self._lock, self._db:
            self._db.execute(f"DELETE FROM {_TABLE} WHERE endpoint = ?", (endpoint,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
