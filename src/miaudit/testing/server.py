"""A reference prediction server: a local model behind a JSON endpoint, with faults.

It exists to try :class:`~miaudit.targets.http.HTTPTarget` (and any other HTTP client)
against a realistic endpoint: ``POST /predict`` with ``{"instances": [[...], ...]}``
answers under a chosen exposure, and injected faults (latency, 429 with ``Retry-After``,
500, connections closed without an answer, malformed 200 answers) are drawn from a seeded
generator. It uses only the standard library's :class:`http.server.ThreadingHTTPServer`
and listens on 127.0.0.1 by default. It is a test and demonstration tool, not a
production server.

Answers per exposure (the shapes :class:`~miaudit.targets.http.HTTPTarget` reads):

=================  ======================================================================
``probabilities``  ``{"predictions": [[p0, p1, ...], ...]}``
``logits``         ``{"logits": [[z0, z1, ...], ...]}``
``top-k:K``        ``{"predictions": [{"top_k": [{"label": i, "probability": p}, ...]}]}``
``rounded:D``      ``{"predictions": [{"probabilities": [rounded p, ...]}, ...]}``
``label``          ``{"predictions": [{"label": i}, ...]}``
defences           ``temperature:T``, ``noise:SIGMA``, ``memguard:EPS``: as
                   ``probabilities``, after the defence
=================  ======================================================================

``GET /health`` answers ``{"status": "ok"}``. Errors are JSON ``{"error": "..."}``: 400 for
a body that is not ``{"instances": [[numbers]]}`` or has the wrong number of features, 401
when ``auth_env`` is set and the header does not match, 404 for another path.
"""

from __future__ import annotations

import json
import math
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import ConfigError, MiauditError
from miaudit.signals.exposure import Exposure, apply_defence, parse_exposure
from miaudit.targets.adapters import TorchTarget, as_target
from miaudit.targets.outputs import ModelOutputs
from miaudit.testing._background import BackgroundServer, write_json

__all__ = ["Faults", "ModelServer", "ServerControl", "ServerStats", "load_model", "release",
           "serve_in_thread"]

_MAX_BODY = 256 * 1024 * 1024


@dataclass(frozen=True)
class Faults:
    """Faults injected into the answers, drawn per request from a seeded generator.

    Parameters
    ----------
    slow_ms : float, default 0
        Delay added to a request (milliseconds).
    p_slow : float, default 1
        Probability that a request is delayed by ``slow_ms``.
    p429 : float, default 0
        Probability of ``429 Too Many Requests`` with ``Retry-After: retry_after``.
    p500 : float, default 0
        Probability of ``500 Internal Server Error``.
    p_drop : float, default 0
        Probability that the connection is closed without any answer.
    p_malformed : float, default 0
        Probability of a ``200`` answer that cannot be read, as a faulty proxy sends them:
        half of them a body cut in the middle (not JSON), half the right JSON with the
        last record's answer missing (the wrong shape).
    retry_after : float, default 1
        Seconds sent in ``Retry-After`` (written as an integer when whole).
    seed : int, default 0
    """

    slow_ms: float = 0.0
    p_slow: float = 1.0
    p429: float = 0.0
    p500: float = 0.0
    p_drop: float = 0.0
    p_malformed: float = 0.0
    retry_after: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("p_slow", "p429", "p500", "p_drop", "p_malformed"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"The fault probability {name.replace('_', '-')} must lie "
                                  f"between 0 and 1, got {value}.")
        total = self.p429 + self.p500 + self.p_drop + self.p_malformed
        if total > 1.0:
            raise ConfigError("The fault probabilities p429 + p500 + p-drop + p-malformed "
                              f"add up to more than 1 ({total:g}).")
        if self.slow_ms < 0 or self.retry_after < 0:
            raise ConfigError("slow-ms and retry-after must be >= 0.")


