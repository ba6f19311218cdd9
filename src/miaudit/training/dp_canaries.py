"""DP-SGD with gradient canaries: the white-box setting of the one-run audit.

The auditor of the white-box setting (Steinke, Nasr & Jagielski 2023, Sec. 7; Nasr et al.
2023, "Tight Auditing of Differentially Private Machine Learning") controls some
*gradients* rather than some records, and sees every privatized gradient of training.
Here ``m`` canary directions ``u_1..u_m`` (unit vectors in the flattened parameter space)
are drawn, and each canary is included independently with probability 1/2:

* ``"dirac"`` (default; Nasr et al.'s Dirac canary): ``u_i`` is 1 on one coordinate of the
  flattened parameters and 0 elsewhere, the ``m`` coordinates drawn uniformly without
  replacement among all parameters, so the canaries are orthogonal;
* ``"random"``: ``u_i`` uniform on the unit sphere (a seeded Gaussian vector, normalised).

Each canary is one more *example* of DP-SGD whose per-example gradient is ``C u_i``
(``C = dp_max_grad_norm``: exactly the clipping norm, so clipping leaves it as it is, the
worst case a record can contribute). Like every record, a canary joins each step
independently with the Poisson sampling rate ``q`` of the data (``q = 1 / ceil(n /
batch_size)``, ``n`` the data records; fixed in advance, so it depends on no canary's
inclusion). At a step where an included canary is sampled, ``C u_i`` is added to the sum
of the clipped per-example gradients **before** the Gaussian noise ``N(0, (sigma C)^2 I)``
is added. This is the setting that the accountant covers: the same sampling rate, the
same noise multiplier, the same number of steps, with the canaries counted as examples.
(A canary inserted at *every* step, the other choice one could make, would not be
covered by the accountant's subsampling amplification, and an empirical bound above the
accountant's epsilon would then be no bug.)

What is recorded, per step ``t`` and canary ``i`` (``trace.projections``)::

    y[t, i] = < u_i, sum of clipped data gradients + sum of sampled included canaries
                     + noise >                                     (the privatized sum)

the quantity DP-SGD releases (everything after it, the division by the expected batch
size and the optimizer's step, is post-processing), in gradient units. With plain SGD
(no momentum, no weight decay) ``sum_t y[t, i] = <u_i, theta_0 - theta_T> * B / lr``
(``B`` the expected batch size): the canary's share of the total parameter change. For a
Dirac canary ``y[t, i]`` is the privatized gradient's coordinate, and exactly::

    y[t, i] = g[t, i] + C * 1[i included and sampled at t] + z[t, i],
    z[t, i] ~ N(0, (sigma C)^2) independent over t and i,

``g[t, i]`` the clipped data gradients' sum on that coordinate (the model's own gradient,
the same whether canary ``i`` is in or out up to its effect on the trajectory). The trace
also keeps these three parts summed over steps (``data_part``, ``canary_part`` with
``n_inserted``, ``noise_part``): they are the trainer's own knowledge, for tests and
diagnostics; the audit reads only ``projections``.

Per-example gradients come from Opacus' ``GradSampleModule``; clipping, noise and the
division by the expected batch size are Opacus' ``DPOptimizer`` (its
``clip_and_accumulate`` followed by the canaries' insertion); the epsilon is Opacus' RDP
accountant, stepped by the optimizer as ``PrivacyEngine`` does, at sampling rate ``q``.

References
----------
Steinke, Nasr & Jagielski (2023), "Privacy auditing with one (1) training run", NeurIPS.
Nasr, Hayes, Steinke, Balle, Tramer, Jagielski, Carlini & Terzis (2023), "Tight auditing
of differentially private machine learning", USENIX Security.
Abadi et al. (2016), "Deep learning with differential privacy", CCS.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError
from miaudit.training.dp import _QUIET, ACCOUNTANT, _opacus, dp_accounting
from miaudit.training.nets import build_module
from miaudit.training.recipes import (
    Recipe,
    TrainedModel,
    _torch,
    make_optimizer,
    set_dropout_generator,
)

__all__ = ["CANARY_KINDS", "MAX_RANDOM_ENTRIES", "CanaryTrace", "CanaryTraining",
           "GradientCanaries", "draw_gradient_canaries", "train_with_gradient_canaries"]

#: The kinds of canary directions.
CANARY_KINDS = ("dirac", "random")
#: Largest ``m * n_parameters`` for random directions (held as one float32 matrix: 200 MB).
MAX_RANDOM_ENTRIES = 50_000_000


@dataclass(frozen=True)
class GradientCanaries:
    """``m`` gradient canaries: their directions and which are included.

    Attributes
    ----------
    kind : {"dirac", "random"}
    included : bool array of shape (m,)
        Each True independently with probability 1/2.
    coordinates : int array of shape (m,) or None
        Dirac: the flattened-parameter coordinate of each canary (distinct).
    directions : float32 array of shape (m, n_parameters) or None
        Random: unit rows.
    n_parameters : int
    """

    kind: str
    included: np.ndarray
    coordinates: np.ndarray | None
    directions: np.ndarray | None
    n_parameters: int

    @property
    def m(self) -> int:
        return int(self.included.size)


def draw_gradient_canaries(n_parameters: int, m: int, *, kind: str = "dirac",
                           seed: int = 0) -> GradientCanaries:
    """Draw ``m`` canary directions and their inclusion (probability 1/2 each), seeded.

    Examples
    --------
    >>> c = draw_gradient_canaries(100, 10, seed=0)
    >>> c.coordinates.size, len(set(c.coordinates.tolist())), c.included.dtype
    (10, 10, dtype('bool'))
    """
    if kind not in CANARY_KINDS:
        raise ConfigError(f"The canary kind {kind!r} is unknown; use one of "
                          f"{', '.join(CANARY_KINDS)}.")
    if not 1 <= m <= n_parameters:
        raise ConfigError(f"canaries must lie between 1 and the model's {n_parameters} "
                          f"parameters (one coordinate each), got {m}.")
    if kind == "random" and m * n_parameters > MAX_RANDOM_ENTRIES:
        raise ConfigError(f"{m} random canary directions over {n_parameters} parameters "
                          f"need {m * n_parameters * 4 / 1e6:.0f} MB; use kind 'dirac', or "
                          f"at most {MAX_RANDOM_ENTRIES // n_parameters} random canaries.")
    rng = np.random.default_rng([seed, 13])
    included = rng.random(m) < 0.5
    if kind == "dirac":
        coords = np.sort(rng.choice(n_parameters, m, replace=False)).astype(np.int64)
        return GradientCanaries(kind, included, coords, None, n_parameters)
    u = rng.standard_normal((m, n_parameters)).astype(np.float32)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return GradientCanaries(kind, included, None, u, n_parameters)


@dataclass
class CanaryTrace:
    """What a run of :func:`train_with_gradient_canaries` recorded about its canaries.

    Attributes
    ----------
    projections : float array of shape (steps, m)
        ``y[t, i] = <u_i, privatized gradient sum of step t>`` (see the module): what the
        white-box auditor sees.
    n_inserted : int array of shape (m,)
        Steps at which canary ``i``'s gradient was added (0 for an excluded canary, or
        for every canary when nothing was inserted). Not for the audit.
    data_part : float array of shape (m,)
        ``sum_t <u_i, clipped data gradient sum of step t>``. Not for the audit.
    canary_part : float array of shape (m,)
        ``sum_t <u_i, sum of the canary gradients added at step t>``: ``C n_inserted``
        for Dirac canaries; random directions add their small overlaps ``C <u_i, u_j>``
        with the other canaries inserted. Not for the audit.
    noise_part : float array of shape (m,)
        ``sum_t <u_i, noise of step t>``. Not for the audit.
    sampled : int array of shape (m,)
        Steps at which canary ``i`` was drawn by the Poisson sampling (inserted only
        when included). Not for the audit.
    noise_multiplier, max_grad_norm, sample_rate : float
    steps : int
    expected_batch_size : float
        ``q * n``: the divisor of the privatized sum before the optimizer's step.
    inserted : bool
        Whether the canaries' gradients were added at all (False: a null run).
    """

    projections: np.ndarray
    n_inserted: np.ndarray
    data_part: np.ndarray
    canary_part: np.ndarray
    noise_part: np.ndarray
    sampled: np.ndarray
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    expected_batch_size: float
    inserted: bool


@dataclass
class CanaryTraining:
    """What :func:`train_with_gradient_canaries` returns: the model (``privacy`` holds the
    accountant's figures, None without noise), the canaries and the trace."""

    model: TrainedModel
    canaries: GradientCanaries
    trace: CanaryTrace


def _schedule(recipe: Recipe, n: int) -> tuple[float, int, float]:
    """Sampling rate, steps and noise multiplier of the recipe on ``n`` data records
    (the noise multiplier 0 for a recipe without DP-SGD: clipping only)."""
    batches = math.ceil(n / recipe.batch_size)
    q, steps = 1 / batches, recipe.epochs * batches
    if not recipe.dp:
        return q, steps, 0.0
    planned = dp_accounting(recipe, n)
    assert math.isclose(planned.sample_rate, q) and planned.steps == steps
    return q, steps, planned.noise_multiplier


def train_with_gradient_canaries(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    canaries: int = 1000,
    kind: str = "dirac",
    insert: bool = True,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: Callable[[int, float], None] | None = None,
) -> CanaryTraining:
    """Train one model with DP-SGD and ``canaries`` gradient canaries (see the module).

    Parameters
    ----------
    recipe : Recipe
        With ``dp_epsilon`` or ``dp_noise_multiplier``: DP-SGD; without: the same loop
        with clipping but no noise (noise multiplier 0, no accountant). Early stopping is
        refused (not covered by the accountant).
    X, y : arrays
        The training records; every one is trained on (Poisson sampled).
    n_classes : int
    canaries : int, default 1000
        ``m``, at most the number of parameters.
    kind : {"dirac", "random"}, default "dirac"
    insert : bool, default True
        False: draw the canaries and their inclusion but add nothing (a null run whose
        canary scores carry no information about the inclusion).
    seed : int, default 0
        Initialisation ``torch.manual_seed(seed)``; Poisson sampling of records then
        canaries from a generator seeded ``seed + 1``, dropout ``seed + 2``, noise
        ``seed + 3`` (as :func:`~miaudit.training.dp.train_dp`); canaries
        ``numpy.random.default_rng([seed, 13])``.
    device : str, default "cpu"
    on_epoch : callable, optional
        ``on_epoch(epoch, mean_loss)`` after each epoch.

    Returns
    -------
    CanaryTraining
    """
    torch = _torch()
    _opacus()
    from opacus.accountants import create_accountant
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.optimizers import DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping

    if recipe.early_stopping:
        raise ConfigError("early_stopping is refused with gradient canaries: the stopping "
                          "epoch is chosen on training records, which the accountant does "
                          "not cover.")
    n = len(y)
    if n < 1:
        raise ConfigError("Training with gradient canaries needs at least one record.")
    q, steps, sigma = _schedule(recipe, n)
    clip = float(recipe.dp_max_grad_norm)
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_module(recipe, X.shape[1], n_classes).to(dev)
    set_dropout_generator(module, seed + 2)
    params = [p for p in module.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    can = draw_gradient_canaries(n_params, canaries, kind=kind, seed=seed)
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    expected_batch = q * n
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    recorder = _Recorder(can, params, clip, steps, insert, dev)
    history: list[float] = []
    with warnings.catch_warnings():
        for text in _QUIET:
            warnings.filterwarnings("ignore", message=text)
        gsm = GradSampleModuleFastGradientClipping(
            module, batch_first=True, loss_reduction="mean", max_grad_norm=clip,
            use_ghost_clipping=True)
        base = make_optimizer(recipe, params)
        opt = _canary_optimizer_class(DPOptimizerFastGradientClipping)(
            base, noise_multiplier=sigma, max_grad_norm=clip,
            expected_batch_size=expected_batch, loss_reduction="mean",
            generator=torch.Generator(device=dev).manual_seed(seed + 3), recorder=recorder)
        dp_loss = DPLossFastGradientClipping(gsm, opt, criterion, loss_reduction="mean")
        accountant = None
        if sigma > 0:
            accountant = create_accountant(mechanism=ACCOUNTANT)
            opt.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=q))
        sampler = torch.Generator().manual_seed(seed + 1)
        gsm.train()
        batches = steps // recipe.epochs
        for epoch in range(recipe.epochs):
            total, count = 0.0, 0
            for _ in range(batches):
                rows = torch.nonzero(torch.rand(n, generator=sampler) < q).ravel().to(dev)
                recorder.sampled = (torch.rand(can.m, generator=sampler) < q).numpy()
                opt.zero_grad(set_to_none=True)
                if rows.numel():
                    loss = dp_loss(gsm(Xt[rows]), yt[rows])
                    loss.backward()  # ghost clipping: p.grad = sum of clipped gradients
                    total += float(loss.detach()) * rows.numel()
                    count += rows.numel()
                else:  # an empty Poisson batch: the step still adds canaries and noise
                    for p in params:
                        p.grad = torch.zeros_like(p)
                opt.step()
            history.append(total / max(count, 1))
            if on_epoch is not None:
                on_epoch(epoch + 1, history[-1])
        epsilon = (float(accountant.get_epsilon(recipe.dp_delta))
                   if accountant is not None else None)
    module = gsm.to_standard_module()
    module.eval()
    for p in module.parameters():
        for attr in ("grad_sample", "summed_grad", "_norm_sample", "_forward_counter"):
            if hasattr(p, attr):
                delattr(p, attr)
    if recorder.step != steps:  # pragma: no cover - a broken loop, never a wrong number
        raise RuntimeError(f"{recorder.step} steps recorded, {steps} planned")
    privacy = None
    if accountant is not None:
        privacy = {**dp_accounting(recipe, n).to_dict(), "noise_multiplier": sigma,
                   "epsilon": epsilon,
                   "note": "canaries counted as examples at the same sampling rate"}
    model = TrainedModel(module, recipe, seed, X.shape[1], n_classes, history,
                         privacy=privacy)
    trace = CanaryTrace(recorder.projections, recorder.n_inserted, recorder.data_part,
                        recorder.canary_part, recorder.noise_part, recorder.n_sampled, sigma,
                        clip, q, steps, expected_batch, insert)
    return CanaryTraining(model, can, trace)


