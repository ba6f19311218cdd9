"""MLflow models as audit targets: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``,
``runs:/RUN_ID/PATH`` or a local model folder (one holding an ``MLmodel`` file).

The model is fetched from MLflow's current tracking store or server (``MLFLOW_TRACKING_URI``
or ``mlflow.set_tracking_uri``, which is also the model registry) and loaded with MLflow
itself: the ``sklearn`` flavour when the model has
it (``predict_proba`` gives the probabilities, as for an estimator in memory), else the
``python_function`` (pyfunc) flavour, whose ``predict`` gets the records as a pandas
DataFrame with the column names of the model's input signature and whose answer is read as
probabilities, logits or labels.

**Loading an MLflow model runs its code.** The sklearn flavour unpickles the estimator
(pickle, cloudpickle, or skops with the trusted types that the model's own ``MLmodel`` file
lists) and a pyfunc model is cloudpickled Python, exactly as ``mlflow.pyfunc.load_model``
does; MLflow's own switch ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` is obeyed. Point
miaudit only at a registry or folder whose models you trust (your own); unlike
``--model model.skops`` (:mod:`miaudit.targets.files`), nothing here checks types first.

Install MLflow with ``pip install 'miaudit[mlflow]'``.
"""

from __future__ import annotations

import importlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from miaudit.errors import ConfigError, DataError, DependencyError, OutputError
from miaudit.targets.adapters import LabelTarget, SklearnTarget, Target, _match_classes
from miaudit.targets.outputs import ModelOutputs, check_outputs

#: The URI schemes :func:`load_mlflow_model` reads (besides a local model folder).
URI_SCHEMES = ("models:/", "runs:/")
#: What a pyfunc model's answer is read as.
PyfuncKind = Literal["probs", "logits", "label"]
#: Rows summing to 1 within this are probability vectors.
_SUM_TOLERANCE = 1e-4


def require_mlflow():
    """The ``mlflow`` package, imported on first use (the core of miaudit works without)."""
    try:
        return importlib.import_module("mlflow")
    except ImportError:
        raise DependencyError("MLflow models and records need mlflow: "
                              "pip install 'miaudit[mlflow]'.") from None


def is_mlflow_model(model: str | Path) -> bool:
    """Whether ``model`` names an MLflow model: a ``models:/`` or ``runs:/`` URI, or a local
    folder holding an ``MLmodel`` file."""
    text = str(model)
    return text.startswith(URI_SCHEMES) or (Path(text) / "MLmodel").is_file()


def short_name(uri: str) -> str:
    """A file-name-safe label of an MLflow model, for default run folder names.

    >>> short_name("models:/churn/3"), short_name("models:/churn@prod")
    ('churn-3', 'churn-prod')
    >>> short_name("runs:/0a1b2c/model"), short_name("/data/mlflow/my_model/")
    ('0a1b2c-model', 'my_model')
    """
    for scheme in URI_SCHEMES:
        if uri.startswith(scheme):
            parts = [p for p in uri[len(scheme):].replace("@", "/").split("/") if p]
            return "-".join(parts) or "mlflow"
    return Path(uri).name or "mlflow"


def load_mlflow_model(
    uri: str | Path,
    *,
    classes: tuple[str, ...] | None = None,
    kind: PyfuncKind | None = None,
) -> Target:
    """Load an MLflow model as an audit target. Loading runs the model's code (see the module
    docstring): use it for models you trust.

    Parameters
    ----------
    uri : str or Path
        ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``runs:/RUN_ID/PATH``, or a local
        folder holding an ``MLmodel`` file.
    classes : tuple of str, optional
        The data set's classes (``Dataset.classes``): the estimator's ``classes_`` or a
        pyfunc DataFrame's column names are matched to them by label; labels need them.
    kind : {"probs", "logits", "label"}, optional
        pyfunc only: what ``predict`` returns, when its answer should not decide (see
        :class:`PyfuncTarget`).

    Returns
    -------
    Target
        The sklearn flavour as :class:`~miaudit.targets.adapters.SklearnTarget` (or a
        :class:`~miaudit.targets.adapters.LabelTarget` for an estimator without
        ``predict_proba``), else :class:`PyfuncTarget`; ``outputs(X)`` over rows (N, F).

    Raises
    ------
    ConfigError
        Not an MLflow model URI or folder, a model or version the store does not have, no
        sklearn or pyfunc flavour (the flavours found are named), or a model MLflow cannot
        load.

    Examples
    --------
    >>> target = load_mlflow_model("models:/churn/3", classes=ds.classes)  # doctest: +SKIP
    >>> target.outputs(ds.X).kind  # doctest: +SKIP
    'probs'
    """
    uri = str(uri)
    if not is_mlflow_model(uri):
        raise ConfigError(
            f"{uri!r} is not an MLflow model: give models:/NAME/VERSION, models:/NAME@ALIAS, "
            "runs:/RUN_ID/PATH or a folder holding an MLmodel file.")
    if kind is not None and kind not in ("probs", "logits", "label"):
        raise ConfigError(f"kind must be 'probs', 'logits' or 'label', got {kind!r}.")
    mlflow = require_mlflow()
    for module in ("mlflow.artifacts", "mlflow.models"):
        importlib.import_module(module)
    if uri.startswith(URI_SCHEMES):
        files = tempfile.TemporaryDirectory(prefix="miaudit-mlflow-")
        folder = _download(mlflow, uri, files.name)
    else:
        files, folder = None, Path(uri)
    flavours = _flavours(mlflow, folder, uri)
    if "sklearn" in flavours:
        estimator = _load(lambda: importlib.import_module("mlflow.sklearn").load_model(
            str(folder)), uri, "sklearn")
        if files is not None:
            files.cleanup()  # the estimator is in memory now
        return _sklearn_target(estimator, classes, uri)
    if "python_function" not in flavours:
        raise ConfigError(
            f"{uri} has the flavour(s) {', '.join(flavours) or 'none'}; miaudit reads the "
            "sklearn or python_function (pyfunc) flavour: log the model with one of them.")
    model = _load(lambda: importlib.import_module("mlflow.pyfunc").load_model(str(folder)),
                  uri, "python_function")
    return PyfuncTarget(model, classes=classes, kind=kind, name=uri, _files=files)


