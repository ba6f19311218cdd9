"""Training recipes: an architecture plus hyper-parameters, trained with PyTorch.

A :class:`Recipe` is plain data (it hashes and serialises), so the same recipe can train
the target now and reference models later. PyTorch is imported only when training.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from miaudit.errors import ConfigError, DependencyError

ACTIVATIONS = ("tanh", "relu")
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class Recipe:
    """How to build and train a classifier on tabular features or images.

    Attributes
    ----------
    name : str
        ``"logistic"`` (softmax regression), ``"mlp"``, or ``"cnn"`` (a small convolutional
        network for flattened channel-first RGB images, see :mod:`miaudit.models.cnn`).
    hidden : tuple of int
        Hidden layer sizes (empty for ``logistic``); for ``cnn`` the conv widths, then the
        width of the dense hidden layer.
    activation : {"tanh", "relu"}
    epochs : int
    batch_size : int
    lr : float
        Learning rate.
    weight_decay : float
        L2 penalty (decoupled for Adam: AdamW).
    optimizer : {"adam", "sgd"}
        Adam(W), or SGD with momentum 0.9.
    """

    name: str
    hidden: tuple[int, ...] = ()
    activation: str = "tanh"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def describe(self) -> str:
        # a model without hidden layers has no activation to name
        arch = ("-".join(str(h) for h in self.hidden) + f", {self.activation}"
                if self.hidden else "linear")
        return (
            f"{self.name} ({arch}, {self.optimizer} lr={self.lr:g}, "
            f"wd={self.weight_decay:g}, {self.epochs} epochs, batch {self.batch_size})"
        )


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


def _coerce(key: str, value: object) -> object:
    if key == "name" or key not in _FIELD_TYPES:
        known = ", ".join(k for k in _FIELD_TYPES if k != "name")
        raise ConfigError(f"Unknown model parameter {key!r}; known parameters: {known}.")
    try:
        if key == "hidden":
            if isinstance(value, str):
                parts = [p for p in value.replace("x", ",").split(",") if p.strip()]
                return tuple(int(p) for p in parts)
            return tuple(int(v) for v in value)  # type: ignore[union-attr]
        if key in ("epochs", "batch_size"):
            return int(value)  # type: ignore[arg-type]
        if key in ("lr", "weight_decay"):
            return float(value)  # type: ignore[arg-type]
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
    if r.name == "cnn" and len(r.hidden) < 2:
        problems.append(f"the cnn recipe's hidden sizes are the conv widths then the dense "
                        f"width (at least two, e.g. 16,32,64,128), got {list(r.hidden)}")
    if problems:
        raise ConfigError(f"Invalid {r.name} recipe: " + "; ".join(problems) + ".")


def _torch():
    try:
        import torch
    except ImportError:
        raise DependencyError(
            "Training a recipe needs PyTorch: pip install torch==2.13.0 (CPU build), "
            "or pip install 'miaudit[torch]'."
        ) from None
    return torch


def build_module(recipe: Recipe, n_features: int, n_classes: int):
    """The ``torch.nn.Module`` of a recipe (initialised from torch's global RNG)."""
    if recipe.name == "cnn":
        from miaudit.models.cnn import build_cnn

        return build_cnn(n_classes, hidden=recipe.hidden, activation=recipe.activation,
                         n_features=n_features)
    torch = _torch()
    nn = torch.nn
    layers: list = []
    width = n_features
    act = nn.Tanh if recipe.activation == "tanh" else nn.ReLU
    for h in recipe.hidden:
        layers += [nn.Linear(width, h), act()]
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


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
    """A module trained by :func:`train`, with what is needed to describe it."""

    module: object
    recipe: Recipe
    seed: int
    n_features: int
    n_classes: int
    history: list[float] = field(default_factory=list)


def train(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainedModel:
    """Train one model of ``recipe`` on ``(X, y)``; deterministic on CPU for a seed.

    Parameters
    ----------
    on_epoch : callable, optional
        Called as ``on_epoch(epoch, mean_loss)`` after each epoch (for progress bars).
    """
    torch = _torch()
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_module(recipe, X.shape[1], n_classes).to(dev)
    gen = torch.Generator().manual_seed(seed + 1)
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    opt = make_optimizer(recipe, list(module.parameters()))
    loss_fn = torch.nn.CrossEntropyLoss()
    n = len(yt)
    history: list[float] = []
    module.train()
    for epoch in range(recipe.epochs):
        perm = torch.randperm(n, generator=gen).to(dev)
        total = 0.0
        for start in range(0, n, recipe.batch_size):
            idx = perm[start : start + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(module(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / n)
        if on_epoch is not None:
            on_epoch(epoch + 1, history[-1])
    module.eval()
    return TrainedModel(module, recipe, seed, X.shape[1], n_classes, history)
