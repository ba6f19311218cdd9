"""What every batched trainer shares: checking the design and each model's minibatch order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from miaudit.errors import ConfigError


def records_per_model(design: np.ndarray, seeds: list[int]) -> int:
    """The number of training records of every model (they must all have the same)."""
    k = design.shape[0]
    counts = design.sum(axis=1)
    if len(seeds) != k:
        raise ConfigError(f"{len(seeds)} seeds for {k} models.")
    if (counts != counts[0]).any():
        raise ConfigError("Batched training needs the same number of records per model; "
                          f"got between {counts.min()} and {counts.max()}.")
    return int(counts[0])


def epoch_orders(design: np.ndarray, seeds: list[int], epochs: int, device) -> Iterator:
    """For each epoch, a ``(K, n)`` tensor: model ``m``'s training records in the order a
    ``torch.Generator`` seeded with ``seeds[m] + 1`` shuffles them (as ``train`` does)."""
    import torch

    n = records_per_model(design, seeds)
    k = design.shape[0]
    members = torch.as_tensor(np.stack([np.flatnonzero(row) for row in design]), device=device)
    gens = [torch.Generator().manual_seed(s + 1) for s in seeds]
    rows = torch.arange(k, device=device)[:, None]
    for _ in range(epochs):
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        yield members[rows, perms]