def _download(mlflow, uri: str, into: str) -> Path:
    """The model folder of a ``models:/`` or ``runs:/`` URI, copied into ``into``. (MLflow
    resolves ``models:/`` in its current registry whatever ``tracking_uri`` it is given, so
    none is given.)"""
    try:
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=into)
    except Exception as exc:  # MlflowException, OSError, ... for a missing model or store
        raise ConfigError(f"Cannot fetch the MLflow model {uri} from "
                          f"{shown_uri(mlflow.get_tracking_uri())}: "
                          f"{error_line(exc)}") from None
    return Path(path)


def _flavours(mlflow, folder: Path, uri: str) -> dict[str, dict]:
    """The flavours of the ``MLmodel`` file in ``folder``, by name."""
    if not (folder / "MLmodel").is_file():
        raise ConfigError(f"{uri} holds no MLmodel file: it is not an MLflow model (log one "
                          "with mlflow.sklearn.log_model or mlflow.pyfunc.log_model).")
    try:
        return dict(mlflow.models.Model.load(str(folder)).flavors)
    except Exception as exc:  # a damaged MLmodel: yaml or MlflowException
        raise ConfigError(f"Cannot read {uri}'s MLmodel file: {error_line(exc)}") from None


def _load(loader, uri: str, flavour: str):
    try:
        return loader()
    except Exception as exc:  # whatever the model's own code raises when it is rebuilt
        raise ConfigError(f"MLflow cannot load {uri} ({flavour} flavour): "
                          f"{error_line(exc)}") from None


def shown_uri(uri: str) -> str:
    """``uri`` as it may be printed or logged: an HTTP(S) URL without user, password or
    secret query parameters; any other URI (a database) with its password hidden.

    >>> shown_uri("postgresql://mlflow:s3cret@db:5432/mlflow")
    'postgresql://mlflow:***@db:5432/mlflow'
    >>> shown_uri("https://u:tok@mlflow.example/?token=t&x=1"), shown_uri("sqlite:///m.db")
    ('https://mlflow.example/?x=1', 'sqlite:///m.db')
    """
    from urllib.parse import urlsplit

    from miaudit.targets.http.urls import public_url

    if uri.startswith(("http://", "https://")):
        return public_url(uri)
    netloc = urlsplit(uri).netloc
    if "@" not in netloc:
        return uri
    user, _, host = netloc.rpartition("@")
    hidden = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else f"***@{host}"
    return uri.replace(netloc, hidden, 1)


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception raised by MLflow or a model."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _sklearn_target(estimator: object, classes: tuple[str, ...] | None, uri: str) -> Target:
    wrapped = _Estimator(estimator, uri)
    if hasattr(estimator, "predict_proba"):
        return SklearnTarget(wrapped, classes, name=uri)
    if hasattr(estimator, "predict") and classes is not None:
        return LabelTarget(wrapped.predict, len(classes), classes)
    raise ConfigError(f"{uri}'s sklearn flavour holds a {type(estimator).__name__}, which has "
                      "no predict_proba: miaudit audits classifiers.")


