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
:func:`_train_stacked`); the ``cnn`` recipe trains each size of row as its own batch.

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

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from miaudit.errors import ConfigError
from miaudit.training.checkpoint import Checkpoint
from miaudit.training.cnn import StackedCNN, cnn_state_dicts, predict_stacked_cnn, train_batched_cnn
from miaudit.training.nets import build_module
from miaudit.training.recipes import (
    EarlyStopping,
    Recipe,
    _torch,
    dropout_mask,
    early_stopping_split,
    make_optimizer,
)
from miaudit.training.single import train
from miaudit.training.sparse import SparseBatch, SparseRows, _sparse_linear, sparse_first_layer

if TYPE_CHECKING:
    pass


def init_stacked(recipe: Recipe, n_features: int, n_classes: int, seeds: list[int],
                 device: str = "cpu") -> list:
    """Stacked parameters ``[W1, b1, W2, b2, ...]`` with ``W: (K, in, out)``, ``b: (K, 1, out)``,
    each model initialised exactly as :func:`~miaudit.training.single.train` would."""
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
                    dropout: float = 0.0, generators: list | None = None,
                    batch_sizes: list[int] | None = None):
    """Logits ``(K, B, C)`` of the stacked models on inputs ``x: (K, B, D)`` (or a
    :class:`SparseBatch` of them, while training).

    ``training=True`` uses the fast in-place ``tanh`` of :func:`_training_tanh` and, with
    ``dropout > 0``, multiplies each hidden activation by a dropout mask drawn for model
    ``m`` from ``generators[m]`` (as :func:`~miaudit.training.single.train` does). With
    ``batch_sizes``, model ``m``'s first ``batch_sizes[m]`` rows are its real records (the
    rest padding): its masks are drawn for those rows only, as when it trains alone.
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
        if isinstance(h, SparseBatch):
            h = _sparse_linear()(params[2 * i], params[2 * i + 1], h)
        else:
            h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if i < n_layers - 1:
            h = act(h)
            if training and dropout:
                if batch_sizes is None:
                    mask = torch.stack([dropout_mask(h.shape[1:], g, dropout, h.device)
                                        for g in generators])
                else:
                    mask = torch.zeros(h.shape, device=h.device)
                    for m, (g, b) in enumerate(zip(generators, batch_sizes, strict=True)):
                        mask[m, :b] = dropout_mask((b, h.shape[2]), g, dropout, h.device)
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
    sparse: bool | None = None,
) -> list | StackedCNN:
    """Train ``K = len(design)`` models together; model ``m`` on records ``design[m]``.

    Parameters
    ----------
    design : ndarray (K, N) bool
        Rows may hold different numbers of records (a Bernoulli target): each model's
        epochs cover its own records, in its own ``ceil(n_m / batch_size)`` steps; see
        :func:`_train_stacked`.
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


