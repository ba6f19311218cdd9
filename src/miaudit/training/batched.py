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
matrix products over mostly zero inputs (see :func:`sparse_first_layer`).

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

if TYPE_CHECKING:
    import torch


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


#: inputs with at most this share of non-zero entries train with a sparse first layer by
#: default. Measured on 2 CPU cores, 16 models (benchmarks/batched_training.py): 1.74x
#: faster for 2,000 features at 3% non-zero, 1.59x for 6,000 at 1%, 1.2x on Location30 (446
#: features, 12%); in one-off runs as fast as dense at 25%, and about 3% slower than dense
#: for 4 or 8 models at 12%.
SPARSE_DENSITY = 0.15


def sparse_first_layer(X: np.ndarray, device: str = "cpu") -> bool:
    """Whether :func:`train_batched` trains on ``X`` with a sparse first layer by default:
    on CPU, for at least 32 features of which at most :data:`SPARSE_DENSITY` are non-zero."""
    if str(device) != "cpu" or X.ndim != 2 or X.shape[1] < 32 or X.size == 0:
        return False
    return np.count_nonzero(X) <= SPARSE_DENSITY * X.size


@dataclass
class SparseBatch:
    """A minibatch of ``K`` models x ``B`` records as flat lists of non-zero entries.

    Attributes
    ----------
    indices : tensor (nnz,)
        ``model * n_features + feature`` of each entry: a row of the flattened ``W1``.
    offsets : tensor (K * B,)
        Where each (model, record) bag starts in ``indices``.
    bags : tensor (nnz,)
        ``model * B + record`` of each entry.
    weights : tensor (nnz,) or None
        The entries' values; None when every non-zero input is 1.
    shape : (K, B)
    """

    indices: torch.Tensor
    offsets: torch.Tensor
    bags: torch.Tensor
    weights: torch.Tensor | None
    shape: tuple[int, int]


class SparseRows:
    """The non-zero entries of a fixed input matrix (CSR), cut into :class:`SparseBatch`."""

    def __init__(self, X: np.ndarray, device: str = "cpu"):
        torch = _torch()
        rows, cols = np.nonzero(X)  # row-major: sorted by record, then feature
        values = np.asarray(X[rows, cols], dtype=np.float32)
        # 32-bit indices (embedding_bag, sort and gathers run faster) while every index fits:
        # entries, and model * n_features + feature (K <= records, so below X.size)
        self.dtype = torch.int32 if X.size < 2**31 - 1 else torch.int64
        as_index = functools.partial(torch.as_tensor, dtype=self.dtype, device=device)
        self.n_features = X.shape[1]
        row_nnz = np.bincount(rows, minlength=len(X))
        self.row_nnz = as_index(row_nnz)
        self.row_start = as_index(np.concatenate([[0], np.cumsum(row_nnz)[:-1]]))
        self.cols = as_index(cols)
        self.values = None if np.all(values == 1) else torch.as_tensor(values, device=device)
        self._arange = as_index(np.arange(0))

    def _range(self, n: int):
        """``arange(n)``, sliced from a cached one."""
        if len(self._arange) < n:
            self._arange = _torch().arange(2 * n, dtype=self.dtype, device=self._arange.device)
        return self._arange[:n]

    def batch(self, idx) -> SparseBatch:
        """The entries of records ``idx: (K, B)`` (model ``m`` reads rows ``idx[m]``)."""
        torch = _torch()
        k, b = idx.shape
        rows = idx.reshape(-1)
        lengths = torch.index_select(self.row_nnz, 0, rows)
        starts = torch.zeros(k * b + 1, dtype=self.dtype, device=rows.device)
        torch.cumsum(lengths, 0, out=starts[1:])
        total = int(starts[-1])
        def spread(per_row):  # one value per (model, record) -> one per entry
            return torch.repeat_interleave(per_row, lengths, output_size=total)
        bags = spread(self._range(k * b))
        # position of each entry in the CSR arrays: its row's start plus its rank in the row
        pos = spread(torch.index_select(self.row_start, 0, rows) - starts[:-1])
        pos += self._range(total)
        indices = torch.index_select(self.cols, 0, pos)
        indices += spread(self._range(k).repeat_interleave(b) * self.n_features)
        weights = None if self.values is None else torch.index_select(self.values, 0, pos)
        return SparseBatch(indices, starts[:-1], bags, weights, (k, b))


@functools.cache
def _sparse_linear():
    """``x @ W + b`` for a :class:`SparseBatch` ``x``, through ``embedding_bag``.

    Forward: row ``(m, r)`` of the output sums the rows ``W[m, f]`` of the record's
    non-zero features ``f`` (times their values). Backward: the weight gradient
    ``x^T grad`` sums, for each (model, feature), the output-gradient rows of the records
    that have the feature; the entries are sorted by feature once per step so that this is
    an ``embedding_bag`` too. No input gradient (the first layer's input is data).
    """
    torch = _torch()
    bag = torch.nn.functional.embedding_bag

    class SparseLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight, bias, x):
            k, d, h = weight.shape
            ctx.x, ctx.shape = x, (k, d, h)
            out = bag(x.indices, weight.reshape(k * d, h), x.offsets, mode="sum",
                      per_sample_weights=x.weights)
            return torch.add(out.view(*x.shape, h), bias)  # a new tensor, not a view

        @staticmethod
        def backward(ctx, grad):
            x, (k, d, h) = ctx.x, ctx.shape
            keys, order = torch.sort(x.indices, stable=True)
            starts = torch.zeros(k * d, dtype=keys.dtype, device=keys.device)
            torch.cumsum(torch.bincount(keys, minlength=k * d)[:-1], 0, out=starts[1:])
            weights = None if x.weights is None else torch.index_select(x.weights, 0, order)
            grad_w = bag(torch.index_select(x.bags, 0, order), grad.reshape(-1, h), starts,
                         mode="sum", per_sample_weights=weights)
            return grad_w.view(k, d, h), grad.sum(dim=1, keepdim=True), None

    return SparseLinear.apply


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


