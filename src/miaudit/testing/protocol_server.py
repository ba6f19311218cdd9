"""Minimal model servers speaking the wire formats of KServe / Triton (Open Inference
Protocol v2), TensorFlow Serving and MLflow, to try
:class:`~miaudit.targets.http.HTTPTarget`'s ``protocol`` presets on 127.0.0.1.

Each serves one model (a callable ``X (N, D) -> scores (N, C)``) under the name ``NAME``:

=============  ==========================================================================
``kserve-v2``  ``GET /v2/models/NAME`` (metadata: ``inputs[0]`` is ``features``, FP64),
               ``POST /v2/models/NAME/infer``: ``outputs`` ``label`` (INT64 ``[n]``) and
               ``output_name`` (FP64 ``[n, C]``)
``tf-serving`` ``POST /v1/models/NAME:predict``: ``{"instances"}`` -> ``{"predictions"}``
``mlflow``     ``POST /invocations``: ``dataframe_split``, ``inputs`` or ``instances`` ->
               ``{"predictions": [[...]]}`` (or, ``mlflow_rows="dicts"``, one
               ``{"0": s0, "1": s1, ...}`` per record)
=============  ==========================================================================

Standard library only; a test and benchmark tool, not a production server.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from miaudit.testing._background import BackgroundServer, write_json

__all__ = ["ProtocolServer"]


class ProtocolServer(BackgroundServer):
    """A model served under one wire format on 127.0.0.1 (use as a context manager).

    Parameters
    ----------
    model : callable
        ``model(X) -> (N, C)`` scores (probabilities or logits).
    protocol : {"kserve-v2", "tf-serving", "mlflow"}
    name : str, default "model"
    output_name : str, default "probabilities"
        ``kserve-v2``: the name of the scores output.
    metadata : bool, default True
        ``kserve-v2``: answer the metadata request (else 404).
    mlflow_rows : {"lists", "dicts"}, default "lists"

    Attributes
    ----------
    url : str
        The URL to give ``HTTPTarget`` (the model's base URL, or the server's for mlflow).
    counts : Counter
        ``requests``, ``rows``, ``metadata``.
    last_body : dict or None
        The last prediction request body received.
    """

    def __init__(self, model: Callable[[np.ndarray], Any], protocol: str, *,
                 name: str = "model", output_name: str = "probabilities",
                 metadata: bool = True, mlflow_rows: str = "lists") -> None:
        self.model, self.protocol, self.name = model, protocol, name
        self.output_name, self.metadata, self.mlflow_rows = output_name, metadata, mlflow_rows
        self.counts: Counter = Counter()
        self.last_body: Any = None
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        port = self._httpd.server_address[1]
        base = f"http://127.0.0.1:{port}"
        self.url = {"kserve-v2": f"{base}/v2/models/{name}",
                    "tf-serving": f"{base}/v1/models/{name}"}.get(protocol, base)

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """``(status, JSON answer)`` of one request."""
        with self._lock:
            self.counts["requests"] += 1
        p = self.protocol
        if p == "kserve-v2":
            base = f"/v2/models/{self.name}"
            if method == "GET" and path == base and self.metadata:
                with self._lock:
                    self.counts["metadata"] += 1
                return 200, {"name": self.name, "platform": "miaudit-test",
                             "inputs": [{"name": "features", "datatype": "FP64",
                                         "shape": [-1, -1]}],
                             "outputs": [{"name": "label", "datatype": "INT64",
                                          "shape": [-1]},
                                         {"name": self.output_name, "datatype": "FP64",
                                          "shape": [-1, -1]}]}
            if method == "POST" and path == base + "/infer":
                return self._kserve(body)
        elif p == "tf-serving" and method == "POST" and path == f"/v1/models/{self.name}:predict":
            if not isinstance(body, dict) or "instances" not in body:
                return 400, {"error": "Missing 'instances' key"}
            scores = self._score(np.asarray(body["instances"], dtype=np.float64))
            return 200, {"predictions": scores.tolist()}
        elif p == "mlflow" and method == "POST" and path == "/invocations":
            return self._mlflow(body)
        return 404, {"error": f"no route {method} {path}"}

    def _score(self, X: np.ndarray) -> np.ndarray:
        with self._lock:
            self.counts["rows"] += len(X)
        return np.asarray(self.model(X), dtype=np.float64)

    def _kserve(self, body: Any) -> tuple[int, Any]:
        try:
            (tensor,) = body["inputs"]
            if self.metadata and tensor["name"] != "features":
                return 400, {"error": f"unexpected input {tensor['name']!r}"}
            X = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            return 422, {"error": f"invalid inference request: {exc}"}
        scores = self._score(X)
        n = len(X)
        return 200, {"model_name": self.name, "id": "1", "outputs": [
            {"name": "label", "shape": [n], "datatype": "INT64",
             "data": np.argmax(scores, axis=1).tolist()},
            {"name": self.output_name, "shape": list(scores.shape), "datatype": "FP64",
             "data": scores.ravel().tolist()}]}

    def _mlflow(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"error_code": "BAD_REQUEST", "message": "not a JSON object"}
        if "dataframe_split" in body:
            rows = body["dataframe_split"]["data"]
        elif "inputs" in body or "instances" in body:
            rows = body.get("inputs", body.get("instances"))
        else:
            return 400, {"error_code": "BAD_REQUEST",
                         "message": "one of dataframe_split, dataframe_records, inputs, "
                                    "instances is needed"}
        scores = self._score(np.asarray(rows, dtype=np.float64))
        if self.mlflow_rows == "dicts":
            return 200, {"predictions": [{str(j): v for j, v in enumerate(row)}
                                         for row in scores.tolist()]}
        return 200, {"predictions": scores.tolist()}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _handle(self, method: str) -> None:
        app: ProtocolServer = self.server.app  # type: ignore[attr-defined]
        body = None
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                body = None
        if method == "POST":
            app.last_body = body
        status, answer = app.answer(method, self.path.split("?", 1)[0], body)
        write_json(self, status, json.dumps(answer).encode())

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")
