"""A small convolutional network for 3 x S x S images, and K of them trained as one computation.

The ``cnn`` recipe reads each record as a flattened channel-first image (what
:func:`miaudit.data.images.load_cifar10_npz` gives: ``X`` of shape ``(N, 3*32*32)``) and
stacks, for ``hidden = (c_1, ..., c_L, d)``::

    [conv 3x3 (pad 1) -> activation -> max-pool 2x2] for c_1 .. c_L  ->  flatten
    -> linear(c_L * (S/2^L)^2 -> d) -> activation -> linear(d -> n_classes)

The default ``hidden = (16, 32, 64, 128)`` is conv 3->16->32->64, then 1024 -> 128 -> C on
32 x 32 images (about 0.16 M parameters).

:func:`train_batched_cnn` trains K such models at once: their weights are stacked along a
leading model axis, the models' convolutions run as grouped convolutions (``groups`` = the
number of models in the pass) on channels-last tensors, and their dense layers as batched
matrix products (``torch.baddbmm``). Each model keeps its own initialisation, training
records and minibatch order, and AdamW / SGD act element-wise, so model ``m`` matches
``train(recipe, X[design[m]], y[design[m]], seed=seeds[m])`` up to rounding.

Measured on 2 CPU cores (4 models x 2,000 CIFAR-10 images x 1 epoch, batch 64): grouped
convolutions 1.1 s, ``torch.func.vmap(functional_call)`` over ``stack_module_state`` 2.6 s
(vmap cannot use the channels-last layout), the models one by one with
:func:`~miaudit.training.single.train` 1.7 s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError
from miaudit.training._batching import epoch_orders, records_per_model
from miaudit.training.recipes import Recipe, _torch, make_optimizer

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_HIDDEN",
    "MODELS_PER_PASS",
    "StackedCNN",
    "build_cnn",
    "cnn_state_dicts",
    "image_side",
    "predict_stacked_cnn",
    "train_batched_cnn",
]

#: Conv widths, then the dense hidden width, of the default ``cnn`` recipe.
DEFAULT_HIDDEN = (16, 32, 64, 128)
CHANNELS = 3

#: Query variants of ``augment="flip-shift"``, in output order, as (horizontal flip, shift
#: down, shift right) in pixels: identity, mirror image, then the image moved by 2 pixels
#: right, left, down and up. Shifted images are filled in by reflect padding (the pixels
#: beside the border, mirrored), as in the random-crop augmentation of CIFAR training.
AUGMENTATIONS: dict[str, tuple[tuple[bool, int, int], ...]] = {
    "flip-shift": (
        (False, 0, 0),
        (True, 0, 0),
        (False, 0, 2),
        (False, 0, -2),
        (False, 2, 0),
        (False, -2, 0),
    ),
}

#: Models per forward/backward pass on CPU (other devices: all K at once). Measured on 2
#: cores, 2 was fastest; with 8 per pass the activations outgrow the cache and training ran
#: slower than training the models one by one.
MODELS_PER_PASS = 2

#: Activation values kept per batch when predicting (bounds memory; rows per batch adapt).
_PREDICT_BUDGET_BYTES = 256 * 2**20


def image_side(n_features: int) -> int:
    """The side S of a square ``3 x S x S`` image flattened to ``n_features`` values."""
    side = math.isqrt(n_features // CHANNELS) if n_features > 0 else 0
    if side < 1 or CHANNELS * side * side != n_features:
        raise ConfigError(f"The cnn recipe needs square RGB images flattened channel-first "
                          f"(3*S*S features, e.g. 3072 for 32x32); got {n_features} features. "
                          f"Load images with miaudit.data.images.load_cifar10_npz, or use "
                          f"--model mlp for tabular data.")
    return side


def _layout(hidden: tuple[int, ...], n_features: int) -> tuple[int, tuple[int, ...], int]:
    """Image side, conv widths and dense width of a ``cnn`` recipe; checks that they fit."""
    if len(hidden) < 2 or any(h < 1 for h in hidden):
        raise ConfigError(f"The cnn recipe's hidden sizes are the conv widths then the dense "
                          f"width (at least two numbers >= 1, e.g. 16,32,64,128); got "
                          f"{list(hidden)}.")
    side = image_side(n_features)
    convs, dense = tuple(hidden[:-1]), hidden[-1]
    if side % (2 ** len(convs)):
        raise ConfigError(f"{len(convs)} conv blocks halve a {side}x{side} image "
                          f"{len(convs)} times, which needs a side divisible by "
                          f"{2 ** len(convs)}; use fewer conv widths in hidden.")
    return side, convs, dense


def build_cnn(n_classes: int, *, hidden: tuple[int, ...] = DEFAULT_HIDDEN,
              activation: str = "relu", n_features: int = CHANNELS * 32 * 32):
    """The ``torch.nn.Sequential`` of the ``cnn`` recipe (initialised from torch's global RNG).

    Parameters
    ----------
    n_classes : int
    hidden : tuple of int, default (16, 32, 64, 128)
        Conv widths (each a 3x3 conv, padding 1, then the activation and a 2x2 max-pool),
        then the width of the dense hidden layer.
    activation : {"relu", "tanh"}, default "relu"
    n_features : int, default 3072
        ``3 * S * S`` for square ``S x S`` RGB images given flattened channel-first.

    Returns
    -------
    torch.nn.Sequential
        Takes ``(B, n_features)`` float32 rows and returns ``(B, n_classes)`` logits. Layer 0
        unflattens the rows, so its state-dict keys are ``"1.weight"``, ``"1.bias"`` (first
        conv), ``"4.*"``, ... as listed by ``module.state_dict()``.

    Examples
    --------
    >>> import torch
    >>> module = build_cnn(10)
    >>> [k for k in module.state_dict()][:2], module(torch.zeros(2, 3072)).shape
    (['1.weight', '1.bias'], torch.Size([2, 10]))
    """
    torch = _torch()
    nn = torch.nn
    side, convs, dense = _layout(tuple(hidden), n_features)
    act = nn.Tanh if activation == "tanh" else nn.ReLU
    layers: list = [nn.Unflatten(1, (CHANNELS, side, side))]
    width = CHANNELS
    for c in convs:
        layers += [nn.Conv2d(width, c, kernel_size=3, padding=1), act(), nn.MaxPool2d(2)]
        width = c
    layers.append(nn.Flatten())
    flat = width * (side >> len(convs)) ** 2
    layers += [nn.Linear(flat, dense), act(), nn.Linear(dense, n_classes)]
    return nn.Sequential(*layers)


@dataclass
class StackedCNN:
    """K trained ``cnn`` models with their parameters stacked along a leading model axis.

    Attributes
    ----------
    params : dict of str to tensor
        ``state_dict`` key of :func:`build_cnn`'s module -> tensor of shape ``(K, *shape)``.
    hidden : tuple of int
    activation : str
    n_features : int
    n_classes : int
    """

    params: dict
    hidden: tuple[int, ...]
    activation: str
    n_features: int
    n_classes: int

    @property
    def n_models(self) -> int:
        """Number of stacked models K."""
        return int(next(iter(self.params.values())).shape[0])


def _init_stacked(recipe: Recipe, n_features: int, n_classes: int, seeds: list[int],
                  device) -> StackedCNN:
    torch = _torch()
    states = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build_cnn(n_classes, hidden=recipe.hidden, activation=recipe.activation,
                               n_features=n_features)
        states.append({k: v.detach() for k, v in module.state_dict().items()})
    params = {k: torch.stack([s[k] for s in states]).to(device).requires_grad_(True)
              for k in states[0]}
    return StackedCNN(params, tuple(recipe.hidden), recipe.activation, n_features, n_classes)


def _forward(net: StackedCNN, x):
    """Logits ``(K, B, C)`` of the stacked models on images ``x``.

    ``x`` is ``(B, K, n_features)``, ``x[:, m]`` being model ``m``'s batch, or
    ``(B, n_features)`` when all models see the same images. The K models' channels sit side
    by side, so every conv is one grouped convolution over ``K * channels`` channels with
    ``groups=K`` (the first one an ordinary convolution when the images are shared).
    """
    torch = _torch()
    F = torch.nn.functional
    act = torch.tanh_ if net.activation == "tanh" else torch.relu_  # in place: saves memory
    side, convs, _ = _layout(net.hidden, net.n_features)
    k, b = net.n_models, x.shape[0]
    shared = x.ndim == 2
    # channels-last (NHWC) makes oneDNN's grouped convolutions and pooling about twice as
    # fast on CPU; the flattening below still follows the module's (channel, row, col) order
    h = x.reshape(b, CHANNELS if shared else k * CHANNELS, side, side)
    h = h.contiguous(memory_format=torch.channels_last)
    keys = iter(_param_keys(len(convs)))
    for j in range(len(convs)):
        w, bias = net.params[next(keys)], net.params[next(keys)]
        groups = 1 if shared and j == 0 else k
        h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), bias.reshape(-1), padding=1,
                     groups=groups)
        h = F.max_pool2d(act(h), 2)
    h = h.reshape(b, k, -1).transpose(0, 1)  # per model: flatten (channels, rows, cols)
    for i in range(2):
        w, bias = net.params[next(keys)], net.params[next(keys)]
        h = torch.baddbmm(bias[:, None, :], h, w.transpose(1, 2))
        if i == 0:
            h = act(h)
    return h


def _param_keys(n_convs: int) -> list[str]:
    """State-dict keys of :func:`build_cnn`'s module, in order (weights before biases)."""
    keys = []
    for j in range(n_convs):
        keys += [f"{1 + 3 * j}.weight", f"{1 + 3 * j}.bias"]
    first_dense = 1 + 3 * n_convs + 1  # after the conv blocks and the Flatten
    for idx in (first_dense, first_dense + 2):
        keys += [f"{idx}.weight", f"{idx}.bias"]
    return keys


def train_batched_cnn(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    design: np.ndarray,
    *,
    n_classes: int,
    seeds: list[int],
    device: str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
) -> StackedCNN:
    """Train ``K = len(design)`` ``cnn`` models together; model ``m`` on records ``design[m]``.

    Parameters
    ----------
    recipe : Recipe
        A ``cnn`` recipe (``hidden``, ``activation``, ``optimizer``, ``lr``, ...).
    X : ndarray (N, 3*S*S)
        Flattened channel-first images.
    y : ndarray (N,) of int
    design : ndarray (K, N) bool
        Every row must hold the same number of records (the game's designs do).
    n_classes : int
    seeds : list of int
        One seed per model: initialisation under ``torch.manual_seed(seed)``, minibatch order
        from ``torch.Generator().manual_seed(seed + 1)``, as in
        :func:`miaudit.training.single.train`.
    device : str, default "cpu"
    on_epoch : callable, optional
        Called as ``on_epoch(epoch)`` after each epoch.

    Returns
    -------
    StackedCNN
        The K trained models (detached), for :func:`predict_stacked_cnn` and
        :func:`cnn_state_dicts`.

    Notes
    -----
    Each optimiser step runs the forward and backward passes in blocks of
    :data:`MODELS_PER_PASS` models (on CPU; all K at once on other devices), so that the
    activations stay in cache; the blocks' gradients are independent, and one AdamW / SGD
    step then updates all K models.
    """
    torch = _torch()
    design = np.asarray(design, dtype=bool)
    k = design.shape[0]
    n = records_per_model(design, seeds)
    dev = torch.device(device)
    per_pass = _models_per_pass(dev, k)
    blocks = [_init_stacked(recipe, X.shape[1], n_classes, list(seeds[i : i + per_pass]), dev)
              for i in range(0, k, per_pass)]
    params = [p for block in blocks for p in block.params.values()]
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    opt = make_optimizer(recipe, params)
    for epoch, model_order in enumerate(epoch_orders(design, seeds, recipe.epochs, dev)):
        order = model_order.T.contiguous()  # (n, K): each model's own order
        for start in range(0, n, recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            for b, block in enumerate(blocks):
                sub = idx[:, b * per_pass : b * per_pass + block.n_models]
                logits = _forward(block, Xt[sub])
                # mean over each model's batch, summed over models: independent gradients
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, n_classes), yt[sub].T.reshape(-1), reduction="sum"
                ) / sub.shape[0]
                loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch + 1)
    return StackedCNN({name: torch.cat([blk.params[name].detach() for blk in blocks])
                       for name in blocks[0].params},
                      tuple(recipe.hidden), recipe.activation, X.shape[1], n_classes)


