"""The loop of one batched run of MLP / logistic models: the stacked parameters
(:func:`init_stacked`), the batched forward pass (:func:`forward_stacked`), and
:func:`_train_stacked`, which steps every model through its own epochs (see
:mod:`miaudit.training.batched` for what is batched and why it matches training the models
one by one), with the state a checkpoint saves and restores
(:mod:`miaudit.training.checkpoint`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np

from miaudit.errors import MiauditWarning
from miaudit.training.checkpoint import Checkpoint
from miaudit.training.nets import build_module
from miaudit.training.recipes import (
    EarlyStopping,
    Recipe,
    _torch,
    dropout_mask,
    early_stopping_split,
    make_optimizer,
)
from miaudit.training.sparse import SparseBatch, SparseRows, _sparse_linear, sparse_first_layer

__all__ = ["forward_stacked", "init_stacked"]


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
    saved = None if checkpoint is None else checkpoint.load("cpu")
    if saved is not None:
        try:
            run.restore(*saved)
            checkpoint.resumed_epoch = run.resumed
        except (KeyError, IndexError, ValueError, TypeError, RuntimeError) as exc:
            warnings.warn(f"The training checkpoint {checkpoint.path.name} does not fit this "
                          f"run ({exc!r}); the models train from the start.", MiauditWarning,
                          stacklevel=4)
            checkpoint.remove()
            run = _StackedRun(recipe, X, y, design, n_classes=n_classes, seeds=seeds,
                              device=device, sparse=sparse)
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
        self.final = [torch.zeros_like(p, requires_grad=False) for p in self.params]
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
        """Go on from a :meth:`state` saved by the same run (same recipe, data, seeds),
        its tensors read on the CPU (generator states stay there; the rest moves to the
        run's device, but for the optimizer's step counters, which torch keeps on the CPU)."""
        dev = self.dev
        self.alive = np.asarray(state["alive"], dtype=np.int64)
        self.reported = int(state["reported"])
        if self.val is not None:
            self.val.keep(self.alive)
        if self.gens is not None:
            self.gens = [self.gens[m] for m in self.alive]
            for j, gen in enumerate(self.gens):
                gen.set_state(tensors[f"dropout.{j}"])
        self.params = [tensors[f"param.{i}"].to(dev).requires_grad_(True)
                       for i in range(len(self.params))]
        self.final = [tensors[f"final.{i}"].to(dev) for i in range(len(self.final))]
        self.opt = make_optimizer(self.recipe, self.params)
        for i, p in enumerate(self.params):
            prefix = f"opt.{i}."
            entries = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if entries:
                self.opt.state[p] = {k: v.clone() if k == "step" else v.to(dev)
                                     for k, v in entries.items()}
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
            self.best = [tensors[f"best.{i}"].to(dev) for i in range(len(self.best))]
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