@dataclass
class ServerStats:
    """What the server saw (thread-safe counters; read them after the requests finish).

    Attributes
    ----------
    requests : int
        Requests received (any path, any outcome).
    rows_received : int
        Rows in the prediction requests received.
    rows_answered : int
        Rows in the good 200 answers sent.
    status : Counter
        Answers by status code; ``"drop"`` counts connections closed without an answer,
        ``"200-not-json"`` and ``"200-bad-shape"`` the malformed 200 answers (``"200"``
        only the good ones).
    authorized : int
        Prediction requests that carried the expected auth header (when required).
    max_in_flight : int
        Most prediction requests being handled at the same time.
    """

    requests: int = 0
    rows_received: int = 0
    rows_answered: int = 0
    status: Counter = field(default_factory=Counter)
    authorized: int = 0
    max_in_flight: int = 0
    _in_flight: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                if key.startswith("status_"):
                    self.status[key[7:]] += value
                else:
                    setattr(self, key, getattr(self, key) + value)

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "rows_received": self.rows_received,
                    "rows_answered": self.rows_answered, "status": dict(self.status),
                    "authorized": self.authorized, "max_in_flight": self.max_in_flight}

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def release(outputs: ModelOutputs, exposure: Exposure | str,
            rng: np.random.Generator | None = None) -> dict:
    """The JSON answer of the reference server for ``outputs`` under ``exposure``.

    >>> from miaudit.targets import check_outputs
    >>> out = check_outputs([[0.1, 0.6, 0.3]], "probs")
    >>> release(out, "top-k:2")["predictions"][0]
    {'top_k': [{'label': 1, 'probability': 0.6}, {'label': 2, 'probability': 0.3}]}
    >>> release(out, "label")
    {'predictions': [{'label': 1}]}
    """
    exposure = parse_exposure(exposure)
    if exposure.is_defence:
        outputs = apply_defence(outputs, exposure, rng=rng)
    kind = exposure.kind
    if kind == "logits":
        values = outputs.values if outputs.kind == "logits" else outputs.log_probs()
        return {"logits": np.asarray(values, dtype=np.float64).tolist()}
    probs = outputs.probs()
    if kind == "rounded":
        d = int(exposure.param or 0)
        return {"predictions": [{"probabilities": row} for row in np.round(probs, d).tolist()]}
    if kind == "top-k":
        k = min(int(exposure.param or 1), outputs.n_classes)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(probs, order, axis=1)
        return {"predictions": [
            {"top_k": [{"label": int(i), "probability": float(p)}
                       for i, p in zip(idx, ps, strict=True)]}
            for idx, ps in zip(order, top, strict=True)]}
    if kind == "label":
        return {"predictions": [{"label": int(i)} for i in np.argmax(probs, axis=1)]}
    if kind == "loss":
        raise ConfigError("The reference server cannot release the loss: it needs the "
                          "record's true label. Use probabilities, logits, top-k:K, "
                          "rounded:D, label or a defence.")
    return {"predictions": probs.tolist()}  # probabilities, and the defences


class ModelServer(BackgroundServer):
    """A model served over HTTP under one exposure, with injected faults.

    Parameters
    ----------
    model : Target, torch module, estimator or callable
        Anything :func:`~miaudit.targets.as_target` wraps (a callable returns
        probabilities).
    exposure : str, default "probabilities"
        ``probabilities``, ``logits``, ``top-k:K``, ``rounded:D``, ``label``, or a defence.
    faults : Faults, optional
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port (see :attr:`url`).
    auth_env : str, optional
        Environment variable holding the expected value of ``auth_header``; requests
        without it get 401.
    auth_header : str, default "Authorization"
    n_features : int, optional
        Features per row; other widths get 400.
    verbose : bool, default False
        Log one line per request on stderr (never headers or query strings).
    """

    def __init__(self, model: Any, *, exposure: str | Exposure = "probabilities",
                 faults: Faults | None = None, host: str = "127.0.0.1", port: int = 0,
                 auth_env: str | None = None, auth_header: str = "Authorization",
                 n_features: int | None = None, verbose: bool = False) -> None:
        self.exposure = parse_exposure(exposure)
        release(_tiny_outputs(), self.exposure)  # refuses 'loss' now, not per request
        self.target = as_target(model)
        self.faults = faults or Faults()
        self.auth_header = auth_header
        self.n_features = n_features
        self.verbose = verbose
        self.stats = ServerStats()
        self._fault_rng = np.random.default_rng(self.faults.seed)
        self._noise_rng = np.random.default_rng([self.faults.seed, 1])
        self._rng_lock = threading.Lock()
        self._listen(_Server, _Handler, host, port, secret_env=auth_env,
                     option="auth-env")

    @property
    def url(self) -> str:
        """The prediction URL, ``http://HOST:PORT/predict``."""
        host, port = self._httpd.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/predict"

    # called by the handler threads
    def draw_faults(self) -> tuple[bool, str | None]:
        """Whether this request is slowed, and its fault: ``drop``, ``429``, ``500``,
        ``not-json``, ``bad-shape`` or ``None`` (two draws per request, whatever the
        faults, so that a seed gives the same faults to the same requests)."""
        f = self.faults
        with self._rng_lock:
            u_slow, u = self._fault_rng.random(2)
        slow = f.slow_ms > 0 and u_slow < f.p_slow
        for name, p in (("drop", f.p_drop), ("429", f.p429), ("500", f.p500)):
            if u < p:
                return slow, name
            u -= p
        if u < f.p_malformed:
            return slow, "not-json" if u < f.p_malformed / 2 else "bad-shape"
        return slow, None

    def authorized(self, value: str | None) -> bool:
        return self._matches_secret(value)

    def predict(self, X: np.ndarray) -> dict:
        outputs = self.target.outputs(X)
        with self._rng_lock:
            return release(outputs, self.exposure, self._noise_rng)


