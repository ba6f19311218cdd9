"""Training the models of a game: the target and its references, batched in chunks."""

from __future__ import annotations

import numpy as np

from miaudit.models import Recipe
from miaudit.models.batched import predict_stacked, train_batched

#: Models trained together in one batched computation (bounds memory).
DEFAULT_CHUNK = 32


def model_seed(seed: int, m: int) -> int:
    """The training seed of model ``m`` of a game seeded with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, m]).generate_state(1)[0])


def train_pool_models(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    design: np.ndarray,
    *,
    n_classes: int,
    seed: int,
    device: str = "cpu",
    bar=None,
    chunk: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Train one model per row of ``design`` and return every model's logits on every
    record, shape ``(M, N, C)`` float64."""
    n_models = design.shape[0]
    task = None
    if bar is not None:
        label = "training target" if n_models == 1 else f"training {n_models} models"
        task = bar.add_task(label, total=recipe.epochs * n_models)
    logits = []
    for start in range(0, n_models, chunk):
        rows = list(range(start, min(start + chunk, n_models)))

        def tick(_epoch: int, k: int = len(rows)) -> None:
            if bar is not None:
                bar.advance(task, k)

        params = train_batched(recipe, X, y, design[rows], n_classes=n_classes,
                               seeds=[model_seed(seed, m) for m in rows], device=device,
                               on_epoch=tick)
        logits.append(predict_stacked(params, X, recipe.activation, device=device))
    return np.concatenate(logits).astype(np.float64)
