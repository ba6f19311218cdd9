"""A sparse first layer for batched training on mostly zero inputs (one-hot and
bag-of-features tables).

The forward pass sums the rows of ``W1`` picked by each record's non-zero features
(``embedding_bag``) and the weight gradient sums the rows of the output gradient per
feature, instead of two dense matrix products over mostly zero inputs.
:func:`sparse_first_layer` decides, by a measured rule, when
:func:`miaudit.training.batched.train_batched` uses it by default.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from miaudit.training.recipes import _torch

if TYPE_CHECKING:
    import torch

__all__ = ["SPARSE_DENSITY", "SparseBatch", "SparseRows", "sparse_first_layer"]


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