def _models_per_pass(device, k: int) -> int:
    return MODELS_PER_PASS if device.type == "cpu" else k


def _variants(x, augment: str | None):
    """Query variants ``(A, B, 3, S, S)`` of images ``x: (B, 3, S, S)``."""
    torch = _torch()
    if augment is None:
        return x[None]
    pad = max(max(abs(dy), abs(dx)) for _, dy, dx in AUGMENTATIONS[augment])
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect") if pad else x
    side = x.shape[-1]
    out = []
    for flip, dy, dx in AUGMENTATIONS[augment]:
        v = padded[..., pad - dy : pad - dy + side, pad - dx : pad - dx + side]
        out.append(torch.flip(v, dims=[-1]) if flip else v)
    return torch.stack(out)


def predict_stacked_cnn(net: StackedCNN, X: np.ndarray, *, device: str = "cpu",
                        batch_size: int = 8192, augment: str | None = None) -> np.ndarray:
    """Logits of every stacked model on every record, optionally on augmented queries.

    Parameters
    ----------
    net : StackedCNN
        From :func:`train_batched_cnn`.
    X : ndarray (N, 3*S*S)
    device : str, default "cpu"
    batch_size : int, default 8192
        Most images per forward pass; fewer are used when K models' activations on them
        would exceed about 256 MiB.
    augment : {None, "flip-shift"}, default None
        ``"flip-shift"`` queries A = 6 variants of each image, in the order of
        :data:`AUGMENTATIONS`: identity, horizontal flip, shifted 2 pixels right, left, down,
        up (reflect padding).

    Returns
    -------
    ndarray float32
        ``(K, N, C)`` when ``augment`` is None, else ``(K, A, N, C)``.
    """
    torch = _torch()
    if augment is not None and augment not in AUGMENTATIONS:
        raise ConfigError(f"Unknown augment {augment!r}; use None or one of "
                          f"{', '.join(map(repr, AUGMENTATIONS))}.")
    k = net.n_models
    side = image_side(net.n_features)
    n_var = 1 if augment is None else len(AUGMENTATIONS[augment])
    dev = torch.device(device)
    per_pass = _models_per_pass(dev, k)
    blocks = [StackedCNN({name: t[i : i + per_pass].to(dev) for name, t in net.params.items()},
                         net.hidden, net.activation, net.n_features, net.n_classes)
              for i in range(0, k, per_pass)]
    per_image = min(k, per_pass) * n_var * 2 * net.hidden[0] * side * side * 4
    rows = max(1, min(batch_size, _PREDICT_BUDGET_BYTES // per_image))
    out = []
    with torch.no_grad():
        for start in range(0, len(X), rows):
            xb = torch.as_tensor(np.ascontiguousarray(X[start : start + rows],
                                                      dtype=np.float32), device=dev)
            v = _variants(xb.reshape(len(xb), CHANNELS, side, side), augment)
            queries = v.reshape(n_var * len(xb), -1)
            logits = torch.cat([_forward(block, queries) for block in blocks])  # (K, A*B, C)
            out.append(logits.reshape(k, n_var, len(xb), -1).cpu().numpy())
    result = np.concatenate(out, axis=2).astype(np.float32, copy=False)
    return result[:, 0] if augment is None else result


def cnn_state_dicts(net: StackedCNN) -> list[dict[str, np.ndarray]]:
    """Each model's state dict as numpy arrays, keyed as :func:`build_cnn`'s module.

    Load one with ``module.load_state_dict({k: torch.from_numpy(v) for k, v in d.items()})``
    where ``module = build_cnn(n_classes, hidden=..., activation=..., n_features=...)``.
    """
    return [{name: np.ascontiguousarray(t[m].detach().cpu().numpy())
             for name, t in net.params.items()}
            for m in range(net.n_models)]
