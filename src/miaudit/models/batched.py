"""Train many models of one recipe together, as one batched computation.

The K models' weights are stacked along a leading model axis and every layer is one
batched matrix product (``torch.baddbmm``), so one forward/backward pass trains all of
them. Each model keeps its own initialisation seed, its own training records (a row of
the membership design) and its own minibatch order; Adam, AdamW and SGD act element-wise,
so a batched step equals K separate steps. Model ``m`` trained here matches
``train(recipe, X[design[m]], y[design[m]], seed=seeds[m])`` up to floating-point
rounding.

The ``cnn`` recipe is trained the same way by :mod:`miaudit.models.cnn` (grouped
convolutions): :func:`train_batched` then returns a :class:`~miaudit.models.cnn.StackedCNN`,
which :func:`predict_stacked` and :func:`stacked_state_dicts` recognise.

Training defences: ``label_smoothing``, ``dropout`` (each model draws its masks from its own
generator seeded ``seed + 2``, in the order :func:`~miaudit.models.recipes.train` does) and
``early_stopping`` (each model holds out its own
:func:`~miaudit.models.recipes.early_stopping_split`, stops on its own and keeps its best
epoch's weights; the batch ends when every model has stopped) are batched, and match the
models trained one by one. :func:`train_models` trains the rest one after another with
:func:`~miaudit.models.recipes.train`: DP-SGD recipes (Opacus, one model at a time, each
with its own Poisson sampling, clipping and noise), and ``cnn`` recipes with label
smoothing or early stopping.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from miaudit.errors import ConfigError
from miaudit.models._batching import epoch_orders, records_per_model
from miaudit.models.cnn import StackedCNN, cnn_state_dicts, predict_stacked_cnn, train_batched_cnn
from miaudit.models.recipes import (
    EarlyStopping,
    Recipe,
    _torch,
    build_module,
    dropout_mask,
    early_stopping_split,
    make_optimizer,
    train,
)


def init_stacked(recipe: Recipe, n_features: int, n_classes: int, seeds: list[int],
                 device: str = "cpu") -> list:
    """Stacked parameters ``[W1, b1, W2, b2, ...]`` with ``W: (K, in, out)``, ``b: (K, 1, out)``,
    each model initialised exactly as :func:`~miaudit.models.recipes.train` would."""
    torch = _torch()
    per_model = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build_module(recipe, n_features, n_classes)
        linears = [m for m in module if isinstance(m, torch.nn.Linear)]
        per_model.append([(lin.weight.detach().T.contiguous(), lin.bias.detach()[None, :])
                          for lin in linears])
    params = []
    for layer in range(len(per_model[0])):
        for part in (0, 1):
            stacked = torch.stack([pm[layer][part] for pm in per_model]).to(device)
            params.append(stacked.requires_grad_(True))
    return params


@functools.cache
def _training_tanh():
    """``tanh`` as ``2 sigmoid(2x) - 1``, in place, with the usual ``1 - y^2`` backward.

    ATen's float32 ``tanh`` runs about four times slower than its ``sigmoid`` on CPU (on
    the 2-core benchmark machine a quarter of a training step went to it). This form agrees
    with ``torch.tanh`` to 2e-7 (float32 rounding of a value in [-1, 1]); it is used while
    training only, so predictions and saved models use the exact ``torch.tanh``.
    """
    torch = _torch()

    class FastTanh(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h):
            y = torch.sigmoid_(h.mul_(2)).mul_(2).sub_(1)
            ctx.mark_dirty(h)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return torch.ops.aten.tanh_backward(grad, y)

    return FastTanh.apply


def forward_stacked(params: list, x, activation: str, *, training: bool = False,
                    dropout: float = 0.0, generators: list | None = None):
    """Logits ``(K, B, C)`` of the stacked models on inputs ``x: (K, B, D)``.

    ``training=True`` uses the fast in-place ``tanh`` of :func:`_training_tanh` and, with
    ``dropout > 0``, multiplies each hidden activation by a dropout mask drawn for model
    ``m`` from ``generators[m]`` (as :func:`~miaudit.models.recipes.train` does).
    """
    torch = _torch()
    # in place: baddbmm's backward does not need its output, so the activation may
    # overwrite it (one allocation less per layer and step)
    if activation == "tanh":
        act = _training_tanh() if training else torch.tanh_
    else:
        act = torch.relu_
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if i < n_layers - 1:
            h = act(h)
            if training and dropout:
                mask = torch.stack([dropout_mask(h.shape[1:], g, dropout, h.device)
                                    for g in generators])
                h = h * mask
    return h


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
) -> list | StackedCNN:
    """Train ``K = len(design)`` models together; model ``m`` on records ``design[m]``.

    Parameters
    ----------
    design : ndarray (K, N) bool
        Every row must hold the same number of records (the game's designs do).
    seeds : list of int
        One seed per model (initialisation ``seed``, minibatch order ``seed + 1``, dropout
        ``seed + 2``).

    Returns
    -------
    list of tensors, or StackedCNN
        The stacked parameters (detached), for :func:`forward_stacked`; for the ``cnn``
        recipe a :class:`~miaudit.models.cnn.StackedCNN` (see
        :func:`~miaudit.models.cnn.train_batched_cnn`). Both go to :func:`predict_stacked`
        and :func:`stacked_state_dicts`. DP-SGD recipes, and ``cnn`` recipes with label
        smoothing or early stopping, are refused: :func:`train_models` trains them one by
        one.
    """
    return _train_batched(recipe, X, y, design, n_classes=n_classes, seeds=seeds,
                          device=device, on_epoch=on_epoch)[0]


def _train_batched(recipe, X, y, design, *, n_classes, seeds, device, on_epoch
                   ) -> tuple[list | StackedCNN, list[int] | None]:
    """:func:`train_batched`, and each model's best epoch with early stopping (else None)."""
    if needs_one_by_one(recipe):
        raise ConfigError(f"The recipe {recipe.describe()} is not trained as one batched "
                          "computation; use miaudit.models.batched.train_models.")
    if recipe.name == "cnn":
        return train_batched_cnn(recipe, X, y, design, n_classes=n_classes, seeds=seeds,
                                 device=device, on_epoch=on_epoch), None
    torch = _torch()
    design = np.asarray(design, dtype=bool)
    n = records_per_model(design, seeds)
    dev = torch.device(device)
    params = init_stacked(recipe, X.shape[1], n_classes, seeds, device)
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    gens = [torch.Generator().manual_seed(s + 2) for s in seeds] if recipe.dropout else None
    stoppers = val_idx = best = None
    if recipe.early_stopping:
        fit_design = np.zeros_like(design)
        val_rows = []
        for m, (row, s) in enumerate(zip(design, seeds, strict=True)):
            members = np.flatnonzero(row)
            fit, val = early_stopping_split(n, s)
            fit_design[m, members[fit]] = True
            val_rows.append(members[val])
        design = fit_design
        n = int(design[0].sum())
        val_idx = torch.as_tensor(np.stack(val_rows), device=dev)
        stoppers = [EarlyStopping(recipe.early_stopping) for _ in seeds]
        best = [p.detach().clone() for p in params]
    opt = make_optimizer(recipe, params)
    for epoch, order in enumerate(epoch_orders(design, seeds, recipe.epochs, dev)):
        for start in range(0, n, recipe.batch_size):
            idx = order[:, start : start + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            # index_select gathers whole rows, several times faster than Xt[idx]
            xb = torch.index_select(Xt, 0, idx.reshape(-1)).view(*idx.shape, -1)
            logits = forward_stacked(params, xb, recipe.activation, training=True,
                                     dropout=recipe.dropout, generators=gens)
            # mean over each model's batch, summed over models: independent gradients
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, n_classes), yt[idx].reshape(-1), reduction="sum",
                label_smoothing=recipe.label_smoothing,
            ) / idx.shape[1]
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch + 1)
        if stoppers is not None and _early_stop(params, best, stoppers, Xt, yt, val_idx,
                                                recipe.activation, epoch + 1):
            break
    if stoppers is not None:
        return best, [s.best_epoch for s in stoppers]
    return [p.detach() for p in params], None


