"""Training one recipe model alone (:func:`train`); DP-SGD recipes go to Opacus
(:mod:`miaudit.training.dp`), many models at once to :mod:`miaudit.training.batched`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from miaudit.training.nets import build_module
from miaudit.training.recipes import (
    EarlyStopping,
    Recipe,
    TrainedModel,
    _torch,
    early_stopping_split,
    make_optimizer,
    set_dropout_generator,
)

__all__ = ["train"]


def train(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainedModel:
    """Train one model of ``recipe`` on ``(X, y)``; deterministic on CPU for a seed.

    Initialisation under ``torch.manual_seed(seed)``, minibatch order from a generator
    seeded ``seed + 1``, dropout masks from one seeded ``seed + 2``; with early stopping
    the validation records are :func:`early_stopping_split` ``(len(y), seed)``. DP-SGD
    recipes are trained by :func:`miaudit.training.dp.train_dp` (Opacus).

    Parameters
    ----------
    on_epoch : callable, optional
        Called as ``on_epoch(epoch, mean_loss)`` after each epoch (for progress bars).
    """
    if recipe.dp:
        from miaudit.training.dp import train_dp

        return train_dp(recipe, X, y, n_classes=n_classes, seed=seed, device=device,
                        on_epoch=on_epoch)
    torch = _torch()
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_module(recipe, X.shape[1], n_classes).to(dev)
    set_dropout_generator(module, seed + 2)
    gen = torch.Generator().manual_seed(seed + 1)
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    stopper = best = None
    if recipe.early_stopping:
        fit, val = early_stopping_split(len(yt), seed)
        X_val, y_val = Xt[torch.as_tensor(val, device=dev)], yt[torch.as_tensor(val, device=dev)]
        Xt, yt = Xt[torch.as_tensor(fit, device=dev)], yt[torch.as_tensor(fit, device=dev)]
        stopper = EarlyStopping(recipe.early_stopping)
    opt = make_optimizer(recipe, list(module.parameters()))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    n = len(yt)
    history: list[float] = []
    module.train()
    for epoch in range(recipe.epochs):
        perm = torch.randperm(n, generator=gen).to(dev)
        total = 0.0
        for start in range(0, n, recipe.batch_size):
            idx = perm[start : start + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(module(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / n)
        if on_epoch is not None:
            on_epoch(epoch + 1, history[-1])
        if stopper is not None:
            module.eval()
            with torch.no_grad():
                val_loss = float(torch.nn.functional.cross_entropy(module(X_val), y_val))
            module.train()
            if stopper.update(epoch + 1, val_loss):
                best = {k: v.detach().clone() for k, v in module.state_dict().items()}
            if stopper.stopped:
                break
    if best is not None:
        module.load_state_dict(best)
    module.eval()
    return TrainedModel(module, recipe, seed, X.shape[1], n_classes, history,
                        best_epoch=None if stopper is None else stopper.best_epoch)
