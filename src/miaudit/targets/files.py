"""Model files as audit targets: ONNX graphs and skops archives, never pickles.

Teams share classifiers as files. miaudit loads two formats that cannot run code when
opened: ONNX (a graph of standard operators, run by onnxruntime on the CPU) and skops
(scikit-learn estimators rebuilt from an allow-list of types). Pickle files (``.pkl``,
``.pickle``, ``.joblib``) can run any code when loaded, so they are refused.

Install the readers with ``pip install 'miaudit[files]'``.
"""

from __future__ import annotations

import importlib
import operator
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from miaudit.errors import ConfigError, DataError, DependencyError, OutputError
from miaudit.targets.adapters import SklearnTarget, Target, _match_classes, as_target
from miaudit.targets.outputs import ModelOutputs, OutputKind, check_outputs

#: The suffixes :func:`load_model_file` reads.
SAFE_SUFFIXES = (".onnx", ".skops")
#: Pickle-based formats, refused: loading one runs whatever code it names.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
#: Every suffix that makes ``--model`` name a file rather than a recipe.
MODEL_FILE_SUFFIXES = SAFE_SUFFIXES + PICKLE_SUFFIXES

#: scikit-learn types that fitted classifiers hold and that skops does not trust by default.
#: Each is a plain holder of arrays and numbers (no callable, no file access); the types
#: skops trusts by default (scikit-learn estimators, NumPy and SciPy types, builtins) are
#: trusted too. Anything else needs ``trusted=[...]`` (``--trust TYPE``).
SAFE_SKOPS_TYPES = frozenset({
    "sklearn.tree._tree.Tree",  # decision trees, forests, gradient boosting
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",  # MLPClassifier
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.calibration._CalibratedClassifier",  # CalibratedClassifierCV
    "sklearn.calibration._SigmoidCalibration",
})

#: ONNX element types miaudit feeds features as.
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
#: Output types read as scores.
_SCORE_TYPES = ("tensor(float)", "tensor(double)", "tensor(float16)")
#: Operators that pass a tensor through without changing what it means (followed back to
#: find whether an output comes out of a softmax).
_PASS_THROUGH = {"Identity", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}