@dataclass
class _Estimator:
    """A flavour's estimator, fed feature rows the way it was fitted: the feature count
    checked first, and a DataFrame with its column names when it was fitted on one."""

    estimator: Any
    source: str

    @property
    def classes_(self):
        return getattr(self.estimator, "classes_", None)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(self._rows(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict(self._rows(X))

    def _rows(self, X: np.ndarray):
        want = getattr(self.estimator, "n_features_in_", None)
        if want is not None and X.ndim == 2 and X.shape[1] != want:
            raise DataError(f"{self.source} expects {want} features but the data's records "
                            f"have {X.shape[1]}: the model was trained on other features "
                            "(check --data, --label-column and --id-column).")
        names = getattr(self.estimator, "feature_names_in_", None)
        if names is None:
            return X
        import pandas as pd

        return pd.DataFrame(X, columns=list(names))


@dataclass
class PyfuncTarget:
    """An MLflow pyfunc model: ``predict`` on a pandas DataFrame, its answer read as
    probabilities, logits or labels.

    The records go in as a DataFrame whose columns carry the names of the model's input
    signature, in order (``0..F-1`` without one), each cast to the type the signature gives;
    a signature of one tensor gets the rows as an array of its type. The answer (an array,
    a DataFrame, a Series or a list) is read as

    * one value per record (a 1-D answer, or one column): labels, integers ``0..C-1`` or the
      data's class names; the outputs are one-hot vectors and only the ``label`` exposure
      describes the model;
    * a row of ``C`` numbers per record: probabilities when every row lies in [0, 1] and
      sums to 1, a one-hot row per record being labels; logits (any real scores)
      otherwise. A DataFrame whose column names are the data's classes (or 0..C-1) has its
      columns matched by label.

    What the first answer is read as is kept (``kind``); a later answer that does not fit
    it is an error, never read otherwise.

    Parameters
    ----------
    model : mlflow.pyfunc.PyFuncModel
    classes : tuple of str, optional
        The data set's classes.
    kind : {"probs", "logits", "label"}, optional
        Set by the first answer unless given.
    name : str, optional
        The model's URI (how summary.json names the model).
    """

    model: Any
    classes: tuple[str, ...] | None = None
    kind: PyfuncKind | None = None
    name: str | None = None
    found: str | None = None  # one line on what the first answer was read as
    _files: Any = field(default=None, repr=False)  # the downloaded copy, kept while in use

    def outputs(self, X: np.ndarray) -> ModelOutputs:
        source = f"{self.name or 'the pyfunc model'}'s predict"
        X = np.asarray(X)
        try:
            raw = self.model.predict(self._frame(X))
        except MemoryError:
            raise
        except Exception as exc:  # the model's own code, or MLflow's schema enforcement
            raise DataError(f"{source} failed on the data's records: "
                            f"{error_line(exc)}") from None
        values, labels, found = read_prediction(raw, len(X), self.classes, source)
        read = "label" if labels else _scores_kind(values)
        if self.kind is None:
            self.kind, self.found = read, found
        if self.kind == "label":
            if labels:
                return LabelTarget(lambda _: values, _n_classes(self.classes, source),
                                   self.classes).outputs(X)
            if read == "label":  # one-hot rows
                return check_outputs(values, "probs", n_records=len(X), source=source)
            raise OutputError(f"{source} returned scores, not the labels its first answer "
                              "gave.")
        if labels:
            raise OutputError(f"{source} returned labels, not the scores its first answer "
                              "gave.")
        n_classes = None if self.classes is None else len(self.classes)
        return check_outputs(values, self.kind, n_records=len(X), n_classes=n_classes,
                             source=source)

    def _frame(self, X: np.ndarray):
        import pandas as pd

        schema = self.model.metadata.get_input_schema()
        if schema is None:
            return pd.DataFrame(X)
        if schema.is_tensor_spec():
            (dtype,) = schema.numpy_types()[:1] or (np.float64,)
            return X.astype(dtype, copy=False)
        names = schema.input_names() if schema.has_input_names() else None
        if names is None:
            return pd.DataFrame(X)
        if len(names) != X.shape[1]:
            shown = ", ".join(map(str, names[:5])) + (", ..." if len(names) > 5 else "")
            raise DataError(f"{self.name}'s input signature has {len(names)} columns "
                            f"({shown}) but the data's records have {X.shape[1]} features: "
                            "the model was trained on other features.")
        frame = pd.DataFrame(X, columns=names)
        for name, dtype in zip(names, schema.numpy_types(), strict=True):
            dtype = np.dtype(dtype) if dtype is not None else None
            if dtype is None or dtype.kind not in "fiu" or dtype == frame[name].dtype:
                continue
            if dtype.kind in "iu" and not np.all(np.mod(frame[name], 1) == 0):
                raise DataError(f"{self.name}'s input signature takes integers in column "
                                f"{name!r}, but the records hold non-integer values there.")
            frame[name] = frame[name].astype(dtype)
        return frame


def read_prediction(raw: Any, n_records: int, classes: tuple[str, ...] | None,
                    source: str) -> tuple[np.ndarray, bool, str]:
    """A pyfunc answer as ``(values, is_labels, what it was)``: an (N, C) float matrix with
    columns in the data's class order, or (N,) labels.

    Raises
    ------
    OutputError
        An answer that is neither one label nor one row of numbers per record (what was
        found is named).
    """
    columns = None
    if hasattr(raw, "to_numpy") and hasattr(raw, "columns"):  # a DataFrame
        columns = [str(c) for c in raw.columns]
        raw = raw.to_numpy()
    elif hasattr(raw, "to_numpy"):  # a Series
        raw = raw.to_numpy()
    if isinstance(raw, dict):
        raise OutputError(f"{source} returned a dict (keys {sorted(map(str, raw))[:10]}); "
                          "miaudit reads one label or one row of class scores per record.")
    try:
        arr = np.asarray(raw)
    except ValueError as exc:  # ragged lists
        raise OutputError(f"{source} returned rows of different lengths ({exc}).") from None
    if arr.ndim == 0 or arr.shape[0] != n_records or arr.ndim > 2:
        raise OutputError(f"{source} returned a {type(raw).__name__} of shape "
                          f"{tuple(arr.shape)} for {n_records} records; miaudit reads one "
                          "label or one row of class scores per record.")
    if arr.ndim == 1 or arr.shape[1] == 1:
        flat = arr.reshape(n_records)
        if flat.dtype.kind in "iub" or (flat.dtype.kind == "f" and np.all(np.mod(flat, 1) == 0)):
            return flat.astype(np.int64), True, "one integer per record: labels"
        if flat.dtype.kind in "OUS" and classes is not None and \
                {str(v) for v in flat} <= set(classes):
            return flat.astype(str), True, "one class name per record: labels"
        shown = ", ".join(repr(v) for v in flat[:3].tolist())
        raise OutputError(f"{source} returned one value per record ({shown}, ...) that is "
                          "neither a class index nor one of the data's classes; miaudit "
                          "reads labels or one row of class scores per record.")
    try:
        values = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise OutputError(f"{source} returned a ({n_records}, {arr.shape[1]}) answer of "
                          f"{arr.dtype} values that are not numbers (first row: "
                          f"{arr[0].tolist()!r:.80}).") from None
    if columns is not None and classes is not None:
        try:
            order = _match_classes(columns, list(classes))
        except OutputError:
            order = None  # names that are not classes: the columns in order
        if order is not None:
            full = np.zeros((n_records, len(classes)))
            full[:, order] = values
            values = full
    return values, False, f"{values.shape[1]} numbers per record"


def _scores_kind(values: np.ndarray) -> PyfuncKind:
    """``probs`` for rows in [0, 1] summing to 1 (one-hot rows too: a confident model's
    probabilities can be, and reading them as labels would refuse a later soft row), else
    ``logits``."""
    if not np.all(np.isfinite(values)):
        return "logits"  # check_outputs names the NaN or inf
    in_unit = values.min(initial=0.0) >= 0.0 and values.max(initial=0.0) <= 1.0
    if not in_unit or not np.allclose(values.sum(axis=1), 1.0, rtol=0, atol=_SUM_TOLERANCE):
        return "logits"
    return "probs"


def _n_classes(classes: tuple[str, ...] | None, source: str) -> int:
    if classes is None:
        raise ConfigError(f"{source} returns labels: give the data's classes (classes=...) "
                          "to read them.")
    return len(classes)


#: How each kind of answer is named in the exposure setting.
_EXPOSURE = {"probs": "probabilities", "logits": "logits", "label": "label"}


def exposure_of(target: Target, X_probe: np.ndarray) -> tuple[str, str]:
    """The exposure an MLflow model gives and why, as ``(setting, explanation)``; a
    :class:`PyfuncTarget` is asked about ``X_probe`` first (which settles its ``kind``)."""
    if isinstance(target, PyfuncTarget):
        if target.kind is None:
            target.outputs(X_probe)
        what = {"probs": "in [0, 1] summing to 1: probabilities",
                "logits": "not probabilities: logits (scores)",
                "label": "labels only"}[target.kind]
        found = f"{target.found}, " if target.found else ""
        return _EXPOSURE[target.kind], f"its pyfunc predict returns {found}{what}"
    if isinstance(target, LabelTarget):
        return "label", "its sklearn flavour has predict only: labels"
    return "probabilities", "predict_proba of its sklearn flavour"
