"""DP-SGD training of a recipe with Opacus, and its privacy accounting.

A recipe with ``dp_epsilon`` (a target) or ``dp_noise_multiplier`` trains with DP-SGD
(Abadi et al. 2016) through Opacus' ``PrivacyEngine``: Poisson sampling of each minibatch
(every record joins a step independently with probability ``q = 1 / ceil(n / batch_size)``,
Opacus' default), per-sample gradients clipped to ``dp_max_grad_norm`` in L2 norm over all
parameters ("flat" clipping, computed by Opacus' ghost clipping, which gives the same
clipped sum without materialising per-sample gradients), and Gaussian noise of standard
deviation ``noise_multiplier * dp_max_grad_norm`` added to their sum. The optimizer (AdamW
or SGD) then steps on the noisy mean; weight decay and Adam's moments are post-processing.

Accounting: Opacus' **RDP accountant** (Mironov 2017; the subsampled Gaussian mechanism of
Mironov, Talwar & Zhang 2019) over ``steps = epochs * ceil(n / batch_size)`` steps at
sampling rate ``q``, converted to ``(epsilon, dp_delta)``. With ``dp_epsilon`` the noise
multiplier is Opacus' ``get_noise_multiplier`` for that target (as
``make_private_with_epsilon`` does; the result lies within 0.01 below the target). The
accounting is a pure function of the recipe and the number of training records
(:func:`dp_accounting`), so it is known again for a model loaded from the cache.

Every model trains on its own (one after another, never batched): per-sample clipping and
noise are per model, and Opacus trains one module at a time. Not covered by the
accountant, and refused: early stopping (its stopping epoch is chosen on training records).
Tuning hyper-parameters on the same data is not covered either (as always with DP-SGD).

References
----------
Abadi et al. (2016), "Deep learning with differential privacy", CCS.
Mironov (2017), "Renyi differential privacy", CSF.
Yousefpour et al. (2021), "Opacus: user-friendly differential privacy library in PyTorch".
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from miaudit.errors import ConfigError, DependencyError
from miaudit.training.nets import build_module
from miaudit.training.recipes import (
    Recipe,
    TrainedModel,
    _torch,
    make_optimizer,
    set_dropout_generator,
)

__all__ = ["ACCOUNTANT", "DPAccounting", "dp_accounting", "train_dp"]

#: The Opacus accountant used for every DP-SGD recipe.
ACCOUNTANT = "rdp"

# Opacus' notices that do not concern a reproducible audit: the secure RNG (seeded
# generators are used on purpose, for determinism), the RDP order range, and a torch
# notice about backward hooks on a module whose inputs need no gradient.
_QUIET = ("Secure RNG turned off", "Optimal order is the", "Full backward hook is firing",
          "Using a non-full backward hook")


@dataclass(frozen=True)
class DPAccounting:
    """The privacy accounting of a DP-SGD recipe on ``n`` training records.

    Attributes
    ----------
    accountant : str
        ``"rdp"`` (Opacus' RDP accountant).
    epsilon : float
        The accountant's epsilon after all steps, at ``delta``.
    delta : float
    noise_multiplier : float
        Noise standard deviation / clipping norm.
    max_grad_norm : float
        Per-sample clipping norm.
    sample_rate : float
        Poisson sampling rate ``1 / ceil(n / batch_size)``.
    steps : int
        ``epochs * ceil(n / batch_size)``.
    n_train : int
    target_epsilon : float or None
        The recipe's ``dp_epsilon`` when the noise multiplier was solved for it.
    """

    accountant: str
    epsilon: float
    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    n_train: int
    target_epsilon: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def _opacus():
    try:
        import opacus
    except ImportError:
        raise DependencyError("DP-SGD recipes (dp_epsilon, dp_noise_multiplier) need Opacus: "
                              "pip install 'miaudit[dp]'.") from None
    return opacus


def dp_accounting(recipe: Recipe, n_train: int) -> DPAccounting:
    """The noise multiplier and the accountant's epsilon of ``recipe`` on ``n_train`` records.

    Parameters
    ----------
    recipe : Recipe
        A DP-SGD recipe (``recipe.dp``).
    n_train : int
        Records the model trains on.

    Returns
    -------
    DPAccounting
        What Opacus' RDP accountant reports after ``recipe.epochs`` epochs of Poisson
        sampled steps; equal to ``PrivacyEngine.get_epsilon(dp_delta)`` after
        :func:`train_dp`.

    Examples
    --------
    >>> from miaudit.training import make_recipe
    >>> acc = dp_accounting(make_recipe("mlp", ["dp_noise_multiplier=1", "epochs=5"]), 1000)
    >>> acc.steps, acc.sample_rate, round(acc.epsilon, 2)
    (80, 0.0625, 4.57)
    """
    if not recipe.dp:
        raise ConfigError(f"The recipe {recipe.describe()} does not use DP-SGD; set dp_epsilon "
                          "or dp_noise_multiplier.")
    if n_train < 1:
        raise ConfigError(f"DP-SGD needs at least one training record, got {n_train}.")
    return _accounting(recipe.epochs, recipe.batch_size, int(n_train), recipe.dp_epsilon,
                       recipe.dp_noise_multiplier, recipe.dp_delta, recipe.dp_max_grad_norm)


@functools.lru_cache(maxsize=256)
def _accounting(epochs: int, batch_size: int, n_train: int, target: float | None,
                noise_multiplier: float, delta: float, max_grad_norm: float) -> DPAccounting:
    """:func:`dp_accounting` (memoised: solving for the noise multiplier takes ~1 s)."""
    _opacus()
    from opacus.accountants import create_accountant
    from opacus.accountants.utils import get_noise_multiplier

    batches = math.ceil(n_train / batch_size)
    sample_rate = 1 / batches
    steps = epochs * batches
    with warnings.catch_warnings():
        for text in _QUIET:
            warnings.filterwarnings("ignore", message=text)
        if target is not None:
            try:
                sigma = float(get_noise_multiplier(
                    target_epsilon=target, target_delta=delta, sample_rate=sample_rate,
                    epochs=epochs, accountant=ACCOUNTANT))
            except ValueError:
                raise ConfigError(f"dp_epsilon={target:g} cannot be reached at "
                                  f"delta={delta:g} with {steps} steps: raise "
                                  "dp_epsilon or lower the epochs.") from None
        else:
            sigma = float(noise_multiplier)
        accountant = create_accountant(mechanism=ACCOUNTANT)
        accountant.history = [(sigma, sample_rate, steps)]
        epsilon = float(accountant.get_epsilon(delta=delta))
    return DPAccounting(ACCOUNTANT, epsilon, delta, sigma, max_grad_norm, sample_rate, steps,
                        n_train, target)


def train_dp(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainedModel:
    """Train one model of a DP-SGD ``recipe`` with Opacus; deterministic on CPU for a seed.

    Initialisation under ``torch.manual_seed(seed)``; Poisson sampling from a generator
    seeded ``seed + 1``, dropout ``seed + 2``, noise ``seed + 3``. Seeded generators are
    not cryptographically secure (Opacus' ``secure_mode`` is off): fine for an audit, not
    for a production release.

    Returns
    -------
    TrainedModel
        The plain module (Opacus' wrapper and hooks removed); ``privacy`` holds
        :meth:`DPAccounting.to_dict` with ``epsilon`` as Opacus' accountant reports it after
        training.
    """
    torch = _torch()
    _opacus()
    from opacus import PrivacyEngine

    n = len(y)
    planned = dp_accounting(recipe, n)
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_module(recipe, X.shape[1], n_classes).to(dev)
    set_dropout_generator(module, seed + 2)
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(Xt, yt), batch_size=recipe.batch_size,
        generator=torch.Generator().manual_seed(seed + 1))
    optimizer = make_optimizer(recipe, list(module.parameters()))
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    history: list[float] = []
    with warnings.catch_warnings():
        for text in _QUIET:
            warnings.filterwarnings("ignore", message=text)
        engine = PrivacyEngine(accountant=ACCOUNTANT)
        common = {"module": module, "optimizer": optimizer, "criterion": criterion,
                  "data_loader": loader, "max_grad_norm": recipe.dp_max_grad_norm,
                  "noise_generator": torch.Generator().manual_seed(seed + 3),
                  "grad_sample_mode": "ghost", "poisson_sampling": True}
        # the noise multiplier of dp_accounting: for a target epsilon, Opacus'
        # get_noise_multiplier with the arguments make_private_with_epsilon passes it
        private, dp_opt, dp_loss, dp_loader = engine.make_private(
            **common, noise_multiplier=planned.noise_multiplier)
        private.train()
        for epoch in range(recipe.epochs):
            total, count = 0.0, 0
            for xb, yb in dp_loader:
                dp_opt.zero_grad(set_to_none=True)
                loss = dp_loss(private(xb), yb)
                loss.backward()
                dp_opt.step()
                total += float(loss.detach()) * len(yb)
                count += len(yb)
            history.append(total / max(count, 1))
            if on_epoch is not None:
                on_epoch(epoch + 1, history[-1])
        epsilon = float(engine.get_epsilon(recipe.dp_delta))
    private.remove_hooks()
    module = private._module
    module.eval()
    for p in module.parameters():  # what Opacus left on the parameters
        for attr in ("grad_sample", "_norm_sample", "_forward_counter"):
            if hasattr(p, attr):
                delattr(p, attr)
    privacy = {**planned.to_dict(), "noise_multiplier": float(dp_opt.noise_multiplier),
               "epsilon": epsilon}
    return TrainedModel(module, recipe, seed, X.shape[1], n_classes, history, privacy=privacy)