def _early_stop(params, best, stoppers, Xt, yt, val_idx, activation, epoch) -> bool:
    """Update each running model's best weights from its validation loss; True when every
    model has stopped. A stopped model keeps training with the others (its updates are
    independent of theirs) but its best weights no longer change."""
    torch = _torch()
    with torch.no_grad():
        xv = torch.index_select(Xt, 0, val_idx.reshape(-1)).view(*val_idx.shape, -1)
        logits = forward_stacked(params, xv, activation)
        losses = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), yt[val_idx].reshape(-1), reduction="none"
        ).view(val_idx.shape).mean(dim=1)
        for m, stopper in enumerate(stoppers):
            if stopper.stopped:
                continue
            if stopper.update(epoch, float(losses[m])):
                for b, p in zip(best, params, strict=True):
                    b[m] = p[m]
    return all(s.stopped for s in stoppers)


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
        :class:`~miaudit.models.dp.DPAccounting`), where they apply; else empty.
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
) -> TrainedModels:
    """Train one model per row of ``design``: batched when the recipe allows it, else one
    after another with :func:`~miaudit.models.recipes.train` (see :func:`needs_one_by_one`).

    Parameters
    ----------
    design : ndarray (K, N) bool
        Model ``m`` trains on records ``design[m]``; every row holds the same number.
    seeds : list of int
        One seed per model.
    on_model : callable, optional
        Called as ``on_model(models_done)`` as models finish.

    Returns
    -------
    TrainedModels
    """
    design = np.asarray(design, dtype=bool)
    if not needs_one_by_one(recipe):
        params, best = _train_batched(recipe, X, y, design, n_classes=n_classes,
                                      seeds=seeds, device=device, on_epoch=None)
        if on_model is not None:
            on_model(len(seeds))
        info = [{} if best is None else {"best_epoch": b} for b in (best or [None] * len(seeds))]
        return TrainedModels(params, info, batched=True)
    records_per_model(design, seeds)
    states, info = [], []
    for m, (row, seed) in enumerate(zip(design, seeds, strict=True)):
        trained = train(recipe, X[row], y[row], n_classes=n_classes, seed=seed, device=device)
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
    :func:`~miaudit.models.cnn.predict_stacked_cnn`.
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
