"""Train many models of one recipe together, as one batched computation.

The K models' weights are stacked along a leading model axis and every layer is one
batched matrix product (``torch.baddbmm``), so one forward/backward pass trains all of
them. Each model keeps its own initialisation seed, its own training records (a row of
the membership design) and its own minibatch order; Adam, AdamW and SGD act element-wise,
so a batched step equals K separate steps. Model ``m`` trained here matches
``train(recipe, X[design[m]], y[design[m]], seed=seeds[m])`` up to floating-point
rounding. The rows may differ in size (a target drawn per record with probability 1/2):
each model's epochs cover its own records, shorter minibatches are padded with entries of
weight 0, and a model leaves the batch once it has taken all its steps (see
:mod:`miaudit.training.stacked`); the ``cnn`` recipe trains each size of row as its own
batch.

Sparse inputs (one-hot and bag-of-features tables, where most entries are zero) can skip
the zeros in the first layer: its forward pass
sums the rows of ``W1`` picked by each record's non-zero features (``embedding_bag``) and
its weight gradient sums the rows of the output gradient per feature, instead of two dense
matrix products over mostly zero inputs (:mod:`miaudit.training.sparse`).

The ``cnn`` recipe is trained the same way by :mod:`miaudit.training.cnn` (grouped
convolutions): :func:`train_batched` then returns a :class:`~miaudit.training.cnn.StackedCNN`,
which :func:`predict_stacked` and :func:`stacked_state_dicts` recognise.

Training defences: ``label_smoothing``, ``dropout`` (each model draws its masks from its own
generator seeded ``seed + 2``, in the order :func:`~miaudit.training.single.train` does) and
``early_stopping`` (each model holds out its own
:func:`~miaudit.training.recipes.early_stopping_split`, stops on its own and keeps its best
epoch's weights; the batch ends when every model has stopped) are batched, and match the
models trained one by one. :func:`train_models` trains the rest one after another with
:func:`~miaudit.training.single.train`: DP-SGD recipes (Opacus, one model at a time, each
with its own Poisson sampling, clipping and noise), and ``cnn`` recipes with label
smoothing or early stopping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from miaudit.errors import ConfigError
from miaudit.training.checkpoint import Checkpoint
from miaudit.training.cnn import StackedCNN, cnn_state_dicts, predict_stacked_cnn, train_batched_cnn
from miaudit.training.recipes import (
    Recipe,
    _torch,
)
from miaudit.training.single import train
from miaudit.training.stacked import _train_stacked, forward_stacked

if TYPE_CHECKING:
    pass


def train_batched(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    design: np.ndarray,
    *,
    n_classes: int,
    seeds: list[int],
    device: str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
    sparse: bool | None = None,
) -> list | StackedCNN:
    """Train ``K = len(design)`` models together; model ``m`` on records ``design[m]``.

    Parameters
    ----------
    design : ndarray (K, N) bool
        Rows may hold different numbers of records (a Bernoulli target): each model's
        epochs cover its own records, in its own ``ceil(n_m / batch_size)`` steps; see
        :func:`~miaudit.training.stacked._train_stacked`.
    seeds : list of int
        One seed per model (initialisation ``seed``, minibatch order ``seed + 1``, dropout
        ``seed + 2``).
    sparse : bool, optional
        Train the first layer on the non-zero inputs only (same result up to rounding);
        default :func:`sparse_first_layer`. Ignored by the ``cnn`` recipe.

    Returns
    -------
    list of tensors, or StackedCNN
        The stacked parameters (detached), for :func:`forward_stacked`; for the ``cnn``
        recipe a :class:`~miaudit.training.cnn.StackedCNN` (see
        :func:`~miaudit.training.cnn.train_batched_cnn`). Both go to :func:`predict_stacked`
        and :func:`stacked_state_dicts`. DP-SGD recipes, and ``cnn`` recipes with label
        smoothing or early stopping, are refused: :func:`train_models` trains them one by
        one.
    """
    return _train_batched(recipe, X, y, design, n_classes=n_classes, seeds=seeds,
                          device=device, on_epoch=on_epoch, sparse=sparse)[0]


def _check_seeds(design: np.ndarray, seeds: list[int]) -> None:
    if len(seeds) != design.shape[0]:
        raise ConfigError(f"{len(seeds)} seeds for {design.shape[0]} models.")


def _train_batched(recipe, X, y, design, *, n_classes, seeds, device, on_epoch, sparse=None,
                   checkpoint: Checkpoint | None = None
                   ) -> tuple[list | StackedCNN, list[int] | None]:
    """:func:`train_batched`, and each model's best epoch with early stopping (else None).
    ``checkpoint`` applies to the MLP / logistic recipes (the ``cnn`` recipe trains without
    one)."""
    if needs_one_by_one(recipe):
        raise ConfigError(f"The recipe {recipe.describe()} is not trained as one batched "
                          "computation; use miaudit.training.batched.train_models.")
    design = np.asarray(design, dtype=bool)
    _check_seeds(design, seeds)
    if recipe.name == "cnn":
        return _train_cnn_by_size(recipe, X, y, design, n_classes=n_classes, seeds=seeds,
                                  device=device, on_epoch=on_epoch), None
    # models in decreasing order of their record counts (stable: the identity when equal)
    perm = np.argsort(-design.sum(axis=1), kind="stable")
    inverse = np.argsort(perm)
    params, best = _train_stacked(recipe, X, y, design[perm], n_classes=n_classes,
                                  seeds=[seeds[m] for m in perm], device=device,
                                  on_epoch=on_epoch, sparse=sparse, checkpoint=checkpoint)
    if (perm != np.arange(len(perm))).any():
        torch = _torch()
        back = torch.as_tensor(inverse, device=params[0].device)
        params = [torch.index_select(p, 0, back) for p in params]
        best = None if best is None else [best[m] for m in inverse]
    return params, best


def _train_cnn_by_size(recipe, X, y, design, *, n_classes, seeds, device, on_epoch
                       ) -> StackedCNN:
    """:func:`~miaudit.training.cnn.train_batched_cnn` on each group of rows of one size (it
    needs equal sizes), the groups' models stacked back in the design's order."""
    sizes = design.sum(axis=1)
    if (sizes == sizes[0]).all():
        return train_batched_cnn(recipe, X, y, design, n_classes=n_classes, seeds=seeds,
                                 device=device, on_epoch=on_epoch)
    torch = _torch()
    nets, order = [], []
    for size in np.unique(sizes)[::-1]:
        rows = np.flatnonzero(sizes == size)
        nets.append(train_batched_cnn(recipe, X, y, design[rows], n_classes=n_classes,
                                      seeds=[seeds[m] for m in rows], device=device))
        order.extend(rows.tolist())
    if on_epoch is not None:
        on_epoch(recipe.epochs)
    back = torch.as_tensor(np.argsort(order), device=next(iter(nets[0].params.values())).device)
    params = {k: torch.index_select(torch.cat([net.params[k] for net in nets]), 0, back)
              for k in nets[0].params}
    first = nets[0]
    return StackedCNN(params, first.hidden, first.activation, first.n_features,
                      first.n_classes)


def needs_one_by_one(recipe: Recipe) -> bool:
    """Whether :func:`train_models` trains the recipe's models one after another: DP-SGD
    (Opacus), and the ``cnn`` recipe with label smoothing or early stopping."""
    return recipe.dp or (recipe.name == "cnn"
                         and bool(recipe.label_smoothing or recipe.early_stopping))


@dataclass
class TrainedModels:
    """What :func:`train_models` returns.

    Attributes
    ----------
    params : list of tensors, or StackedCNN
        The stacked models, as :func:`train_batched` returns them.
    info : list of dict
        Per model: ``best_epoch`` (early stopping) and ``privacy`` (DP-SGD accounting, see
        :class:`~miaudit.training.dp.DPAccounting`), where they apply; else empty.
    batched : bool
        Whether the models were trained as one batched computation.
    """

    params: list | StackedCNN
    info: list[dict] = field(default_factory=list)
    batched: bool = True


def train_models(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    design: np.ndarray,
    *,
    n_classes: int,
    seeds: list[int],
    device: str = "cpu",
    on_model: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> TrainedModels:
    """Train one model per row of ``design``: batched when the recipe allows it, else one
    after another with :func:`~miaudit.training.single.train` (see :func:`needs_one_by_one`).

    Parameters
    ----------
    design : ndarray (K, N) bool
        Model ``m`` trains on records ``design[m]`` (rows may differ in size).
    seeds : list of int
        One seed per model.
    on_model : callable, optional
        Called as ``on_model(models_done)`` as models finish.
    on_epoch : callable, optional
        Called as ``on_epoch(models, epoch)`` when ``models`` models have finished their
        epoch ``epoch`` (1-based; for progress bars). Models stopped early report no
        further epochs.
    checkpoint : Checkpoint, optional
        Save the batched run's state there at its interval, and resume from it when it
        holds this run's state (:mod:`miaudit.training.checkpoint`); MLP and logistic
        recipes (models trained one by one, and ``cnn``, go without). After a resume,
        ``checkpoint.resumed_epoch`` says from which epoch.

    Returns
    -------
    TrainedModels
    """
    design = np.asarray(design, dtype=bool)
    if not needs_one_by_one(recipe):
        params, best = _train_batched(
            recipe, X, y, design, n_classes=n_classes, seeds=seeds, device=device,
            on_epoch=None if on_epoch is None else (lambda e: on_epoch(len(seeds), e)),
            checkpoint=checkpoint)
        if on_model is not None:
            on_model(len(seeds))
        info = [{} if best is None else {"best_epoch": b} for b in (best or [None] * len(seeds))]
        return TrainedModels(params, info, batched=True)
    _check_seeds(design, seeds)
    states, info = [], []
    for m, (row, seed) in enumerate(zip(design, seeds, strict=True)):
        trained = train(recipe, X[row], y[row], n_classes=n_classes, seed=seed, device=device,
                        on_epoch=None if on_epoch is None else (lambda e, _loss: on_epoch(1, e)))
        states.append({k: v.detach().cpu().numpy()
                       for k, v in trained.module.state_dict().items()})
        entry = {}
        if trained.best_epoch is not None:
            entry["best_epoch"] = trained.best_epoch
        if trained.privacy is not None:
            entry["privacy"] = trained.privacy
        info.append(entry)
        if on_model is not None:
            on_model(m + 1)
    return TrainedModels(stack_state_dicts(recipe, states, X.shape[1], n_classes, device),
                         info, batched=False)


def stack_state_dicts(recipe: Recipe, states: list[dict], n_features: int, n_classes: int,
                      device: str = "cpu") -> list | StackedCNN:
    """The inverse of :func:`stacked_state_dicts`: models' state dicts (numpy or torch,
    keyed as the recipe's ``build_module``) stacked for :func:`predict_stacked`."""
    torch = _torch()

    def stack(key: str, transpose: bool = False):
        arrs = [torch.as_tensor(np.asarray(s[key])) for s in states]
        if transpose:
            arrs = [a.T.contiguous() for a in arrs]
        return torch.stack(arrs).to(device)

    if recipe.name == "cnn":
        return StackedCNN({k: stack(k) for k in states[0]}, tuple(recipe.hidden),
                          recipe.activation, n_features, n_classes)
    params = []
    for layer in range(len(recipe.hidden) + 1):
        params.append(stack(f"{2 * layer}.weight", transpose=True))
        params.append(stack(f"{2 * layer}.bias")[:, None, :])
    return params


