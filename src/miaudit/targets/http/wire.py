"""The wire format of an HTTP target: request bodies and the answers read into outputs
(see :mod:`miaudit.targets.http` for the mapping)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from miaudit.errors import (
    ConfigError,
    DataError,
    OutputError,
)

#: Per-row answer codes (also the cache's format): bare vector, probabilities, logits,
#: top-k list of [label, probability], label.
FORMS = {"v": "probabilities", "p": "probabilities", "z": "logits", "k": "top-k",
          "l": "label"}


_ITEM_KEYS = (("probabilities", "p"), ("probs", "p"), ("logits", "z"), ("top_k", "k"),
              ("label", "l"))


_BATCH_KEYS = (("predictions", None), ("probabilities", "p"), ("probs", "p"),
               ("logits", "z"), ("top_k", "k"), ("labels", "l"), ("label", "l"))


_PROB_TOLERANCE = 1e-3


def check_rows(X) -> np.ndarray:
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


def nest(path: str, value: Any) -> dict:
    keys = [k for k in path.split(".") if k]
    if not keys:
        raise ConfigError(f"The request path {path!r} is empty; use e.g. 'instances'.")
    out: Any = value
    for key in reversed(keys):
        out = {key: out}
    return out


def read_items(data: Any, response, n_rows: int, endpoint: str) -> list[list]:
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
                              "labels); pass response= for other shapes"
                              f"{protocol_hint(data, 'miaudit')}.")
        for key, code in _BATCH_KEYS:
            if key in data:
                items, hint = data[key], code
                break
        else:
            raise OutputError(f"{where}'s answer has none of the keys predictions, "
                              f"probabilities, logits, top_k, labels (found: "
                              f"{sorted(data)[:10]}); pass response= to read it"
                              f"{protocol_hint(data, 'miaudit')}.")
    if not isinstance(items, list):
        raise OutputError(f"{where}: expected a list with one answer per record, got "
                          f"{type(items).__name__}.")
    if len(items) != n_rows:
        raise OutputError(f"{where} returned {len(items)} answers for {n_rows} records; it "
                          "must answer every record of a batch, in order.")
    return [_read_item(item, hint, where) for item in items]


def sniff_protocol(body: Any) -> str | None:
    """The wire format an answer body looks like: ``kserve-v2`` (``{"outputs": [{"name",
    "shape", "datatype", "data"}]}``, the Open Inference Protocol), ``tf-serving`` (its
    columnar ``{"outputs": ...}``), ``mlflow`` (a bare list, as MLflow 1.x answers),
    ``miaudit`` (``{"predictions": ...}`` or another default key, which TF Serving and MLflow
    answer alike), or None.

    >>> sniff_protocol({"model_name": "m", "outputs": [{"name": "p", "shape": [1, 2],
    ...                 "datatype": "FP32", "data": [0.4, 0.6]}]})
    'kserve-v2'
    >>> sniff_protocol({"predictions": [[0.4, 0.6]]}), sniff_protocol({"error": "x"})
    ('miaudit', None)
    """
    if isinstance(body, list):
        return "mlflow"
    if not isinstance(body, dict):
        return None
    outputs = body.get("outputs")
    if (isinstance(outputs, list) and outputs
            and all(isinstance(o, dict) and "data" in o for o in outputs)):
        return "kserve-v2"
    if "outputs" in body:
        return "tf-serving"
    if any(key in body for key, _ in _BATCH_KEYS):
        return "miaudit"
    return None


_LOOKS_LIKE = {
    "kserve-v2": "the Open Inference Protocol (kserve-v2)",
    "tf-serving": "TensorFlow Serving's columnar format (tf-serving)",
    "mlflow": "an MLflow answer (a bare list)",
    "miaudit": "{\"predictions\": ...} (miaudit, tf-serving or mlflow: they read alike)",
}


def protocol_hint(body: Any, using: str) -> str:
    """``": this answer looks like ...: add --protocol P"`` when ``body`` looks like another
    wire format than ``using``, else ``""``."""
    found = sniff_protocol(body)
    if found is None or found == using or (found == "miaudit"
                                           and using in ("tf-serving", "mlflow")):
        return ""
    fix = ("--protocol miaudit, tf-serving or mlflow" if found == "miaudit"
           else f"--protocol {found} (protocol={found!r})")
    return f": this answer looks like {_LOOKS_LIKE[found]}; use {fix}"


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


def label_index(label: Any, classes: tuple[str, ...] | None) -> int:
    if _is_int(label):
        return int(label)
    if classes is not None and str(label) in classes:
        return classes.index(str(label))
    raise OutputError(f"The endpoint returned the label {label!r}, which is not a class index "
                      + ("nor one of the classes." if classes else
                         "; pass classes= to read labels given as names."))


def form_of(answers: list[list]) -> str | None:
    return FORMS[answers[0][0]] if answers else None


def to_matrix(answers: list[list], n_classes: int | None,
               classes: tuple[str, ...] | None) -> tuple[np.ndarray, str]:
    """Answers as an ``(N, C)`` matrix and its kind (``logits`` or ``probs``)."""
    if not answers:
        return np.zeros((0, n_classes or 2)), "probs"
    codes = {a[0] for a in answers}
    if codes == {"v", "p"}:
        codes = {"p"}
    if len(codes) > 1:
        names = sorted({FORMS[c] if c != "v" else "vectors" for c in codes})
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
        labels = np.array([label_index(a[1], classes) for a in answers], dtype=np.int64)
        c = _classes_needed(n_classes, int(labels.max()) + 1, labels.min())
        M = np.zeros((n, c))
        M[np.arange(n), labels] = 1.0
        return M, "probs"
    # top-k: the released probabilities, the leftover spread over the other classes
    idx = [[label_index(lab, classes) for lab, _ in a[1]] for a in answers]
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