class _Group:
    """Models with as many training records ``n``, stepping through their epochs together.

    Each shuffles its records at the start of each of its epochs with its own generator
    seeded ``seed + 1`` (as :func:`~miaudit.training.single.train` does) and takes
    ``ceil(n / batch_size)`` steps per epoch, ``total`` in all.
    """

    def __init__(self, members, seeds: list[int], batch_size: int, epochs: int, device,
                 index: int = 0):
        torch = _torch()
        self.index = index  # position among the run's groups (for checkpoints)
        self.members = members  # (k, n) record indices
        self.k, self.n = int(members.shape[0]), int(members.shape[1])
        self.gens = [torch.Generator().manual_seed(s + 1) for s in seeds]
        self.batch_size = batch_size
        self.steps = -(-self.n // batch_size)
        self.total = self.steps * epochs
        self.device = device
        self.order = None
        self.done = 0  # steps taken

    def batch(self):
        """This step's records ``(k, b)``; a new shuffle at each epoch's start."""
        torch = _torch()
        j = self.done % self.steps
        if j == 0:
            perms = torch.stack([torch.randperm(self.n, generator=g) for g in self.gens])
            rows = torch.arange(self.k, device=self.device)[:, None]
            self.order = self.members[rows, perms.to(self.device)]
        start = j * self.batch_size
        return self.order[:, start : start + self.batch_size]

    def advance(self) -> bool:
        """Count the step taken; True when it ended an epoch."""
        self.done += 1
        return self.done % self.steps == 0

    @property
    def epochs_done(self) -> int:
        return self.done // self.steps if self.steps else self.total


def _train_stacked(recipe, X, y, design, *, n_classes, seeds, device, on_epoch, sparse=None,
                   checkpoint: Checkpoint | None = None) -> tuple[list, list[int] | None]:
    """The MLP / logistic models of ``design`` (rows sorted by decreasing size) trained as
    one batched computation.

    Each model runs through its own epochs: ``ceil(n_m / batch_size)`` steps each, the last
    one on the records left, as when it trains alone. Models with as many records form a
    group (:class:`_Group`: their minibatches have one size); at a step where the groups'
    minibatches differ in size the shorter ones are padded with entries of weight 0, so
    each model's loss is the mean over its own real records. A group that has taken all
    its steps leaves the batch (its parameters and optimizer state are sliced off the
    stack), so no model takes a step it would not take alone (AdamW and SGD with weight
    decay or momentum move a model even on a zero gradient). With equal rows this is one
    group and the plain loop: no padding, no slicing.
    """
    run = _StackedRun(recipe, X, y, design, n_classes=n_classes, seeds=seeds,
                      device=device, sparse=sparse)
    saved = None if checkpoint is None else checkpoint.load(run.dev)
    if saved is not None:
        run.restore(*saved)
        checkpoint.resumed_epoch = run.resumed
    while run.retire_finished():
        ended = run.step()
        if on_epoch is not None:
            run.report(on_epoch)
        if run.stoppers is not None and ended and _early_stop(
                run.params, run.best, run.stoppers, run.Xt, run.yt, run.val,
                recipe.activation, run.alive, ended):
            break
        if checkpoint is not None and checkpoint.due():
            checkpoint.save(*run.state())
    if on_epoch is not None and run.reported < recipe.epochs and run.stoppers is None:
        on_epoch(recipe.epochs)
    if run.stoppers is not None:
        return run.best, [s.best_epoch for s in run.stoppers]
    return run.final, None


class _StackedRun:
    """The state of one batched training run of :func:`_train_stacked`: the stacked
    parameters and optimizer of the models still in the batch, their groups (one per
    training-set size), each model's final weights once it leaves, and early stopping."""

    def __init__(self, recipe: Recipe, X: np.ndarray, y: np.ndarray, design: np.ndarray, *,
                 n_classes: int, seeds: list[int], device, sparse: bool | None) -> None:
        torch = _torch()
        dev = torch.device(device)
        self.recipe, self.n_classes, self.dev = recipe, n_classes, dev
        self.params = init_stacked(recipe, X.shape[1], n_classes, seeds, device)
        self.Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
        self.yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
        if sparse is None:
            sparse = sparse_first_layer(X, device)
        self.rows = SparseRows(X, device) if sparse else None
        self.gens = ([torch.Generator().manual_seed(s + 2) for s in seeds]
                     if recipe.dropout else None)
        members = [np.flatnonzero(row) for row in design]
        self.stoppers = self.val = self.best = None
        if recipe.early_stopping:
            held_out = []
            for m, s in enumerate(seeds):
                fit, held = early_stopping_split(len(members[m]), s)
                held_out.append(members[m][held])
                members[m] = members[m][fit]
            self.val = _Validation(held_out, dev)
            self.stoppers = [EarlyStopping(recipe.early_stopping) for _ in seeds]
            self.best = [p.detach().clone() for p in self.params]
        self.groups = _groups(members, seeds, recipe, dev)
        self.alive = np.arange(len(seeds))  # original position of each model of the stack
        self.final = [torch.empty_like(p, requires_grad=False) for p in self.params]
        self.opt = make_optimizer(recipe, self.params)
        self.reported = 0  # epochs reported to on_epoch
        self.resumed: int | None = None  # epochs done when resumed from a checkpoint

    def retire_finished(self) -> bool:
        """Models that took all their steps leave the batch (their weights are kept in
        ``final``); False when no model is left."""
        keep = np.concatenate([np.full(g.k, g.done < g.total) for g in self.groups])
        if keep.all():
            return True
        gone = np.flatnonzero(~keep)
        for f, p in zip(self.final, self.params, strict=True):
            f[self.alive[gone]] = p.detach()[gone]
        if not keep.any():
            return False
        stay = np.flatnonzero(keep)
        self.params, self.opt = _slice_models(self.recipe, self.params, self.opt, stay)
        self.alive = self.alive[stay]
        self.gens = None if self.gens is None else [self.gens[i] for i in stay]
        if self.val is not None:
            self.val.keep(stay)
        self.groups = [g for g in self.groups if g.done < g.total]
        return True

    def step(self) -> list[tuple[int, int]]:
        """One minibatch step of every model in the batch; returns ``(stack row, epochs
        done)`` of the models that ended an epoch."""
        torch, recipe, dev = _torch(), self.recipe, self.dev
        batches = [g.batch() for g in self.groups]
        widths = [b.shape[1] for b in batches]
        width = max(widths)
        idx = batches[0] if len(batches) == 1 else torch.cat(
            [torch.nn.functional.pad(b, (0, width - b.shape[1])) for b in batches])
        counts = weights = None
        if min(widths) < width:
            counts = [w for g, w in zip(self.groups, widths, strict=True) for _ in range(g.k)]
            n_real = torch.as_tensor(counts, device=dev)[:, None]
            weights = (torch.arange(width, device=dev)[None, :] < n_real) / n_real
        self.opt.zero_grad(set_to_none=True)
        if self.rows is not None:
            xb = self.rows.batch(idx)
        else:
            # index_select gathers whole rows, several times faster than Xt[idx]
            xb = torch.index_select(self.Xt, 0, idx.reshape(-1)).view(*idx.shape, -1)
        logits = forward_stacked(self.params, xb, recipe.activation, training=True,
                                 dropout=recipe.dropout, generators=self.gens,
                                 batch_sizes=counts)
        labels = torch.index_select(self.yt, 0, idx.reshape(-1))
        _stacked_loss(logits, labels, idx, weights, self.n_classes,
                      recipe.label_smoothing).backward()
        self.opt.step()
        ended, row = [], 0
        for g in self.groups:
            if g.advance():
                ended.extend((row + i, g.epochs_done) for i in range(g.k))
            row += g.k
        return ended

    def state(self) -> tuple[dict, dict]:
        """Everything needed to go on exactly where the run is: tensors and JSON state."""
        tensors = {f"param.{i}": p for i, p in enumerate(self.params)}
        tensors.update({f"final.{i}": f for i, f in enumerate(self.final)})
        for i, p in enumerate(self.params):
            for key, value in self.opt.state.get(p, {}).items():
                if value is not None:
                    tensors[f"opt.{i}.{key}"] = _as_tensor(value)
        for g, group in enumerate(self.groups):
            tensors.update({f"group.{g}.gen.{j}": gen.get_state()
                            for j, gen in enumerate(group.gens)})
            if group.order is not None:
                tensors[f"group.{g}.order"] = group.order
        for j, gen in enumerate(self.gens or []):
            tensors[f"dropout.{j}"] = gen.get_state()
        for i, b in enumerate(self.best or []):
            tensors[f"best.{i}"] = b
        state = {"alive": self.alive.tolist(), "reported": self.reported,
                 "groups": [[g.index, g.done] for g in self.groups],
                 "stoppers": None if self.stoppers is None else [
                     vars(st) for st in self.stoppers]}
        return tensors, state

    def restore(self, tensors: dict, state: dict) -> None:
        """Go on from a :meth:`state` saved by the same run (same recipe, data, seeds)."""
        self.alive = np.asarray(state["alive"], dtype=np.int64)
        self.reported = int(state["reported"])
        if len(self.alive) < len(self.final) and self.val is not None:
            self.val.keep(self.alive)
        if self.gens is not None:
            self.gens = [self.gens[m] for m in self.alive]
            for j, gen in enumerate(self.gens):
                gen.set_state(tensors[f"dropout.{j}"])
        self.params = [tensors[f"param.{i}"].clone().requires_grad_(True)
                       for i in range(len(self.params))]
        self.final = [tensors[f"final.{i}"].clone() for i in range(len(self.final))]
        self.opt = make_optimizer(self.recipe, self.params)
        for i, p in enumerate(self.params):
            prefix = f"opt.{i}."
            entries = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if entries:
                self.opt.state[p] = {k: v.clone() for k, v in entries.items()}
        by_index = {g.index: g for g in self.groups}
        self.groups = []
        for g, (index, done) in enumerate(state["groups"]):
            group = by_index[index]
            group.done = int(done)
            for j, gen in enumerate(group.gens):
                gen.set_state(tensors[f"group.{g}.gen.{j}"])
            order = tensors.get(f"group.{g}.order")
            group.order = None if order is None else order.to(self.dev)
            self.groups.append(group)
        if self.stoppers is not None:
            for st, saved in zip(self.stoppers, state["stoppers"], strict=True):
                vars(st).update(saved)
            self.best = [tensors[f"best.{i}"].clone() for i in range(len(self.best))]
        self.resumed = min(g.epochs_done for g in self.groups) if self.groups else 0

    def report(self, on_epoch: Callable[[int], None]) -> None:
        """Call ``on_epoch`` when every model has done one more epoch."""
        done = min(g.epochs_done for g in self.groups)  # groups gone have done them all
        if done > self.reported:
            self.reported = done
            on_epoch(done)


def _as_tensor(value):
    """An optimizer state value as a tensor (Adam's ``step`` may be a plain number)."""
    torch = _torch()
    return value if torch.is_tensor(value) else torch.tensor(float(value))


def _groups(members: list[np.ndarray], seeds: list[int], recipe: Recipe, dev) -> list[_Group]:
    """One :class:`_Group` per training-set size (the rows come sorted by size)."""
    torch = _torch()
    sizes = [len(r) for r in members]
    groups, first = [], 0
    for size in sorted(set(sizes), reverse=True):
        last = first + sizes.count(size)
        block = np.stack(members[first:last]).reshape(last - first, size)
        groups.append(_Group(torch.as_tensor(block, device=dev), seeds[first:last],
                             recipe.batch_size, recipe.epochs, dev, index=len(groups)))
        first = last
    return groups


def _stacked_loss(logits, labels, idx, weights, n_classes: int, label_smoothing: float):
    """The sum over models of each model's mean loss on its own minibatch (independent
    gradients); with ``weights``, the mean over its real records (padding weighs 0)."""
    torch = _torch()
    flat = logits.reshape(-1, n_classes)
    if weights is None:
        return torch.nn.functional.cross_entropy(
            flat, labels, reduction="sum", label_smoothing=label_smoothing) / idx.shape[1]
    return (torch.nn.functional.cross_entropy(
        flat, labels, reduction="none", label_smoothing=label_smoothing,
    ).view(idx.shape) * weights).sum()


def _slice_models(recipe: Recipe, params: list, opt, stay: np.ndarray) -> tuple[list, object]:
    """The stack reduced to models ``stay``, with a new optimizer holding their state
    (moments, momentum buffers sliced; step counters copied): the update of each model is
    element-wise, so they go on exactly as before."""
    torch = _torch()
    index = torch.as_tensor(stay, device=params[0].device)
    kept = [torch.index_select(p.detach(), 0, index).requires_grad_(True) for p in params]
    new = make_optimizer(recipe, kept)
    for old_p, new_p in zip(params, kept, strict=True):
        state = opt.state.get(old_p)
        if not state:
            continue
        new.state[new_p] = {
            key: (torch.index_select(v, 0, index) if torch.is_tensor(v) and v.dim() > 0
                  else v.clone() if torch.is_tensor(v) else v)
            for key, v in state.items()}
    return kept, new


class _Validation:
    """Each model's early-stopping records, padded to one length (weight 0)."""

    def __init__(self, rows: list[np.ndarray], device):
        torch = _torch()
        self.counts = np.array([len(r) for r in rows])
        width = int(self.counts.max())
        padded = np.zeros((len(rows), width), dtype=np.int64)
        for m, r in enumerate(rows):
            padded[m, : len(r)] = r
        self.idx = torch.as_tensor(padded, device=device)
        self.equal = bool((self.counts == width).all())
        self.mask = torch.as_tensor(np.arange(width)[None, :] < self.counts[:, None],
                                    dtype=torch.float32, device=device)

    def keep(self, stay: np.ndarray) -> None:
        self.counts = self.counts[stay]
        index = _torch().as_tensor(stay, device=self.idx.device)
        self.idx = self.idx[index]
        self.mask = self.mask[index]
        self.equal = self.equal or bool((self.counts == self.counts[0]).all())

    def losses(self, params, Xt, yt, activation):
        """Each model's mean validation loss, ``(K,)``."""
        torch = _torch()
        xv = torch.index_select(Xt, 0, self.idx.reshape(-1)).view(*self.idx.shape, -1)
        logits = forward_stacked(params, xv, activation)
        per = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), yt[self.idx].reshape(-1), reduction="none"
        ).view(self.idx.shape)
        if self.equal:
            return per[:, : int(self.counts[0])].mean(dim=1)
        return (per * self.mask).sum(dim=1) / self.mask.sum(dim=1)


def _early_stop(params, best, stoppers, Xt, yt, val, activation, alive, ended) -> bool:
    """Update the best weights of the models that ended an epoch (``ended``: their stack
    rows and epochs done) from their validation loss; True when every model still in the
    batch has stopped. A stopped model keeps training with the others (its updates are
    independent of theirs) but its best weights no longer change."""
    torch = _torch()
    with torch.no_grad():
        losses = val.losses(params, Xt, yt, activation)
        for row, epoch in ended:
            stopper = stoppers[alive[row]]
            if stopper.stopped:
                continue
            if stopper.update(epoch, float(losses[row])):
                for b, p in zip(best, params, strict=True):
                    b[alive[row]] = p[row]
    return all(stoppers[m].stopped for m in alive)


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
