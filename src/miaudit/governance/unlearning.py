"""Unlearning recipes for testing the forgetting check: three ways to make a trained recipe
model (:mod:`miaudit.training`) forget a set F of its training records.

* ``retrain``: exact unlearning, the model retrained from scratch on the retained records
  (the same recipe, another seed). What every other method is measured against.
* ``finetune``: continue training the original on the retained records for a few epochs,
  so that F fades by catastrophic forgetting ("fine-tune", Golatkar, Achille & Soatto,
  CVPR 2020; Warnecke et al., NDSS 2023). Cheap, and usually leaves F member-like.
* ``gradient-ascent``: a few full-batch steps of gradient *ascent* on the loss of F
  ("NegGrad", Golatkar et al. 2020; Thudi et al., EuroS&P 2022). Fast, and easily
  overshoots: F ends with a higher loss than records the model never saw.

Each returns the unlearned model's outputs on every record of the data, as arrays ready
for ``numpy.savez`` and :func:`miaudit.governance.forget.verify_forget`: ``{"ids": (N,),
"logits": (N, C)}``. :func:`shadow_outputs` trains the shadow models of U-LiRA (the same
training and unlearning, repeated with other seeds) in the stacked format of
:mod:`miaudit.governance.forget`.

Only the model owner can run these (they need the training data); the check itself needs
only the outputs.

Examples
--------
>>> import numpy as np
>>> from miaudit.data import load_dataset
>>> from miaudit.training.recipes import make_recipe
>>> from miaudit.training.single import train
>>> ds = load_dataset("digits")
>>> members = np.arange(400)
>>> original = train(make_recipe("mlp", {"hidden": 32, "epochs": 5}), ds.X[members],
...                  ds.y[members], n_classes=ds.n_classes, seed=0)
>>> out = unlearn("gradient-ascent", original=original, data=ds, retain=members[40:],
...               forget=members[:40], steps=2)
>>> out["logits"].shape == (ds.n_records, ds.n_classes)
True
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from miaudit.data import Dataset
from miaudit.errors import ConfigError
from miaudit.training.recipes import Recipe, TrainedModel, _torch, make_optimizer

__all__ = [
    "UNLEARNING_METHODS",
    "UnlearningMethod",
    "finetune",
    "gradient_ascent",
    "model_outputs",
    "retrain",
    "shadow_outputs",
    "train_many",
    "unlearn",
]


def model_outputs(model: TrainedModel, data: Dataset) -> dict[str, np.ndarray]:
    """A trained model's outputs on every record of ``data``: ``{"ids": (N,), "logits":
    (N, C) float64}``, ready for ``numpy.savez``."""
    torch = _torch()
    module = model.module
    module.eval()
    dev = next(module.parameters()).device
    with torch.no_grad():
        x = torch.as_tensor(np.ascontiguousarray(data.X, dtype=np.float32), device=dev)
        logits = module(x).cpu().numpy().astype(np.float64)
    return {"ids": np.asarray(data.ids), "logits": logits}


def _fit(module, X: np.ndarray, y: np.ndarray, recipe: Recipe, *, epochs: int, seed: int):
    """``epochs`` passes of minibatch descent of the cross-entropy on ``(X, y)`` with the
    recipe's optimizer and batch size; minibatch order from a generator seeded ``seed``.
    Trains ``module`` in place (no dropout or label smoothing)."""
    torch = _torch()
    dev = next(module.parameters()).device
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    opt = make_optimizer(recipe, list(module.parameters()))
    gen = torch.Generator().manual_seed(seed)
    module.train()
    for _ in range(epochs):
        perm = torch.randperm(len(yt), generator=gen).to(dev)
        for start in range(0, len(yt), recipe.batch_size):
            idx = perm[start : start + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(module(Xt[idx]), yt[idx]).backward()
            opt.step()
    module.eval()
    return module


def _copy(original: TrainedModel, seed: int) -> TrainedModel:
    return dataclasses.replace(original, module=copy.deepcopy(original.module), seed=seed,
                               history=[], best_epoch=None, privacy=None)


def retrain(original: TrainedModel, data: Dataset, *, retain: np.ndarray, forget: np.ndarray,
            seed: int = 1) -> TrainedModel:
    """Exact unlearning: the original's recipe trained from scratch on ``retain`` (seed
    ``seed``; ``forget`` is not read)."""
    from miaudit.training.single import train

    return train(original.recipe, data.X[retain], data.y[retain], n_classes=data.n_classes,
                 seed=seed)


def finetune(original: TrainedModel, data: Dataset, *, retain: np.ndarray,
             forget: np.ndarray, seed: int = 1, epochs: int = 5,
             lr: float | None = None) -> TrainedModel:
    """Fine-tuning: ``epochs`` more epochs of the original on ``retain`` alone, with the
    recipe's optimizer (fresh state) and batch size, at ``lr`` (default the recipe's)."""
    if epochs < 1:
        raise ConfigError(f"finetune: epochs must be >= 1, got {epochs}.")
    recipe = original.recipe if lr is None else dataclasses.replace(original.recipe, lr=lr)
    model = _copy(original, seed)
    _fit(model.module, data.X[retain], data.y[retain], recipe, epochs=epochs, seed=seed)
    return model


def gradient_ascent(original: TrainedModel, data: Dataset, *, retain: np.ndarray,
                    forget: np.ndarray, seed: int = 1, steps: int = 5,
                    lr: float = 1e-3) -> TrainedModel:
    """Gradient ascent: ``steps`` full-batch steps of plain SGD (no momentum, no weight
    decay) *up* the cross-entropy of ``forget`` at learning rate ``lr``."""
    if steps < 1:
        raise ConfigError(f"gradient-ascent: steps must be >= 1, got {steps}.")
    if not lr > 0:
        raise ConfigError(f"gradient-ascent: lr must be > 0, got {lr}.")
    model = _copy(original, seed)
    torch = _torch()
    module = model.module
    dev = next(module.parameters()).device
    Xt = torch.as_tensor(np.ascontiguousarray(data.X[forget], dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(data.y[forget], dtype=np.int64), device=dev)
    opt = torch.optim.SGD(module.parameters(), lr=lr)
    module.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        (-torch.nn.functional.cross_entropy(module(Xt), yt)).backward()
        opt.step()
    module.eval()
    return model


@dataclass(frozen=True)
class UnlearningMethod:
    """A registered unlearning recipe.

    Attributes
    ----------
    name : str
    fn : callable
        ``fn(original, data, *, retain, forget, seed, **params) -> TrainedModel``.
    exact : bool
        Whether the result is distributed as a model retrained without F.
    description, reference : str
    """

    name: str
    fn: Callable[..., TrainedModel]
    exact: bool
    description: str
    reference: str


#: The unlearning recipes, by name.
UNLEARNING_METHODS: dict[str, UnlearningMethod] = {}


def _register(method: UnlearningMethod) -> None:
    UNLEARNING_METHODS[method.name] = method


_register(UnlearningMethod("retrain", retrain, True,
                           "retrain from scratch without F (exact)", "the oracle"))
_register(UnlearningMethod("finetune", finetune, False,
                           "fine-tune on the retained records for a few epochs",
                           "Golatkar, Achille & Soatto, CVPR 2020"))
_register(UnlearningMethod("gradient-ascent", gradient_ascent, False,
                           "a few steps of gradient ascent on the loss of F",
                           "Golatkar et al. 2020 (NegGrad); Thudi et al., EuroS&P 2022"))


def _method(name: str) -> UnlearningMethod:
    if name not in UNLEARNING_METHODS:
        close = difflib.get_close_matches(name, list(UNLEARNING_METHODS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown unlearning method {name!r}.{hint} Known methods: "
                          f"{', '.join(UNLEARNING_METHODS)}.")
    return UNLEARNING_METHODS[name]


def _positions(retain, forget, n: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(retain, dtype=np.intp).reshape(-1)
    f = np.asarray(forget, dtype=np.intp).reshape(-1)
    if len(f) == 0 or len(r) == 0:
        raise ConfigError("'retain' and 'forget' must each hold at least one record position.")
    for name, p in (("retain", r), ("forget", f)):
        if p.min() < 0 or p.max() >= n:
            raise ConfigError(f"'{name}' holds positions outside the data's 0..{n - 1}.")
    if np.intersect1d(r, f).size:
        raise ConfigError("'retain' and 'forget' share records; F must be left out of the "
                          "retained records.")
    return r, f


def unlearn(method: str, *, original: TrainedModel, data: Dataset, retain, forget,
            seed: int = 1, **params) -> dict[str, np.ndarray]:
    """Make ``original`` (trained on ``retain`` and ``forget``) forget ``forget``.

    Parameters
    ----------
    method : str
        A key of :data:`UNLEARNING_METHODS`: ``"retrain"``, ``"finetune"`` (params
        ``epochs=5``, ``lr``) or ``"gradient-ascent"`` (params ``steps=5``, ``lr=1e-3``).
    original : TrainedModel
        The model trained on the retained records and F (:func:`miaudit.training.single.
        train`); left unchanged.
    data : Dataset
        The data the positions refer to.
    retain, forget : arrays of int
        Positions in ``data`` of the retained records and of F.
    seed : int, default 1
        Seed of the method (initialisation of a retrain, minibatch order).

    Returns
    -------
    dict
        ``{"ids": (N,), "logits": (N, C)}``: the unlearned model's outputs on every record
        of ``data``.
    """
    m = _method(method)
    r, f = _positions(retain, forget, data.n_records)
    return model_outputs(m.fn(original, data, retain=r, forget=f, seed=seed, **params), data)


def train_many(recipe: Recipe, data: Dataset, design: np.ndarray,
               seeds: list[int]) -> list[TrainedModel]:
    """Train one model per row of ``design`` ((K, N) bool: model ``k`` trains on
    ``data`` records ``design[k]``), batched when the recipe allows it
    (:func:`miaudit.training.batched.train_models`); each as a :class:`TrainedModel`."""
    from miaudit.training.batched import stacked_state_dicts, train_models
    from miaudit.training.nets import build_module

    torch = _torch()
    trained = train_models(recipe, data.X, data.y, design, n_classes=data.n_classes,
                           seeds=seeds)
    models = []
    for state, seed in zip(stacked_state_dicts(trained.params), seeds, strict=True):
        module = build_module(recipe, data.n_features, data.n_classes)
        module.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        module.eval()
        models.append(TrainedModel(module, recipe, seed, data.n_features, data.n_classes))
    return models


def shadow_outputs(method: str, *, recipe: Recipe, data: Dataset, retain, forget,
                   n_shadows: int = 8, seed: int = 1000, **params) -> dict[str, np.ndarray]:
    """Shadow models for U-LiRA (Hayes et al. 2024), in the format of
    :mod:`miaudit.governance.forget`.

    ``n_shadows`` models are trained on ``retain`` and ``forget`` and made to forget
    ``forget`` with ``method`` (the ``unlearned`` stack), and ``n_shadows`` are trained on
    ``retain`` alone (the ``retrained`` stack); seeds from ``seed`` on, distinct from the
    audited models'. Trainings are batched when the recipe allows.

    Returns
    -------
    dict
        ``ids`` (N,), ``unlearned_logits`` and ``retrained_logits`` (n_shadows, N, C).
    """
    m = _method(method)
    if n_shadows < 1:
        raise ConfigError(f"n_shadows must be >= 1, got {n_shadows}.")
    r, f = _positions(retain, forget, data.n_records)
    n = data.n_records
    full = np.zeros((n_shadows, n), dtype=bool)
    full[:, np.concatenate([r, f])] = True
    kept = np.zeros((n_shadows, n), dtype=bool)
    kept[:, r] = True
    seeds = [seed + 10 * k for k in range(n_shadows)]
    retrained = train_many(recipe, data, kept, [s + 1 for s in seeds])
    if m.exact:  # an exact method's unlearned shadows are retrains too: train them batched
        unlearned = train_many(recipe, data, kept, [s + 2 for s in seeds])
    else:
        originals = train_many(recipe, data, full, seeds)
        unlearned = [m.fn(o, data, retain=r, forget=f, seed=s + 2, **params)
                     for o, s in zip(originals, seeds, strict=True)]
    return {"ids": np.asarray(data.ids),
            "unlearned_logits": np.stack([model_outputs(u, data)["logits"] for u in unlearned]),
            "retrained_logits": np.stack([model_outputs(u, data)["logits"] for u in retrained])}