def predict_stacked(params: list | StackedCNN, X: np.ndarray, activation: str, *,
                    device: str = "cpu", batch_size: int = 8192) -> np.ndarray:
    """Logits of every stacked model on every record: ``(K, N, C)`` float32.

    ``params`` is what :func:`train_batched` returned; a ``StackedCNN`` carries its own
    activation (``activation`` is then ignored) and goes to
    :func:`~miaudit.training.cnn.predict_stacked_cnn`.
    """
    if isinstance(params, StackedCNN):
        return predict_stacked_cnn(params, X, device=device, batch_size=batch_size)
    torch = _torch()
    k = params[0].shape[0]
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(X[start : start + batch_size],
                                                      dtype=np.float32), device=device)
            out.append(forward_stacked(params, xb.expand(k, -1, -1), activation).cpu().numpy())
    return np.concatenate(out, axis=1)


def stacked_state_dicts(params: list | StackedCNN) -> list[dict[str, np.ndarray]]:
    """Each model's state dict (numpy arrays), keyed as the recipe's ``build_module`` module.

    Parameters
    ----------
    params : list of tensors, or StackedCNN
        What :func:`train_batched` returned.

    Returns
    -------
    list of dict
        One per model, ready for ``safetensors.numpy.save_file`` and for
        ``build_module(recipe, ...).load_state_dict`` (after ``torch.from_numpy``).
    """
    if isinstance(params, StackedCNN):
        return cnn_state_dicts(params)
    states = []
    for m in range(params[0].shape[0]):
        state = {}
        for layer in range(len(params) // 2):
            key = str(2 * layer)  # index of the Linear in the recipe's nn.Sequential
            state[f"{key}.weight"] = params[2 * layer][m].T.contiguous().cpu().numpy()
            state[f"{key}.bias"] = params[2 * layer + 1][m, 0].cpu().numpy()
        states.append(state)
    return states
