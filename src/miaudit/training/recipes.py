"""Training recipes: an architecture plus hyper-parameters, trained with PyTorch.

A :class:`Recipe` is plain data (it hashes and serialises), so the same recipe can train
the target now and reference models later. PyTorch is imported only when training:
:func:`miaudit.training.nets.build_module` builds a recipe's network and
:func:`miaudit.training.single.train` trains one model (the batched trainer many).

Training defences (all off by default)
--------------------------------------
* ``dropout``: dropout after every hidden activation (``mlp``), with its own seeded random
  stream per model, so a batched model draws the same masks as the model trained alone.
* ``label_smoothing``: cross-entropy against ``(1 - s) onehot + s / C``.
* ``early_stopping``: patience in epochs. A seeded 10% of each model's own training
  records (:func:`early_stopping_split`) is held out as a validation set; training stops
  after ``patience`` epochs without a lower validation loss and the weights of the best
  epoch are restored. The held-out records are still *members* of the game (they were
  given to the trainer, and chose the stopping epoch): the audit counts them as members.
* DP-SGD (``dp_epsilon`` or ``dp_noise_multiplier``): per-sample clipping to
  ``dp_max_grad_norm`` and Gaussian noise with Poisson sampling, through Opacus; see
  :mod:`miaudit.training.dp`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from miaudit.errors import ConfigError, DependencyError

ACTIVATIONS = ("tanh", "relu")
OPTIMIZERS = ("adam", "sgd")
#: Share of a model's own training records held out for early stopping.
EARLY_STOPPING_FRACTION = 0.1
#: Default delta of DP-SGD recipes: below 1/n for any training set under 100,000
#: records, and the delta of the audit's own epsilon lower bound.
DEFAULT_DP_DELTA = 1e-5


@dataclass(frozen=True)
class Recipe:
    """How to build and train a classifier on tabular features or images.

    Attributes
    ----------
    name : str
        ``"logistic"`` (softmax regression), ``"mlp"``, or ``"cnn"`` (a small convolutional
        network for flattened channel-first RGB images, see :mod:`miaudit.training.cnn`).
    hidden : tuple of int
        Hidden layer sizes (empty for ``logistic``); for ``cnn`` the conv widths, then the
        width of the dense hidden layer.
    activation : {"tanh", "relu"}
    epochs : int
    batch_size : int
        Minibatch size; with DP-SGD the *expected* size of a Poisson-sampled batch.
    lr : float
        Learning rate.
    weight_decay : float
        L2 penalty (decoupled for Adam: AdamW).
    optimizer : {"adam", "sgd"}
        Adam(W), or SGD with momentum 0.9.
    dropout : float, default 0.0
        Dropout rate after each hidden activation (``mlp`` only); 0 is off.
    label_smoothing : float, default 0.0
        Label smoothing of the cross-entropy, in [0, 1); 0 is off.
    early_stopping : int, default 0
        Patience in epochs (0 is off); see the module docstring.
    dp_epsilon : float or None, default None
        DP-SGD with the noise multiplier that reaches this epsilon after ``epochs``
        (Opacus' ``make_private_with_epsilon``, RDP accountant); None (or ``inf``) is off.
    dp_noise_multiplier : float, default 0.0
        DP-SGD with this noise multiplier (Opacus' ``make_private``); 0 is off. Give
        ``dp_epsilon`` or ``dp_noise_multiplier``, not both.
    dp_max_grad_norm : float, default 1.0
        Per-sample gradient clipping norm of DP-SGD.
    dp_delta : float, default 1e-5
        The delta at which the accountant's epsilon is stated (keep it below 1 / the
        number of training records).
    """

    name: str
    hidden: tuple[int, ...] = ()
    activation: str = "tanh"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    dropout: float = 0.0
    label_smoothing: float = 0.0
    early_stopping: int = 0
    dp_epsilon: float | None = None
    dp_noise_multiplier: float = 0.0
    dp_max_grad_norm: float = 1.0
    dp_delta: float = DEFAULT_DP_DELTA

    def __post_init__(self) -> None:
        # an infinite target epsilon is no DP at all: one spelling for "off"
        if self.dp_epsilon is not None and math.isinf(self.dp_epsilon) and self.dp_epsilon > 0:
            object.__setattr__(self, "dp_epsilon", None)

    @property
    def dp(self) -> bool:
        """Whether the recipe trains with DP-SGD."""
        return self.dp_epsilon is not None or self.dp_noise_multiplier > 0

    def to_dict(self) -> dict:
        """The recipe as JSON-ready data; ``make_recipe(d.pop("name"), d)`` rebuilds it.

        The defence fields (:data:`DEFENCE_FIELDS`) appear only when they change training:
        the others when not at their default (off), the DP-SGD settings all together when
        DP-SGD is on. So the dict (and the cache key built from it) of a recipe without
        defences is what it was before they existed, and it never holds an infinity.
        """
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        for name in DEFENCE_FIELDS:
            dp_setting = name.startswith("dp_")
            if (dp_setting and not self.dp) or (not dp_setting and d[name] == _DEFAULTS[name]):
                del d[name]
        return d

    def describe(self) -> str:
        # a model without hidden layers has no activation to name
        arch = ("-".join(str(h) for h in self.hidden) + f", {self.activation}"
                if self.hidden else "linear")
        extra = ""
        if self.dropout:
            extra += f", dropout {self.dropout:g}"
        if self.label_smoothing:
            extra += f", label smoothing {self.label_smoothing:g}"
        if self.early_stopping:
            extra += f", early stopping (patience {self.early_stopping})"
        if self.dp:
            budget = (f"eps={self.dp_epsilon:g}" if self.dp_epsilon is not None
                      else f"sigma={self.dp_noise_multiplier:g}")
            extra += (f", DP-SGD {budget} delta={self.dp_delta:g} "
                      f"clip={self.dp_max_grad_norm:g}")
        return (
            f"{self.name} ({arch}, {self.optimizer} lr={self.lr:g}, "
            f"wd={self.weight_decay:g}, {self.epochs} epochs, batch {self.batch_size}{extra})"
        )


#: Recipe fields added with the training defences, left out of :meth:`Recipe.to_dict`
#: while they are off.
DEFENCE_FIELDS = ("dropout", "label_smoothing", "early_stopping", "dp_epsilon",
                  "dp_noise_multiplier", "dp_max_grad_norm", "dp_delta")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Recipe)}

#: Default recipe of each name. The MLP matches the setting of Shokri et al. (2017) and
#: the brief's Location30 target: tanh, hidden sizes 256-128.
RECIPES: dict[str, Recipe] = {
    "logistic": Recipe("logistic", hidden=(), epochs=100, batch_size=128, lr=1e-2),
    "mlp": Recipe("mlp", hidden=(256, 128), activation="tanh", epochs=60, batch_size=64, lr=1e-3),
    "cnn": Recipe("cnn", hidden=(16, 32, 64, 128), activation="relu", epochs=20,
                  batch_size=64, lr=1e-3),
}

_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Recipe)}


def make_recipe(name: str, params: dict[str, object] | Iterable[str] | None = None) -> Recipe:
    """The named recipe with some parameters changed.

    Parameters
    ----------
    name : str
        A key of :data:`RECIPES`.
    params : dict or iterable of "key=value" strings, optional
        Overrides, e.g. ``{"epochs": 10}`` or ``["hidden=64,32", "activation=relu"]``.

    Examples
    --------
    >>> make_recipe("mlp", ["hidden=64,32", "epochs=5"]).hidden
    (64, 32)
    """
    key = name.strip().lower()
    if key not in RECIPES:
        close = difflib.get_close_matches(key, list(RECIPES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown model recipe {name!r}.{hint} Known recipes: "
                          f"{', '.join(RECIPES)}.")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        params = _parse_pairs(params)
    changes = {k: _coerce(k, v) for k, v in params.items()}
    recipe = dataclasses.replace(RECIPES[key], **changes)
    check_recipe(recipe)
    return recipe


def _parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"Model parameter {pair!r} is not of the form key=value.")
        out[k.strip().replace("-", "_")] = v.strip()
    return out


_INT_FIELDS = ("epochs", "batch_size", "early_stopping")
_FLOAT_FIELDS = ("lr", "weight_decay", "dropout", "label_smoothing", "dp_noise_multiplier",
                 "dp_max_grad_norm", "dp_delta")
_OFF = ("", "none", "off", "inf", "+inf", "infinity")


def _coerce(key: str, value: object) -> object:
    if key == "name" or key not in _FIELD_TYPES:
        known = ", ".join(k for k in _FIELD_TYPES if k != "name")
        raise ConfigError(f"Unknown model parameter {key!r}; known parameters: {known}.")
    try:
        if key == "hidden":
            if isinstance(value, str):
                parts = [p for p in value.replace("x", ",").split(",") if p.strip()]
                return tuple(int(p) for p in parts)
            if isinstance(value, int) and not isinstance(value, bool):  # one hidden layer
                return (value,)
            return tuple(int(v) for v in value)  # type: ignore[union-attr]
        if key in _INT_FIELDS:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)  # type: ignore[arg-type]
        if key in _FLOAT_FIELDS:
            return float(value)  # type: ignore[arg-type]
        if key == "dp_epsilon":  # None, "inf", "off": no DP
            if value is None or (isinstance(value, str) and value.strip().lower() in _OFF):
                return None
            eps = float(value)  # type: ignore[arg-type]
            return None if math.isinf(eps) and eps > 0 else eps
        return str(value).strip().lower()
    except (TypeError, ValueError):
        raise ConfigError(f"Model parameter {key}={value!r} has the wrong type.") from None


def check_recipe(r: Recipe) -> None:
    """Refuse a recipe with an unknown name, activation or optimizer, or bad numbers."""
    problems = []
    if r.name not in RECIPES:
        problems.append(f"name must be one of {', '.join(RECIPES)}, got {r.name!r}")
    if r.activation not in ACTIVATIONS:
        problems.append(f"activation must be one of {', '.join(ACTIVATIONS)}, got {r.activation!r}")
    if r.optimizer not in OPTIMIZERS:
        problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {r.optimizer!r}")
    if r.epochs < 1:
        problems.append(f"epochs must be >= 1, got {r.epochs}")
    if r.batch_size < 1:
        problems.append(f"batch_size must be >= 1, got {r.batch_size}")
    if not (math.isfinite(r.lr) and r.lr > 0):
        problems.append(f"lr must be a finite number > 0, got {r.lr}")
    if not (math.isfinite(r.weight_decay) and r.weight_decay >= 0):
        problems.append(f"weight_decay must be a finite number >= 0, got {r.weight_decay}")
    if any(h < 1 for h in r.hidden):
        problems.append(f"hidden sizes must be >= 1, got {list(r.hidden)}")
    if r.name == "logistic" and r.hidden:
        problems.append("the logistic recipe has no hidden layers; use --model mlp")
    if r.name == "mlp" and not r.hidden:
        problems.append("the mlp recipe needs at least one hidden layer (e.g. hidden=64); "
                        "for a linear model use --model logistic")
    if r.name == "cnn" and len(r.hidden) < 2:
        problems.append(f"the cnn recipe's hidden sizes are the conv widths then the dense "
                        f"width (at least two, e.g. 16,32,64,128), got {list(r.hidden)}")
    problems += _defence_problems(r)
    if problems:
        raise ConfigError(f"Invalid {r.name} recipe: " + "; ".join(problems) + ".")


def _defence_problems(r: Recipe) -> list[str]:
    problems = []
    if not 0 <= r.dropout < 1:
        problems.append(f"dropout must lie in [0, 1), got {r.dropout}")
    elif r.dropout and r.name != "mlp":
        problems.append(f"dropout applies after hidden layers of the mlp recipe; the "
                        f"{r.name} recipe does not support it (use --model mlp)")
    if not 0 <= r.label_smoothing < 1:
        problems.append(f"label_smoothing must lie in [0, 1), got {r.label_smoothing}")
    if r.early_stopping < 0:
        problems.append(f"early_stopping (patience in epochs) must be >= 0 (0 is off), "
                        f"got {r.early_stopping}")
    if r.dp_epsilon is not None and not (math.isfinite(r.dp_epsilon) and r.dp_epsilon > 0):
        problems.append(f"dp_epsilon must be a number > 0 (inf for no DP), got {r.dp_epsilon}")
    if not (math.isfinite(r.dp_noise_multiplier) and r.dp_noise_multiplier >= 0):
        problems.append(f"dp_noise_multiplier must be a finite number >= 0 (0 is off), got "
                        f"{r.dp_noise_multiplier}")
    if r.dp_epsilon is not None and r.dp_noise_multiplier > 0:
        problems.append("give dp_epsilon (a target) or dp_noise_multiplier, not both")
    if not (math.isfinite(r.dp_max_grad_norm) and r.dp_max_grad_norm > 0):
        problems.append(f"dp_max_grad_norm must be a finite number > 0, got "
                        f"{r.dp_max_grad_norm}")
    if not 0 < r.dp_delta < 1:
        problems.append(f"dp_delta must lie in (0, 1), got {r.dp_delta}")
    if r.dp and r.early_stopping:
        problems.append("early_stopping with DP-SGD is refused: the stopping epoch is chosen "
                        "on training records, which the accountant does not cover")
    return problems


def early_stopping_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (sorted) of the training and validation parts of a model's ``n`` records.

    The validation part is ``max(1, round(0.1 n))`` records drawn with
    ``numpy.random.default_rng([seed, 3])``; the same for a model trained alone and in a
    batch.

    Examples
    --------
    >>> fit, val = early_stopping_split(20, seed=0)
    >>> len(fit), len(val)
    (18, 2)
    """
    n_val = max(1, round(EARLY_STOPPING_FRACTION * n))
    if n - n_val < 1:
        raise ConfigError(f"Early stopping holds out {n_val} of {n} training records and "
                          "leaves none to train on; turn early_stopping off.")
    order = np.random.default_rng([seed, 3]).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class EarlyStopping:
    """Patience bookkeeping of one model: ``update(epoch, loss)`` says whether the epoch is
    the best so far; ``stopped`` once ``patience`` epochs passed without improvement."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch = 0
        self.wait = 0
        self.stopped = False

    def update(self, epoch: int, loss: float) -> bool:
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.wait = loss, epoch, 0
            return True
        self.wait += 1
        self.stopped = self.wait >= self.patience
        return False


def _torch():
    try:
        import torch
    except ImportError:
        raise DependencyError(
            "Training a recipe needs PyTorch: pip install torch==2.13.0 (CPU build), "
            "or pip install 'miaudit[torch]'."
        ) from None
    return torch


def dropout_mask(shape, generator, p: float, device):
    """The kept units of one dropout draw, as float ``1 / (1 - p)`` or 0 (see
    :func:`seeded_dropout`): ``torch.rand`` from ``generator`` on the CPU, so the same seed
    draws the same mask on every device."""
    torch = _torch()
    keep = torch.rand(shape, generator=generator) >= p
    return (keep.to(torch.float32) / (1 - p)).to(device)


@functools.cache
def seeded_dropout():
    """The dropout module class of the recipes: ``x * mask`` while training (identity in
    eval mode), masks drawn by :func:`dropout_mask` from the module's ``generator``
    (``None``: torch's global RNG). :func:`train` gives every dropout module of a model one
    generator seeded with ``seed + 2``, and the batched trainer draws from a generator of
    the same seed per model, in the same order, so both see the same masks."""
    torch = _torch()

    class SeededDropout(torch.nn.Module):
        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = float(p)
            self.generator = None

        def forward(self, x):
            if not self.training or self.p == 0:
                return x
            return x * dropout_mask(x.shape, self.generator, self.p, x.device)

        def extra_repr(self) -> str:
            return f"p={self.p:g}"

    return SeededDropout


def set_dropout_generator(module, seed: int) -> None:
    """Give every :func:`seeded_dropout` module of ``module`` one generator seeded ``seed``."""
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, seeded_dropout()):
            m.generator = gen


def make_optimizer(recipe: Recipe, params: list):
    """The recipe's optimizer: AdamW, or SGD with momentum 0.9.

    The fused (single-kernel) implementation is used: AdamW's update is element-wise, so
    one fused step over stacked models equals separate steps, and it makes one pass over
    all parameters instead of a few small kernels per tensor.
    """
    torch = _torch()
    if recipe.optimizer == "adam":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay,
                                 fused=True)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=0.9,
                           weight_decay=recipe.weight_decay, fused=True)


@dataclass
class TrainedModel:
    """A module trained by :func:`train`, with what is needed to describe it.

    Attributes
    ----------
    history : list of float
        Mean training loss of each epoch run.
    best_epoch : int or None
        With early stopping: the epoch (1-based) whose weights were kept.
    privacy : dict or None
        With DP-SGD: the accounting (see :class:`miaudit.training.dp.DPAccounting`), with the
        accountant's ``epsilon`` at ``delta``.
    """

    module: object
    recipe: Recipe
    seed: int
    n_features: int
    n_classes: int
    history: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    privacy: dict | None = None
