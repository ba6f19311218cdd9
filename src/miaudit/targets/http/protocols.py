"""Wire-format presets of an HTTP target: where a batch is sent, the body it is sent as and
how the answer is read, for the common model servers.

=============  ====================================================  =========================
``protocol``   URL given (the batch is POSTed to)                    request -> answer
=============  ====================================================  =========================
``miaudit``    the prediction URL itself                             ``{"instances": rows}``
                                                                     -> ``{"predictions": ..}``
``kserve-v2``  ``http://HOST:PORT/v2/models/NAME`` (``.../infer``,   ``{"inputs": [tensor]}``
               also with ``/versions/V``)                            -> ``{"outputs": [..]}``
``tf-serving`` ``http://HOST:8501/v1/models/NAME`` (``...:predict``)  ``{"instances": rows}``
                                                                     -> ``{"predictions": ..}``
``mlflow``     ``http://HOST:PORT`` (``.../invocations``)            ``{"dataframe_split": ..}``
                                                                     -> ``{"predictions": ..}``
=============  ====================================================  =========================

``kserve-v2`` is the Open Inference Protocol (KServe, Triton, Seldon MLServer): the rows go
as one tensor ``{"name", "shape": [n, d], "datatype", "data": [row-major values]}``, whose
name and datatype are read from the model's metadata (``GET /v2/models/NAME``,
``inputs[0]``) or default to ``input-0`` / ``FP32``; the answer's output is the only one,
the one named by ``output``, or the one whose name holds ``prob`` (then ``logit``), and is
reshaped with its ``shape`` (``[n, C]`` scores; ``[n]`` or ``[n, 1]`` integers or strings are
labels).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from miaudit.errors import ConfigError, OutputError
from miaudit.targets.http.wire import protocol_hint

PROTOCOLS = ("miaudit", "kserve-v2", "tf-serving", "mlflow")

_KSERVE_MODEL = re.compile(r"/v2/models/[^/]+(/versions/[^/]+)?/?$")
_TF_MODEL = re.compile(r"/v1/models/[^/:]+(/versions/[^/:]+|/labels/[^/:]+)?/?$")
_DTYPES = {"FP64": np.float64, "FP32": np.float32, "FP16": np.float16, "INT64": np.int64,
           "INT32": np.int32}
#: request body forms of mlflow: a DataFrame (default) or one tensor
MLFLOW_INPUTS = ("dataframe_split", "inputs", "instances")


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"Unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}.")
    return protocol


def protocol_urls(protocol: str, url: str) -> tuple[str, str | None]:
    """``(POST URL, metadata URL or None)`` of ``url`` under ``protocol``.

    >>> protocol_urls("kserve-v2", "http://h:8080/v2/models/iris")
    ('http://h:8080/v2/models/iris/infer', 'http://h:8080/v2/models/iris')
    >>> protocol_urls("tf-serving", "http://h:8501/v1/models/iris")[0]
    'http://h:8501/v1/models/iris:predict'
    >>> protocol_urls("mlflow", "http://h:5000")[0]
    'http://h:5000/invocations'
    """
    parts = urlsplit(url)
    path = parts.path

    def with_path(p: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, p, parts.query, parts.fragment))

    if protocol == "kserve-v2":
        if path.rstrip("/").endswith("/infer"):
            base = path.rstrip("/")[: -len("/infer")]
            if _KSERVE_MODEL.search(base):
                return with_path(base + "/infer"), with_path(base)
        elif _KSERVE_MODEL.search(path):
            base = path.rstrip("/")
            return with_path(base + "/infer"), with_path(base)
        raise ConfigError("With protocol kserve-v2 the URL is the model's "
                          "http://HOST:PORT/v2/models/NAME (or its .../infer URL); got the "
                          f"path {path or '/'!r}.")
    if protocol == "tf-serving":
        if path.endswith(":predict"):
            return url, None
        if _TF_MODEL.search(path):
            return with_path(path.rstrip("/") + ":predict"), None
        raise ConfigError("With protocol tf-serving the URL is the model's "
                          "http://HOST:8501/v1/models/NAME (or its ...:predict URL); got the "
                          f"path {path or '/'!r}.")
    if protocol == "mlflow":
        if path.rstrip("/").endswith("/invocations"):
            return url, None
        return with_path(path.rstrip("/") + "/invocations"), None
    return url, None


def guess_from_url(url: str) -> str | None:
    """The protocol a URL's path suggests (``/v2/models/``, ``/v1/models/``,
    ``/invocations``), or None."""
    path = urlsplit(url).path
    if "/v2/models/" in path:
        return "kserve-v2"
    if "/v1/models/" in path:
        return "tf-serving"
    if path.rstrip("/").endswith("/invocations"):
        return "mlflow"
    return None


def kserve_input(metadata: Any) -> tuple[str, str, int | None] | None:
    """``(name, datatype, width)`` of the first input in a model metadata answer, or None;
    ``width`` is the second dimension of a two-dimensional ``shape`` when that is a fixed
    number (features per record), else None.

    >>> kserve_input({"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 13]}]})
    ('x', 'FP64', 13)
    >>> kserve_input({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [-1, -1]}]})
    ('x', 'FP32', None)
    >>> kserve_input({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 28, 28]}]})
    ('x', 'FP32', None)
    """
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    if not (isinstance(inputs, list) and inputs and isinstance(inputs[0], dict)
            and isinstance(inputs[0].get("name"), str)):
        return None
    dtype, shape = inputs[0].get("datatype"), inputs[0].get("shape")
    # a (batch, features) input only: an image's [-1, 28, 28] takes flattened rows too
    last = shape[1] if isinstance(shape, list) and len(shape) == 2 else None
    width = last if isinstance(last, int) and not isinstance(last, bool) and last > 0 else None
    return inputs[0]["name"], dtype if dtype in _DTYPES else "FP32", width


def request_body(protocol: str, rows: np.ndarray, *, input_name: str | None,
                 datatype: str = "FP32", columns: tuple[str, ...] | None = None) -> dict:
    """The JSON body of one batch of ``rows`` (B, D) under ``protocol`` (not ``miaudit``)."""
    if protocol == "kserve-v2":
        values = rows.astype(_DTYPES.get(datatype, np.float32))
        if values.dtype.kind == "i" and not np.array_equal(values, rows):
            raise ConfigError(f"The model's input {input_name!r} takes {datatype} values, but "
                              "the records hold non-integer features.")
        return {"inputs": [{"name": input_name or "input-0", "shape": list(rows.shape),
                            "datatype": datatype, "data": values.ravel().tolist()}]}
    if protocol == "tf-serving":
        return {"instances": rows.tolist()}
    form = input_name or "dataframe_split"
    if form != "dataframe_split":
        return {form: rows.tolist()}
    names = list(columns) if columns is not None else [str(j) for j in range(rows.shape[1])]
    if len(names) != rows.shape[1]:
        raise ConfigError(f"{len(names)} column names were given for records of "
                          f"{rows.shape[1]} features.")
    return {"dataframe_split": {"columns": names, "data": rows.tolist()}}


def answer_body(protocol: str, data: Any, n_rows: int, endpoint: str,
                output: str | None) -> tuple[Any, str | None]:
    """The answer of ``protocol`` rewritten in the default (miaudit) shape, and a note on
    which output was read (kserve-v2) or None."""
    where = f"The endpoint {endpoint}"
    if protocol == "kserve-v2":
        return _kserve_answer(data, n_rows, where, output)
    if protocol == "mlflow" and isinstance(data, list):  # MLflow 1.x: a bare list
        data = {"predictions": data}
    items = data.get("predictions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise OutputError(f"{where}'s answer has no 'predictions' list, which {protocol} "
                          f"answers with{protocol_hint(data, protocol)}.")
    if output is not None:
        items = [_field(item, output, where) for item in items]
    elif protocol == "mlflow":
        items = [_columns(item) for item in items]
    return {"predictions": items}, (None if output is None else f"the field {output!r}")


def _field(item: Any, name: str, where: str) -> Any:
    if not isinstance(item, dict) or name not in item:
        have = sorted(item)[:10] if isinstance(item, dict) else type(item).__name__
        raise OutputError(f"{where}: an answer has no field {name!r} (found: {have}).")
    value = item[name]
    key = name.lower()
    if isinstance(value, list) and "logit" in key:
        return {"logits": value}
    if isinstance(value, list) and "prob" in key:
        return {"probabilities": value}
    return value


def _columns(item: Any) -> Any:
    """An MLflow DataFrame answer row ``{"0": p0, "1": p1, ...}`` as its list of values."""
    if (isinstance(item, dict) and item and not ({"probabilities", "probs", "logits",
                                                  "top_k", "label"} & set(item))
            and all(isinstance(v, int | float) and not isinstance(v, bool)
                    for v in item.values())):
        return list(item.values())
    return item


def _kserve_answer(data: Any, n_rows: int, where: str,
                   output: str | None) -> tuple[dict, str]:
    outputs = data.get("outputs") if isinstance(data, dict) else None
    if not (isinstance(outputs, list) and outputs
            and all(isinstance(o, dict) and "data" in o for o in outputs)):
        raise OutputError(f"{where}'s answer is not an Open Inference Protocol answer "
                          f"({{\"outputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}]}})"
                          f"{protocol_hint(data, 'kserve-v2')}.")
    names = [str(o.get("name")) for o in outputs]
    if output is not None:
        if output not in names:
            raise OutputError(f"{where} has no output {output!r} (its outputs: {names}).")
        chosen, why = outputs[names.index(output)], "named by the output setting"
    elif len(outputs) == 1:
        chosen, why = outputs[0], "its only output"
    else:
        picks = [o for o, n in zip(outputs, names, strict=True) if "prob" in n.lower()] or \
                [o for o, n in zip(outputs, names, strict=True) if "logit" in n.lower()]
        if not picks:
            raise OutputError(f"{where} answers several outputs ({names}), none named like "
                              "probabilities or logits; choose one with --protocol-output "
                              "NAME (output='NAME').")
        chosen, why = picks[0], "its name says probabilities or logits"
    name = str(chosen.get("name"))
    note = f"the output {name!r} ({why}; outputs: {', '.join(names)})"
    values, shape = chosen["data"], chosen.get("shape")
    dtype = str(chosen.get("datatype", "")).upper()
    try:
        arr = np.asarray(values, dtype=object if dtype == "BYTES" else np.float64)
        if shape is not None:
            arr = arr.reshape([int(s) for s in shape])
    except (TypeError, ValueError) as exc:
        raise OutputError(f"{where}: the output {name!r} cannot be read with the shape "
                          f"{shape} ({exc}).") from None
    if arr.ndim == 0 or arr.shape[0] != n_rows:
        raise OutputError(f"{where} returned an output {name!r} of shape {list(arr.shape)} "
                          f"for {n_rows} records; its first dimension must be the records.")
    if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1):
        flat = arr.reshape(n_rows)
        if dtype == "BYTES":
            return {"labels": [str(v) for v in flat]}, note
        if dtype.startswith(("INT", "UINT")) or np.all(np.mod(flat, 1) == 0):
            return {"labels": [int(v) for v in flat]}, note
        raise OutputError(f"{where}: the output {name!r} has one value per record, not a "
                          "label nor a vector of class scores; choose another output.")
    if arr.ndim != 2:
        raise OutputError(f"{where}: the output {name!r} has shape {list(arr.shape)}; "
                          "expected [records, classes].")
    key = name.lower()
    kind = "logits" if "logit" in key else "probabilities" if "prob" in key else "predictions"
    return {kind: arr.tolist()}, note
