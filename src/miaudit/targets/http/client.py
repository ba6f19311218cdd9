"""The HTTP client of a deployed model: :class:`HTTPTarget` (batches, concurrency, rate
limit, retries with backoff (tenacity), a hard row budget, credentials kept out of every
record)."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import (
    ConfigError,
    DependencyError,
    MiauditWarning,
    OutputError,
    QueryBudgetError,
)
from miaudit.targets.http.cache import CACHE_CHECK_ROWS, CACHE_FORMAT, AnswerCache, same_answer
from miaudit.targets.http.protocols import (
    MLFLOW_INPUTS,
    answer_body,
    check_protocol,
    guess_from_url,
    kserve_input,
    protocol_urls,
    request_body,
)
from miaudit.targets.http.retries import (
    RetryableFailure,
    TokenBucket,
    hint,
    retry_after,
    retry_policy,
    server_message,
)
from miaudit.targets.http.settings import check_settings
from miaudit.targets.http.urls import public_url, url_secrets
from miaudit.targets.http.wire import check_rows, form_of, label_index, nest, read_items, to_matrix
from miaudit.targets.outputs import ModelOutputs, check_outputs


@dataclass
class QueryCount:
    """Rows sent and rows answered from the cache, for one tag (see
    :meth:`HTTPTarget.counting`)."""

    queries: int = 0
    cache_hits: int = 0


_CURRENT_TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "miaudit_http_tag", default=None)


@dataclass
class _Batch:
    """One batch on its way: its rows, its tag's counter, whether its rows are reserved
    against the budget for the next attempt, and whether a request of it has gone out."""

    n_rows: int
    count: QueryCount | None
    reserved: bool = True  # reserved by _run_batches before the first attempt
    sent: bool = False


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
        Further attempts of a failed request (429, 408, 5xx, timeout, dropped connection,
        connection refused, a 200 answer that is not JSON or not of the expected shape);
        other 4xx answers are not retried.
    backoff : float, default 0.5
        Seconds before the first retry; doubled after each (times a random factor in
        [0.5, 1.5)). A 429 or 503 with ``Retry-After`` waits as long as it says (up to
        10 minutes; longer is not retried).
    budget : int, optional
        Most rows that may ever be sent (every request sent counts, retries included: a
        request whose answer was lost may still have been processed; an attempt whose
        connection could not be opened sent nothing and does not). A batch that would go
        over it is not sent and :class:`~miaudit.errors.QueryBudgetError` is raised, after
        the batches in flight have finished (and been cached).
    cache_dir : str or Path, optional
        Folder of the answer cache (one SQLite file). Each row's answer is stored under a
        SHA-256 of the endpoint (full URL and credential, digested) and the request body
        that row alone would have; cached rows are not sent and not counted as queries.
        Before the first cached answer is used, up to 8 cached rows are asked again (and
        counted): if the endpoint answers any differently (beyond float32 rounding, see
        :func:`~miaudit.targets.http.cache.same_answer`), every cached answer of this
        endpoint is dropped (``cache_dropped``). The cache assumes the endpoint answers the
        same row the same way (leave it off for randomised endpoints).
    n_classes : int, optional
        Number of classes, needed when the endpoint returns top-k lists or labels
        (default: ``len(classes)``, else the largest label seen + 1).
    classes : sequence of str, optional
        Class names, to read labels given as names (in index order).
    protocol : {"miaudit", "kserve-v2", "tf-serving", "mlflow"}, default "miaudit"
        The wire format (see :mod:`miaudit.targets.http.protocols`): ``miaudit`` posts to
        ``url`` as set by ``request``/``response``; ``kserve-v2`` (Open Inference Protocol:
        KServe, Triton, MLServer) takes the model's ``http://HOST:PORT/v2/models/NAME``
        (or its ``/infer`` URL); ``tf-serving`` the model's ``http://HOST:8501/v1/models/NAME``
        (or its ``:predict`` URL); ``mlflow`` the server's ``http://HOST:PORT`` (or its
        ``/invocations`` URL). The other presets refuse ``request``/``response``.
    input_name : str, optional
        ``kserve-v2``: the input tensor's name (default: ``inputs[0]`` of the model's
        metadata, ``GET /v2/models/NAME``, else ``"input-0"``; its datatype likewise, else
        ``FP32``). ``mlflow``: the body's form, ``"dataframe_split"`` (default: columns
        ``columns`` or ``"0"`` .. ``"D-1"``), ``"inputs"`` or ``"instances"`` (one tensor).
    output : str, optional
        ``kserve-v2``: the output to read (default: the only one, else the one whose name
        holds ``prob``, then ``logit``; :attr:`protocol_note` says which was read).
        ``tf-serving``/``mlflow``: the field of each prediction object to read.
    columns : sequence of str, optional
        ``mlflow``: the column names of a ``dataframe_split`` body.

    Attributes
    ----------
    queries : int
        Rows sent so far (retries included; cache hits not).
    cache_hits : int
        Rows answered from the cache.
    requests : int
        HTTP requests sent (retries included), as many as the server received.
    retries_made : int
        Requests that sent a batch again (``requests - retries_made`` batches sent).
    connect_failures : int
        Attempts whose connection could not be opened (refused, or not within
        ``timeout``): nothing was sent, so they are not requests and their rows not queries.
    answer_form : str or None
        What the last answers were: ``probabilities``, ``logits``, ``top-k`` or ``label``.
    protocol_note : str or None
        With a preset protocol: the input and output read (e.g. which ``kserve-v2`` output).

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.testing.server import serve_in_thread
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
        protocol: str = "miaudit",
        input_name: str | None = None,
        output: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        check_settings(url, batch_size=batch_size, concurrency=concurrency,
                       retries=retries, budget=budget, timeout=timeout,
                       rate_limit=rate_limit, backoff=backoff, auth_env=auth_env,
                       auth_header=auth_header, request=request, response=response)
        self.classes = None if classes is None else tuple(str(c) for c in classes)
        if n_classes is None and self.classes is not None:
            n_classes = len(self.classes)
        if n_classes is not None and (not isinstance(n_classes, int) or n_classes < 2):
            raise ConfigError(f"n_classes must be an integer >= 2, got {n_classes!r}.")
        self.protocol = check_protocol(protocol)
        if protocol != "miaudit" and (request != "instances" or response is not None):
            raise ConfigError(f"protocol={protocol!r} sets the request and response format; "
                              "leave request= and response= out (or use protocol='miaudit').")
        if protocol == "mlflow" and input_name is not None and input_name not in MLFLOW_INPUTS:
            raise ConfigError(f"With protocol mlflow the input form is one of "
                              f"{', '.join(MLFLOW_INPUTS)}, got {input_name!r}.")
        if protocol == "miaudit" and (input_name, output, columns) != (None, None, None):
            raise ConfigError("input_name, output and columns go with protocol= kserve-v2, "
                              "tf-serving or mlflow.")
        self._url, self._metadata_url = protocol_urls(protocol, str(url))
        self.input_name = input_name
        self.output = output
        self.columns = None if columns is None else tuple(str(c) for c in columns)
        self._datatype = "FP32"
        self._width: int | None = None  # features per record, from the model metadata
        self._input_resolved = protocol != "kserve-v2" or input_name is not None
        self._input_note: str | None = None
        self.protocol_note: str | None = None
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
        self.connect_failures = 0
        self.answer_form: str | None = None
        self._by_tag: dict[str, QueryCount] = {}
        self._lock = threading.Lock()
        self._limiter = TokenBucket(rate_limit) if rate_limit else None
        self._client = None
        self._pool: ThreadPoolExecutor | None = None
        self._cache: AnswerCache | None = None

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
        values, kind = to_matrix(answers, self.n_classes, self.classes)
        self.answer_form = form_of(answers)
        return check_outputs(values, kind, n_records=len(answers),
                             source=f"the endpoint {self.endpoint}")

    def labels(self, X: np.ndarray, *, tag: str | None = None) -> np.ndarray:
        """The predicted label (class index) of every row of ``X``: ``(N,)`` int64."""
        answers = self._answers(X, tag)
        self.answer_form = form_of(answers)
        if answers and answers[0][0] == "l":
            return np.array([label_index(a[1], self.classes) for a in answers], np.int64)
        values, _ = to_matrix(answers, self.n_classes, self.classes)
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
        """Counters for a report: endpoint, queries, cache hits, requests, retries,
        connection failures, budget."""
        return {"endpoint": self.endpoint, "queries": self.queries,
                "cache_hits": self.cache_hits, "cache_dropped": self.cache_dropped,
                "requests": self.requests, "retries": self.retries_made,
                "connect_failures": self.connect_failures, "budget": self.budget,
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
        for key in ("_lock", "_client", "_pool", "_cache", "_limiter"):
            state[key] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._limiter = TokenBucket(self.rate_limit) if self.rate_limit else None

    # ---------------------------------------------------------------- internals

    def _tag_count(self, tag: str) -> QueryCount:
        with self._lock:
            return self._by_tag.setdefault(tag, QueryCount())

    def _answers(self, X: np.ndarray, tag: str | None) -> list[list]:
        """One answer ``[code, payload]`` per row: from the cache, else from the endpoint."""
        X = check_rows(X)
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

    def _kserve_input(self) -> None:
        """The input tensor's name and datatype from the model metadata (once), else
        ``input-0`` / ``FP32``; the metadata request is neither a query nor counted."""
        with self._lock:
            if self._input_resolved:
                return
            found, why = None, "no metadata endpoint"
            secret = self._secret()
            try:
                resp = self._http().get(self._metadata_url or "",
                                        headers={self.auth_header: secret} if secret else None)
                if resp.status_code == 200:
                    found = kserve_input(resp.json())
                    why = "the metadata names no input" if found is None else ""
                else:
                    why = f"the metadata endpoint answered HTTP {resp.status_code}"
            except Exception as exc:  # any failure: fall back to the default name
                why = f"the metadata endpoint could not be read ({type(exc).__name__})"
            if found is not None:
                self.input_name, self._datatype, self._width = found
                self._input_note = (f"the input {self.input_name!r} ({self._datatype}, from "
                                    "the model metadata)")
            else:
                self.input_name = "input-0"
                self._input_note = f"the input 'input-0' (FP32; {why})"
            self._input_resolved = True

    def _body(self, rows: np.ndarray) -> bytes:
        if self.protocol != "miaudit":
            if not self._input_resolved:
                self._kserve_input()
            if self._width is not None and rows.shape[1] != self._width:
                raise ConfigError(
                    f"The model metadata of {self.endpoint} says its input "
                    f"{self.input_name!r} takes {self._width} features per record; the data "
                    f"has {rows.shape[1]}: check --data and --label-column.")
            payload = request_body(self.protocol, rows, input_name=self.input_name,
                                   datatype=self._datatype, columns=self.columns)
        elif callable(self.request):
            payload = self.request(rows)
        else:
            payload = nest(self.request, rows.tolist())
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
            h = hashlib.sha256(f"miaudit-http-endpoint {CACHE_FORMAT}\n".encode())
            for part in (self._url, self._secret() or "", repr(self.response)):
                h.update(part.encode() + b"\n")
            if self.protocol != "miaudit":  # the default's identity stays as it was
                h.update(f"{self.protocol} {self.output!r}\n".encode())
            self._identity = h.hexdigest()
        return self._identity

    def _row_key(self, row: np.ndarray) -> str:
        h = hashlib.sha256(f"miaudit-http-cache {CACHE_FORMAT}\n".encode())
        h.update(self._cache_identity().encode())
        h.update(self._body(row))
        return h.hexdigest()

    def _check_cache(self, X: np.ndarray, keys: list[str], cached: dict[str, list],
                     count: QueryCount | None) -> dict[str, list]:
        """Before the first answer is taken from the cache, ask the endpoint again for a
        few cached rows: if it now answers differently (a new model behind the same URL),
        drop every cached answer of this endpoint. Costs at most 8 queries per target (as
        many as the budget leaves)."""
        most = CACHE_CHECK_ROWS
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
        if all(same_answer(a, cached[keys[i]]) for a, i in zip(fresh, rows, strict=True)):
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
                import tenacity  # noqa: F401  (the retries, see _send)
            except ImportError as exc:
                raise DependencyError(f"Querying a model over HTTP needs httpx and tenacity "
                                      f"({exc.name} is missing): pip install "
                                      "'miaudit[http]'.") from None
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=self.concurrency,
                                    max_keepalive_connections=self.concurrency),
                headers={"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "miaudit"},
                follow_redirects=False)  # proxies and CA files from the environment
        return self._client

    def _open_cache(self) -> AnswerCache:
        if self._cache is None:
            assert self.cache_dir is not None
            self._cache = AnswerCache(self.cache_dir)
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
        secrets = url_secrets(self._url)
        secret = os.environ.get(self.auth_env) if self.auth_env else None
        if secret:
            secrets += [secret, secret.split()[-1] if secret.split() else ""]
        for s in sorted(set(secrets), key=len, reverse=True):
            if len(s) >= 4:
                text = text.replace(s, "***")
        return text

    def _send(self, body: bytes, n_rows: int, count: QueryCount | None) -> list[list]:
        """POST one batch (its rows already reserved) until it is answered: the answers,
        parsed. tenacity retries what :meth:`_attempt` marks as retryable; a 4xx other than
        408/429, or the budget running out, stops at once."""
        client = self._http()
        batch = _Batch(n_rows, count)
        # tenacity decides whether and when to try again (retries.retry_policy); what an
        # answer means over HTTP (retryable or not, Retry-After, the budget, the counts)
        # stays in _attempt, which it cannot know
        try:
            return retry_policy(self.retries, self.backoff)(self._attempt, client, body, batch)
        except RetryableFailure as failure:
            raise self._final_error(failure, n_rows) from None

    def _attempt(self, client: Any, body: bytes, batch: _Batch) -> list[list]:
        """One POST of a batch: its answers, or :class:`RetryableFailure`. Counts the
        request when it left (an attempt that could not connect gives its rows back)."""
        import httpx

        secret = self._secret()
        headers = {self.auth_header: secret} if secret else None
        if not batch.reserved:  # every request sent spends one reservation of its rows
            self._reserve(batch.n_rows, batch.count, retry=True)
        batch.reserved = False
        if self._limiter is not None:
            self._limiter.acquire()
        sent = True
        try:
            resp = client.post(self._url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            sent = False  # no connection: nothing of this request reached the server
            raise RetryableFailure(f"could not connect ({type(exc).__name__}: {exc})"
                                   ) from None
        except httpx.TimeoutException:
            raise RetryableFailure(f"no answer within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise RetryableFailure(f"connection failed ({type(exc).__name__}: {exc})"
                                   ) from None
        finally:
            self._count_attempt(batch, sent)
        return self._read_response(resp, batch.n_rows)

    def _count_attempt(self, batch: _Batch, sent: bool) -> None:
        with self._lock:
            if sent:
                self.requests += 1
                self.retries_made += batch.sent
                batch.sent = True
                return
            self.connect_failures += 1
            self.queries -= batch.n_rows
            if batch.count is not None:
                batch.count.queries -= batch.n_rows

    def _read_response(self, resp: Any, n_rows: int) -> list[list]:
        """The answers of a 2xx response; :class:`ConfigError` for a 4xx, 501 or 505 that
        a retry cannot mend (KServe answers 501 to a model version it does not serve);
        :class:`RetryableFailure` for the rest."""
        status = resp.status_code
        if 200 <= status < 300:
            return self._parse(resp, n_rows)
        message = server_message(resp)
        problem = f"HTTP {status} {resp.reason_phrase}" + (f": {message}" if message else "")
        if status not in (408, 429) and (status < 500 or status in (501, 505)):
            guess = guess_from_url(self._url)
            other = (f" (the URL looks like a {guess} endpoint: add --protocol {guess})"
                     if guess not in (None, self.protocol, "tf-serving") else "")
            raise ConfigError(self._redact(
                f"The endpoint {self.endpoint} refused the request with {problem}"
                + hint(status) + other))
        wait_s = retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None
        raise RetryableFailure(problem, wait_s)

    def _parse(self, resp: Any, n_rows: int) -> list[list]:
        """The answers in a 2xx body; a body that is not JSON or not of the expected shape
        is retryable (often a proxy's passing fault), with its own error for the end."""
        status = resp.status_code
        try:
            data = resp.json()
        except ValueError:
            text = resp.text[:80].replace("\n", " ")
            error = OutputError(self._redact(
                f"The endpoint {self.endpoint} answered HTTP {status} with a body that is "
                f"not JSON ({text!r}...)."))
            raise RetryableFailure(f"HTTP {status} with a body that is not JSON",
                                   error=error) from None
        try:
            if self.protocol != "miaudit":
                data, note = answer_body(self.protocol, data, n_rows, self.endpoint,
                                         self.output)
                notes = [n for n in (self._input_note, note and f"read {note}") if n]
                self.protocol_note = f"{self.protocol}: " + "; ".join(notes) if notes else None
            return read_items(data, self.response, n_rows, self.endpoint)
        except OutputError as exc:
            raise RetryableFailure(f"HTTP {status} with an answer that cannot be read",
                                   error=OutputError(self._redact(str(exc)))) from None

    def _final_error(self, failure: RetryableFailure, n_rows: int) -> OutputError:
        """The one-line error when the retries stop: a Retry-After too long to wait, the
        last malformed answer's own message, or no answer after the attempts."""
        if failure.attempts <= self.retries:  # stopped early: Retry-After too long
            return OutputError(f"The endpoint {self.endpoint} asks to retry after "
                               f"{failure.wait_s:.0f} s (Retry-After); try again later.")
        if isinstance(failure.error, OutputError):
            return failure.error
        return OutputError(self._redact(
            f"The endpoint {self.endpoint} did not answer a batch of {n_rows} rows after "
            f"{failure.attempts} attempt(s); last: {failure.problem}. Try again later, or "
            "raise retries / timeout."))