class _Recorder:
    """Inserts the sampled included canaries into the clipped sum and records the
    projections of each step (one instance per training run)."""

    def __init__(self, can: GradientCanaries, params, clip: float, steps: int,
                 insert: bool, device) -> None:
        torch = _torch()
        self.can, self.clip, self.insert = can, clip, insert
        self.params = params
        self.step = 0
        self.sampled = np.zeros(can.m, dtype=bool)
        self.projections = np.zeros((steps, can.m))
        self.n_inserted = np.zeros(can.m, dtype=np.int64)
        self.n_sampled = np.zeros(can.m, dtype=np.int64)
        self.data_part = np.zeros(can.m)
        self.canary_part = np.zeros(can.m)
        self.noise_part = np.zeros(can.m)
        self._pending = np.zeros(can.m, dtype=bool)
        if can.kind == "dirac":  # per parameter tensor: (local coordinates, canary ids)
            bounds = np.cumsum([0] + [p.numel() for p in params])
            self.local = []
            for k in range(len(params)):
                ids = np.flatnonzero((can.coordinates >= bounds[k])
                                     & (can.coordinates < bounds[k + 1]))
                self.local.append((torch.as_tensor(can.coordinates[ids] - bounds[k],
                                                   device=device),
                                   ids))
        else:
            self.u = torch.as_tensor(can.directions, device=device)

    def _project(self, tensors) -> np.ndarray:
        """``<u_i, concatenated tensors>`` for every canary."""
        torch = _torch()
        if self.can.kind == "dirac":
            out = np.zeros(self.can.m)
            for t, (idx, ids) in zip(tensors, self.local, strict=True):
                if ids.size:
                    out[ids] = t.reshape(-1)[idx].double().cpu().numpy()
            return out
        flat = torch.cat([t.reshape(-1) for t in tensors])
        return (self.u @ flat).double().cpu().numpy()

    def after_clipping(self, summed) -> None:
        """Record the data part, then add ``C u_i`` of each sampled included canary."""
        torch = _torch()
        self.data_part += self._project(summed)
        add = self.sampled & self.can.included & self.insert
        self.n_sampled += self.sampled
        self.n_inserted += add
        self._pending = add
        if not add.any():
            return
        weights = torch.as_tensor(self.clip * add, dtype=summed[0].dtype,
                                  device=summed[0].device)
        if self.can.kind == "dirac":
            self.canary_part += self.clip * add
            for t, (idx, ids) in zip(summed, self.local, strict=True):
                if ids.size:
                    t.view(-1).index_add_(0, idx, weights[torch.as_tensor(ids)])
            return
        total = weights @ self.u
        self.canary_part += (self.u @ total).double().cpu().numpy()
        start = 0
        for t in summed:
            t.add_(total[start : start + t.numel()].view_as(t))
            start += t.numel()

    def after_noise(self, noisy, noise) -> None:
        """Record the privatized sum's projections and the noise part of this step."""
        self.projections[self.step] = self._project(noisy)
        self.noise_part += self._project(noise)
        self.step += 1


def _canary_optimizer_class(dp_optimizer):
    """Opacus' ghost-clipping DPOptimizer with the canaries added to the sum of clipped
    per-example gradients, before the noise."""

    class CanaryDPOptimizer(dp_optimizer):
        def __init__(self, optimizer, *, recorder: _Recorder, **kwargs) -> None:
            super().__init__(optimizer, **kwargs)
            self.recorder = recorder

        def accumulate(self) -> None:  # after ghost clipping's two backward passes
            super().accumulate()
            self.recorder.after_clipping([p.summed_grad for p in self.params])

        def add_noise(self) -> None:
            super().add_noise()  # p.grad = p.summed_grad + noise (a new tensor)
            noisy = [p.grad for p in self.params]
            self.recorder.after_noise(noisy, [p.grad - p.summed_grad.view_as(p.grad)
                                              for p in self.params])

    return CanaryDPOptimizer