def _tiny_outputs() -> ModelOutputs:
    from miaudit.targets.outputs import check_outputs

    return check_outputs([[0.5, 0.5]], "probs")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    app: ModelServer

    def handle_error(self, request, client_address) -> None:
        # a client that went away (timeout) is normal here; say nothing
        exc = sys.exc_info()[1]
        if self.app.verbose and not isinstance(exc, ConnectionError | socket.timeout):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "miaudit-serve"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    sys_version = ""

    def log_message(self, format: str, *args) -> None:
        pass

    def _log(self, status: object, rows: int) -> None:
        if self.server.app.verbose:
            path = self.path.split("?", 1)[0]
            print(f"{self.command} {path} {status} rows={rows}", file=sys.stderr)

    def _send_json(self, status: int, body: dict, headers: dict | None = None,
                   fault: str | None = None) -> None:
        data = json.dumps(_malformed(body) if fault == "bad-shape" else body,
                          separators=(",", ":")).encode()
        if fault == "not-json":
            data = data[: len(data) // 2]  # cut in the middle, as by a failing proxy
        write_json(self, status, data, headers)

    def do_GET(self) -> None:
        app = self.server.app
        app.stats.add(requests=1)
        if self.path.split("?", 1)[0] == "/health":
            self._reply(200, {"status": "ok"}, 0)
        else:
            self._reply(404, {"error": "not found; POST to /predict"}, 0)

    def do_POST(self) -> None:
        app = self.server.app
        app.stats.add(requests=1)
        app.stats.enter()
        try:
            self._predict(app)
        finally:
            app.stats.leave()

    def _predict(self, app: ModelServer) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.close_connection = True
            self._reply(400, {"error": "missing or invalid Content-Length"}, 0)
            return
        raw = self.rfile.read(length)
        if self.path.split("?", 1)[0] not in ("/predict", "/"):
            self._reply(404, {"error": "not found; POST to /predict"}, 0)
            return
        rows, X, problem = _read_instances(raw, app.n_features)
        app.stats.add(rows_received=rows)
        slow, fault = app.draw_faults()
        if slow:
            time.sleep(app.faults.slow_ms / 1000.0)
        if fault == "drop":
            app.stats.add(status_drop=1)
            self._log("drop", rows)
            self.close_connection = True
            return
        if fault == "429":
            wait = app.faults.retry_after
            text = str(int(wait)) if float(wait).is_integer() else f"{wait:g}"
            self._reply(429, {"error": "rate limit exceeded"}, rows, {"Retry-After": text})
            return
        if fault == "500":
            self._reply(500, {"error": "internal error (injected)"}, rows)
            return
        if not app.authorized(self.headers.get(app.auth_header)):
            self._reply(401, {"error": f"missing or invalid {app.auth_header} header"}, rows)
            return
        if app._expected is not None:
            app.stats.add(authorized=1)
        if problem:
            self._reply(400, {"error": problem}, rows)
            return
        try:
            body = app.predict(X)
        except MiauditError as exc:
            self._reply(400, {"error": str(exc)}, rows)
            return
        except Exception as exc:  # the model failed: a server error, as a real API would
            self._reply(500, {"error": f"model error: {type(exc).__name__}: {exc}"}, rows)
            return
        if fault in ("not-json", "bad-shape"):
            self._reply(200, body, rows, fault=fault)
            return
        self._reply(200, body, rows)
        app.stats.add(rows_answered=rows)

    def _reply(self, status: int, body: dict, rows: int, headers: dict | None = None,
               fault: str | None = None) -> None:
        name = f"{status}-{fault}" if fault else str(status)
        self.server.app.stats.add(**{f"status_{name}": 1})
        self._log(name, rows)
        try:
            self._send_json(status, body, headers, fault)
        except ConnectionError:
            self.close_connection = True


def _malformed(body: dict) -> dict:
    """``body`` with the last record's answer missing (a list answer one item short)."""
    return {key: value[:-1] if isinstance(value, list) else value
            for key, value in body.items()}


def _read_instances(raw: bytes, n_features: int | None) -> tuple[int, Any, str | None]:
    """``(rows, X, problem)`` from a request body ``{"instances": [[...], ...]}``."""
    try:
        data = json.loads(raw)
    except ValueError:
        return 0, None, "the body is not JSON; send {\"instances\": [[...], ...]}"
    rows = data.get("instances") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return 0, None, "the body has no 'instances' list; send {\"instances\": [[...], ...]}"
    try:
        X = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        return len(rows), None, "'instances' must be a list of equally long lists of numbers"
    if X.ndim != 2 or not np.isfinite(X).all():
        return len(rows), None, ("'instances' must be a list of equally long lists of finite "
                                 "numbers")
    if n_features is not None and X.shape[1] != n_features:
        return len(rows), None, (f"each instance must have {n_features} features, got "
                                 f"{X.shape[1]}")
    return len(rows), X, None


class ServerControl:
    """Returned by :func:`serve_in_thread`: call it to stop the server.

    Attributes
    ----------
    url : str
    stats : ServerStats
    server : ModelServer
    """

    def __init__(self, server: ModelServer) -> None:
        self.server = server
        self.url = server.url
        self.stats = server.stats

    def __call__(self) -> None:
        self.server.stop()


def serve_in_thread(target: Any, exposure: str | Exposure = "probabilities",
                    faults: Faults | None = None, port: int = 0,
                    **options: Any) -> tuple[str, ServerControl]:
    """Serve ``target`` on 127.0.0.1 in a background thread.

    Parameters
    ----------
    target, exposure, faults, port
        As for :class:`ModelServer`; ``options`` are its other keyword arguments.

    Returns
    -------
    url : str
        ``http://127.0.0.1:PORT/predict``.
    stop : ServerControl
        ``stop()`` stops it; ``stop.stats`` counts what the server saw.

    Examples
    --------
    >>> import numpy as np
    >>> url, stop = serve_in_thread(lambda X: np.tile([0.5, 0.5], (len(X), 1)), "label")
    >>> url.startswith("http://127.0.0.1:")
    True
    >>> stop()
    """
    server = ModelServer(target, exposure=exposure, faults=faults, port=port, **options)
    server.start()
    return server.url, ServerControl(server)


def load_model(path: str | Path, *, device: str = "cpu",
               n_features: int | None = None) -> tuple[TorchTarget, dict]:
    """A model saved by miaudit: ``weights.safetensors`` and ``meta.json`` (with ``recipe``
    and ``n_classes``) in one folder, as in the model cache.

    Parameters
    ----------
    path : str or Path
        The folder, or its ``weights.safetensors``.
    n_features : int, optional
        Features per row; default: ``meta.json``'s ``n_features``, else read from the
        weights.

    Returns
    -------
    target : TorchTarget
    info : dict
        ``recipe`` (description), ``n_features``, ``n_classes``, ``path``.
    """
    from miaudit.training.nets import build_module
    from miaudit.training.recipes import Recipe, check_recipe

    p = Path(path)
    folder = p.parent if p.is_file() else p
    weights_path = p if p.is_file() else p / "weights.safetensors"
    meta_path = folder / "meta.json"
    for needed in (weights_path, meta_path):
        if not needed.exists():
            raise ConfigError(f"No {needed.name} in {folder}: serve a folder written by "
                              "miaudit (weights.safetensors and meta.json with the recipe).")
    try:
        meta = json.loads(meta_path.read_text())
        spec = dict(meta["recipe"])
        recipe = Recipe(**{**spec, "hidden": tuple(spec.get("hidden", ()))})
        n_classes = int(meta["n_classes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{meta_path} does not describe a miaudit model (recipe and "
                          f"n_classes): {exc}.") from None
    check_recipe(recipe)
    try:
        import torch
        from safetensors.numpy import load_file
    except ImportError:
        from miaudit.errors import DependencyError

        raise DependencyError("Serving a saved model needs PyTorch and safetensors: "
                              "pip install 'miaudit[torch]'.") from None
    try:
        state = load_file(str(weights_path))
    except Exception as exc:  # any reader error becomes one line
        raise ConfigError(f"Cannot read {weights_path}: {exc}.") from None
    n_features = n_features or meta.get("n_features") or _infer_features(recipe, state)
    module = build_module(recipe, int(n_features), n_classes)
    try:
        module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"The weights in {weights_path} do not fit the recipe "
                          f"{recipe.describe()} with {n_features} features: {first}") from None
    module = module.to(device).eval()
    info = {"recipe": recipe.describe(), "n_features": int(n_features),
            "n_classes": n_classes, "path": str(folder)}
    return TorchTarget(module, device=device), info


def _infer_features(recipe, state: dict) -> int:
    """Features per row from the weights: the first linear layer's input width (for
    ``cnn``, the image side is worked back from the dense layer's width)."""
    matrices = [v for v in state.values() if getattr(v, "ndim", 0) == 2]
    if not matrices:
        raise ConfigError("Cannot tell the number of features from the weights; pass "
                          "--n-features.")
    width = int(matrices[0].shape[1])
    if recipe.name != "cnn":
        return width
    convs = recipe.hidden[:-1]
    cells = width // convs[-1]
    small = math.isqrt(cells)
    if small * small * convs[-1] != width:
        raise ConfigError("Cannot tell the image size from the weights; pass --n-features.")
    side = small << len(convs)
    return 3 * side * side