def _require(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DependencyError(f"{what} needs {module.split('.')[0]}: "
                              "pip install 'miaudit[files]'.") from None


def load_model_file(
    path: str | Path,
    *,
    classes: tuple[str, ...] | None = None,
    trusted: list[str] | tuple[str, ...] | None = None,
    kind: OutputKind | None = None,
) -> Target:
    """Load a classifier saved as ONNX or skops as an audit target.

    Parameters
    ----------
    path : str or Path
        ``.onnx`` (run with onnxruntime on the CPU, :class:`OnnxTarget`) or ``.skops``
        (a scikit-learn estimator, :class:`~miaudit.targets.adapters.SklearnTarget`).
        ``.pkl``, ``.pickle`` and ``.joblib`` are refused.
    classes : tuple of str, optional
        The data set's classes (``Dataset.classes``), to align the model's columns by label.
    trusted : list of str, optional
        skops only: type names (``module.Class``) to trust beyond the defaults
        (:data:`SAFE_SKOPS_TYPES` and what skops trusts). Only for files whose author you
        trust: loading a type runs its code.
    kind : {"logits", "probs"}, optional
        ONNX only: what the graph's output is, when the graph does not say (see
        :class:`OnnxTarget`).

    Returns
    -------
    Target
        ``outputs(X) -> ModelOutputs`` over feature rows ``X`` (N, F).

    Raises
    ------
    ConfigError
        A pickle, an unknown suffix, a missing file, or a skops file holding untrusted
        types (listed; nothing in the file is run).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ConfigError(
            f"{p.name}: pickle files ({', '.join(PICKLE_SUFFIXES)}) run any code they name "
            "when loaded, so miaudit never opens them; save the model with skops "
            "(skops.io.dump(model, 'model.skops')) or export it to ONNX (skl2onnx.to_onnx, "
            "torch.onnx.export).")
    if suffix not in SAFE_SUFFIXES:
        raise ConfigError(f"{p.name}: a model file must be .onnx or .skops, got "
                          f"{suffix or 'no suffix'!r}.")
    if not p.is_file():
        raise ConfigError(f"Model file not found: {p}")
    if suffix == ".onnx":
        if trusted:
            raise ConfigError("trusted (--trust) applies to .skops files; an ONNX graph "
                              "runs no Python code.")
        return OnnxTarget(str(p), classes=classes, kind=kind)
    if kind is not None:
        raise ConfigError("kind applies to .onnx files; a skops estimator gives "
                          "probabilities through predict_proba.")
    return _load_skops(p, classes, tuple(trusted or ()))


def untrusted_skops_types(path: str | Path, trusted: tuple[str, ...] = ()) -> list[str]:
    """The types in a skops file that neither skops, :data:`SAFE_SKOPS_TYPES` nor
    ``trusted`` trusts, read from the file's schema without building any object."""
    allowed = SAFE_SKOPS_TYPES | set(trusted)
    return sorted(t for t in _skops_types(Path(path)) if t not in allowed)


def _skops_types(p: Path) -> list[str]:
    """The types in a skops file that skops does not trust by default."""
    sio = _require("skops.io", "Loading a .skops file")
    try:
        return sio.get_untrusted_types(file=p)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ConfigError(f"{p.name} is not a readable skops file ({exc}).") from None


def _load_skops(p: Path, classes: tuple[str, ...] | None, trusted: tuple[str, ...]) -> Target:
    found = _skops_types(p)
    allowed = SAFE_SKOPS_TYPES | set(trusted)
    refused = sorted(t for t in found if t not in allowed)
    if refused:
        flags = " ".join(f"--trust {t}" for t in refused)
        raise ConfigError(
            f"{p.name} holds {len(refused)} type(s) miaudit does not trust: "
            f"{', '.join(refused)}. Loading them would run their code, so nothing was "
            f"loaded; if you trust the file's author, add {flags} (trusted=[...] in Python).")
    sio = importlib.import_module("skops.io")
    try:
        estimator = sio.load(p, trusted=found)  # every one allowed above
    except Exception as exc:  # skops raises many kinds for a damaged or foreign file
        raise ConfigError(f"Cannot load {p.name} with skops: {type(exc).__name__}: "
                          f"{exc}".splitlines()[0]) from None
    if hasattr(estimator, "predict_proba"):
        return SklearnTarget(estimator, classes, name=p.name)
    if hasattr(estimator, "predict") and classes is not None:
        return as_target(estimator, classes=classes)  # labels only
    raise ConfigError(f"{p.name} holds a {type(estimator).__name__}, which has no "
                      "predict_proba: miaudit audits classifiers.")


@dataclass
class OnnxTarget:
    """A classifier saved as ONNX, run by onnxruntime on the CPU in batches.

    The features go in as the graph's one input (float32, or float64 if the graph asks for
    it). The scores come from one output, chosen and interpreted from the graph:

    * a sequence of maps ``{label: probability}`` (skl2onnx's ZipMap, the default of
      ``skl2onnx.to_onnx``) gives probabilities, columns matched to ``classes`` by label;
    * otherwise a float tensor (N, C): probabilities when its name contains ``prob``
      (skl2onnx with ``zipmap=False``: ``probabilities``) or when it comes out of a
      ``Softmax`` operator; logits otherwise (a ``torch.onnx.export`` of a module returning
      logits; a ``LogSoftmax`` output, log-probabilities, is logits too).

    Parameters
    ----------
    path : str
        The ``.onnx`` file.
    classes : tuple of str, optional
        The data set's classes, to align a ZipMap's labels.
    kind : {"logits", "probs"}, optional
        Overrides what the graph says the output is.
    batch_size : int, default 4096
        Rows per run; a graph exported with a fixed batch size is run at that size (the
        last batch padded).

    Examples
    --------
    >>> target = OnnxTarget("model.onnx")  # doctest: +SKIP
    >>> target.outputs(X).kind  # doctest: +SKIP
    'probs'
    """

    path: str
    classes: tuple[str, ...] | None = None
    kind: OutputKind | None = None
    batch_size: int = 4096
    output_name: str = field(init=False)
    _session: object = field(init=False, repr=False)
    _input: object = field(init=False, repr=False)
    _zipmap: bool = field(init=False, repr=False)

    @property
    def name(self) -> str:
        """The file's name (how summary.json names the model)."""
        return Path(self.path).name

    def __post_init__(self) -> None:
        ort = _require("onnxruntime", "Running an .onnx model")
        name = Path(self.path).name
        try:
            self._session = ort.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own classes for unreadable graphs
            raise ConfigError(f"Cannot load {name} with onnxruntime: "
                              f"{str(exc).splitlines()[0]}") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ConfigError(f"{name} has {len(inputs)} inputs "
                              f"({', '.join(i.name for i in inputs)}); miaudit feeds one "
                              "matrix of features.")
        self._input = inputs[0]
        if self._input.type not in _INPUT_DTYPES:
            raise ConfigError(f"{name}: input {self._input.name!r} is {self._input.type}; "
                              "miaudit feeds float features (tensor(float) or "
                              "tensor(double)).")
        chosen, found_kind, self._zipmap = _choose_output(self._session.get_outputs(), name)
        self.output_name = chosen.name
        if self.kind is None:
            self.kind = found_kind or _kind_from_graph(self.path, chosen.name)
        elif self.kind not in ("logits", "probs"):
            raise ConfigError(f"kind must be 'logits' or 'probs', got {self.kind!r}.")

    @property
    def n_features(self) -> int | None:
        """The feature count the graph declares (None when it leaves it open)."""
        dims = self._input.shape
        return dims[-1] if len(dims) == 2 and isinstance(dims[-1], int) else None

    def outputs(self, X: np.ndarray) -> ModelOutputs:
        name = Path(self.path).name
        X = np.asarray(X)
        dims = list(self._input.shape)
        want = [d if isinstance(d, int) else None for d in dims[1:]]
        if X.ndim != len(dims) or any(w is not None and w != h
                                      for w, h in zip(want, X.shape[1:], strict=True)):
            shown = ", ".join("?" if w is None else str(w) for w in want)
            shown += "," if len(want) == 1 else ""
            raise DataError(
                f"{name} expects records of shape ({shown}) but the data's records have "
                f"shape {tuple(X.shape[1:])}: the model was trained on other features (check "
                "--data, --label-column and --id-column).")
        fixed = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        size = fixed or self.batch_size
        rows = np.ascontiguousarray(X, dtype=_INPUT_DTYPES[self._input.type])
        chunks = [self._run(rows[start : start + size], fixed)
                  for start in range(0, len(rows), size)]
        values = np.concatenate(chunks) if chunks else np.zeros((0, 0))
        return check_outputs(values, self.kind, n_records=len(X), source=name)

    def _run(self, batch: np.ndarray, fixed: int | None) -> np.ndarray:
        n = len(batch)
        if fixed is not None and n < fixed:  # a graph exported for one batch size
            pad = np.zeros((fixed - n, *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, pad])
        try:
            (raw,) = self._session.run([self.output_name], {self._input.name: batch})
        except Exception as exc:  # onnxruntime's own classes: Fail, InvalidArgument, ...
            raise DataError(f"{Path(self.path).name}: onnxruntime could not run the graph on "
                            f"the data's records: {str(exc).splitlines()[0]}") from None
        if self._zipmap:
            return self._from_maps(raw[:n])
        out = np.asarray(raw, dtype=np.float64)[:n]
        if out.ndim != 2 or len(out) != n:
            raise OutputError(
                f"{Path(self.path).name}: output {self.output_name!r} has shape "
                f"{tuple(np.shape(raw))} for {len(batch)} records; expected (records, "
                "classes), one row of scores per record.")
        return out

    def _from_maps(self, maps: list[dict]) -> np.ndarray:
        labels = list(maps[0]) if maps else []
        pick = operator.itemgetter(*labels)  # by label, whatever order each map has
        values = np.array([pick(row) for row in maps], dtype=np.float64).reshape(len(maps), -1)
        if self.classes is None or not maps:
            return values
        columns = _match_classes(labels, list(self.classes))
        full = np.zeros((len(maps), len(self.classes)))
        full[:, columns] = values
        return full


def _choose_output(outputs: list, name: str) -> tuple[object, OutputKind | None, bool]:
    """The output holding the scores, what it is when its type or name says so (else
    None), and whether it is a sequence of maps (ZipMap)."""
    maps = [o for o in outputs if o.type.startswith("seq(map(")]
    if maps:
        return maps[0], "probs", True
    scores = [o for o in outputs if o.type in _SCORE_TYPES]
    named = [o for o in scores if "prob" in o.name.lower()]
    if named:
        chosen, kind = named[0], "probs"
    elif len(scores) == 1:
        chosen = scores[0]
        kind = "logits" if "logit" in chosen.name.lower() else None
    else:
        listed = ", ".join(f"{o.name} ({o.type})" for o in outputs)
        raise ConfigError(f"{name}: cannot tell which output holds the class scores (outputs: "
                          f"{listed}); export one float output of shape (records, classes).")
    if len(chosen.shape) != 2:
        raise OutputError(f"{name}: output {chosen.name!r} has shape {chosen.shape}; expected "
                          "(records, classes).")
    return chosen, kind, False


def _kind_from_graph(path: str, output: str) -> OutputKind:
    """``probs`` when ``output`` comes out of a Softmax (through pass-through operators),
    else ``logits``."""
    onnx = _require("onnx", "Reading an ONNX graph's operators")
    graph = onnx.load(path, load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    node = producer.get(output)
    while node is not None and node.op_type in _PASS_THROUGH:
        node = producer.get(node.input[0])
    return "probs" if node is not None and node.op_type == "Softmax" else "logits"