def _train_batched(recipe, X, y, design, *, n_classes, seeds, device, on_epoch, sparse=None
                   ) -> tuple[list | StackedCNN, list[int] | None]:
    """:func:`train_batched`, and each model's best epoch with early stopping (else None)."""
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
                                  on_epoch=on_epoch, sparse=sparse)
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

    def __init__(self, members, seeds: list[int], batch_size: int, epochs: int, device):
        torch = _torch()
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


def _train_stacked(recipe, X, y, design, *, n_classes, seeds, device, on_epoch, sparse=None
                   ) -> tuple[list, list[int] | None]:
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
    torch = _torch()
    dev = torch.device(device)
    k = len(seeds)
    params = init_stacked(recipe, X.shape[1], n_classes, seeds, device)
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    if sparse is None:
        sparse = sparse_first_layer(X, device)
    rows = SparseRows(X, device) if sparse else None
    gens = [torch.Generator().manual_seed(s + 2) for s in seeds] if recipe.dropout else None
    members = [np.flatnonzero(row) for row in design]
    stoppers = val = best = None
    if recipe.early_stopping:
        held_out = []
        for m, s in enumerate(seeds):
            fit, held = early_stopping_split(len(members[m]), s)
            held_out.append(members[m][held])
            members[m] = members[m][fit]
        val = _Validation(held_out, dev)
        stoppers = [EarlyStopping(recipe.early_stopping) for _ in seeds]
        best = [p.detach().clone() for p in params]
    sizes = [len(r) for r in members]
    groups, first = [], 0
    for size in sorted(set(sizes), reverse=True):  # the rows come sorted by size
        last = first + sizes.count(size)
        block = np.stack(members[first:last]).reshape(last - first, size)
        groups.append(_Group(torch.as_tensor(block, device=dev), seeds[first:last],
                             recipe.batch_size, recipe.epochs, dev))
        first = last
    alive = np.arange(k)  # original position of each model of the stack
    final = [torch.empty_like(p, requires_grad=False) for p in params]
    opt = make_optimizer(recipe, params)
    reported = 0
    while True:
        keep = np.concatenate([np.full(g.k, g.done < g.total) for g in groups])
        if not keep.all():  # models that took all their steps leave the batch
            gone = np.flatnonzero(~keep)
            for f, p in zip(final, params, strict=True):
                f[alive[gone]] = p.detach()[gone]
            if not keep.any():
                break
            stay = np.flatnonzero(keep)
            params, opt = _slice_models(recipe, params, opt, stay)
            alive = alive[stay]
            gens = None if gens is None else [gens[i] for i in stay]
            if val is not None:
                val.keep(stay)
            groups = [g for g in groups if g.done < g.total]
        batches = [g.batch() for g in groups]
        widths = [b.shape[1] for b in batches]
        width = max(widths)
        idx = batches[0] if len(batches) == 1 else torch.cat(
            [torch.nn.functional.pad(b, (0, width - b.shape[1])) for b in batches])
        counts = weights = None
        if min(widths) < width:
            counts = [w for g, w in zip(groups, widths, strict=True) for _ in range(g.k)]
            n_real = torch.as_tensor(counts, device=dev)[:, None]
            weights = (torch.arange(width, device=dev)[None, :] < n_real) / n_real
        opt.zero_grad(set_to_none=True)
        if rows is not None:
            xb = rows.batch(idx)
        else:
            # index_select gathers whole rows, several times faster than Xt[idx]
            xb = torch.index_select(Xt, 0, idx.reshape(-1)).view(*idx.shape, -1)
        logits = forward_stacked(params, xb, recipe.activation, training=True,
                                 dropout=recipe.dropout, generators=gens, batch_sizes=counts)
        labels = torch.index_select(yt, 0, idx.reshape(-1))
        if weights is None:
            # mean over each model's batch, summed over models: independent gradients
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, n_classes), labels, reduction="sum",
                label_smoothing=recipe.label_smoothing,
            ) / idx.shape[1]
        else:  # each model's mean over its real records; padding weighs 0
            loss = (torch.nn.functional.cross_entropy(
                logits.reshape(-1, n_classes), labels, reduction="none",
                label_smoothing=recipe.label_smoothing,
            ).view(idx.shape) * weights).sum()
        loss.backward()
        opt.step()
        ended = []  # (stack row, its epochs done) of models that ended an epoch
        row = 0
        for g in groups:
            if g.advance():
                ended.extend((row + i, g.epochs_done) for i in range(g.k))
            row += g.k
        if on_epoch is not None:
            done = min(g.epochs_done for g in groups)  # groups gone have done them all
            if done > reported:
                reported = done
                on_epoch(done)
        if stoppers is not None and ended and _early_stop(
                params, best, stoppers, Xt, yt, val, recipe.activation, alive, ended):
            break
    if on_epoch is not None and reported < recipe.epochs and stoppers is None:
        on_epoch(recipe.epochs)
    if stoppers is not None:
        return best, [s.best_epoch for s in stoppers]
    return final, None


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

    Returns
    -------
    TrainedModels
    """
    design = np.asarray(design, dtype=bool)
    if not needs_one_by_one(recipe):
        params, best = _train_batched(
            recipe, X, y, design, n_classes=n_classes, seeds=seeds, device=device,
            on_epoch=None if on_epoch is None else (lambda e: on_epoch(len(seeds), e)))
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
