"""Train many models of one recipe together, as one batched computation.

The K models' weights are stacked along a leading model axis and every layer is one
batched matrix product (``torch.baddbmm``), so one forward/backward pass trains all of
them. Each model keeps its own initialisation seed, its own training records (a row of
the membership design) and its own minibatch order; Adam, AdamW and SGD act element-wise,
so a batched step equals K separate steps. Model ``m`` trained here matches
``train(recipe, X[design[m]], y[design[m]], seed=seeds[m])`` up to floating-point
rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from miaudit.errors import ConfigError
from miaudit.models.recipes import Recipe, _torch, build_module


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


def forward_stacked(params: list, x, activation: str):
    """Logits ``(K, B, C)`` of the stacked models on inputs ``x: (K, B, D)``."""
    torch = _torch()
    act = torch.tanh if activation == "tanh" else torch.relu
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if i < n_layers - 1:
            h = act(h)
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
) -> list:
    """Train ``K = len(design)`` models together; model ``m`` on records ``design[m]``.

    Parameters
    ----------
    design : ndarray (K, N) bool
        Every row must hold the same number of records (the game's designs do).
    seeds : list of int
        One seed per model (initialisation ``seed``, minibatch order ``seed + 1``).

    Returns
    -------
    list of tensors
        The stacked parameters (detached), for :func:`forward_stacked`.
    """
    torch = _torch()
    design = np.asarray(design, dtype=bool)
    k = design.shape[0]
    counts = design.sum(axis=1)
    if len(seeds) != k:
        raise ConfigError(f"{len(seeds)} seeds for {k} models.")
    if (counts != counts[0]).any():
        raise ConfigError("Batched training needs the same number of records per model; "
                          f"got between {counts.min()} and {counts.max()}.")
    n = int(counts[0])
    dev = torch.device(device)
    params = init_stacked(recipe, X.shape[1], n_classes, seeds, device)
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    members = torch.as_tensor(np.stack([np.flatnonzero(row) for row in design]), device=dev)
    gens = [torch.Generator().manual_seed(s + 1) for s in seeds]
    if recipe.optimizer == "adam":
        opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=recipe.lr, momentum=0.9,
                              weight_decay=recipe.weight_decay)
    rows = torch.arange(k, device=dev)[:, None]
    for epoch in range(recipe.epochs):
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(dev)
        order = members[rows, perms]  # (K, n) record indices in each model's own order
        for start in range(0, n, recipe.batch_size):
            idx = order[:, start : start + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            logits = forward_stacked(params, Xt[idx], recipe.activation)
            # mean over each model's batch, summed over models: independent gradients
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, n_classes), yt[idx].reshape(-1), reduction="sum"
            ) / idx.shape[1]
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch + 1)
    return [p.detach() for p in params]


def predict_stacked(params: list, X: np.ndarray, activation: str, *, device: str = "cpu",
                    batch_size: int = 8192) -> np.ndarray:
    """Logits of every stacked model on every record: ``(K, N, C)`` float32."""
    torch = _torch()
    k = params[0].shape[0]
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(X[start : start + batch_size],
                                                      dtype=np.float32), device=device)
            out.append(forward_stacked(params, xb.expand(k, -1, -1), activation).cpu().numpy())
    return np.concatenate(out, axis=1)
