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
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from miaudit.models._batching import epoch_orders, records_per_model
from miaudit.models.cnn import StackedCNN, cnn_state_dicts, predict_stacked_cnn, train_batched_cnn
from miaudit.models.recipes import Recipe, _torch, build_module, make_optimizer


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


def forward_stacked(params: list, x, activation: str, *, training: bool = False):
    """Logits ``(K, B, C)`` of the stacked models on inputs ``x: (K, B, D)``.

    ``training=True`` uses the fast in-place ``tanh`` of :func:`_training_tanh`.
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
        One seed per model (initialisation ``seed``, minibatch order ``seed + 1``).

    Returns
    -------
    list of tensors, or StackedCNN
        The stacked parameters (detached), for :func:`forward_stacked`; for the ``cnn``
        recipe a :class:`~miaudit.models.cnn.StackedCNN` (see
        :func:`~miaudit.models.cnn.train_batched_cnn`). Both go to :func:`predict_stacked`
        and :func:`stacked_state_dicts`.
    """
    if recipe.name == "cnn":
        return train_batched_cnn(recipe, X, y, design, n_classes=n_classes, seeds=seeds,
                                 device=device, on_epoch=on_epoch)
    torch = _torch()
    design = np.asarray(design, dtype=bool)
    n = records_per_model(design, seeds)
    dev = torch.device(device)
    params = init_stacked(recipe, X.shape[1], n_classes, seeds, device)
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    opt = make_optimizer(recipe, params)
    for epoch, order in enumerate(epoch_orders(design, seeds, recipe.epochs, dev)):
        for start in range(0, n, recipe.batch_size):
            idx = order[:, start : start + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            # index_select gathers whole rows, several times faster than Xt[idx]
            xb = torch.index_select(Xt, 0, idx.reshape(-1)).view(*idx.shape, -1)
            logits = forward_stacked(params, xb, recipe.activation, training=True)
            # mean over each model's batch, summed over models: independent gradients
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, n_classes), yt[idx].reshape(-1), reduction="sum"
            ) / idx.shape[1]
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch + 1)
    return [p.detach() for p in params]


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
