"""Canary exposure (Carlini et al. 2019, "The Secret Sharer").

Insert random secrets ("canaries") such as ``"my PIN is 4 8 1 9 3 7"`` into the training
texts, some of them several times, train, and then ask how the model ranks each inserted
secret among all secrets it could have been. With ``R`` the space of secrets and ``rank`` the
position of the canary's secret when all ``|R|`` candidates are sorted by the model's NLL
(1 = the most likely),

    exposure = log2 |R| - log2 rank,

between 0 and ``log2 |R|`` bits; a secret the model has not memorised sits in the middle
(expected exposure about ``log2 e`` = 1.44 bits), a memorised one near ``log2 |R|``.

Everything here is a pure function over a scoring callable ``nll_fn(list[str]) -> (n,)``
that returns each text's negative log-likelihood under the model (total or mean per token;
lower = more likely).

References
----------
Carlini, Liu, Erlingsson, Kos & Song (2019), "The Secret Sharer: Evaluating and Testing
Unintended Memorization in Neural Networks", USENIX Security.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from miaudit.errors import ConfigError, DependencyError, OutputError

__all__ = [
    "DEFAULT_REPETITIONS",
    "Canary",
    "ExposureResult",
    "canary_exposure",
    "exposure_table",
    "insert_canaries",
    "make_canaries",
    "plot_exposure",
]

DEFAULT_REPETITIONS: tuple[int, ...] = (1, 2, 4, 8, 16)
"""Insertion counts cycled over the canaries by :func:`make_canaries`."""

MAX_DIGITS = 18  # 10**18 secrets still fit in an int64


@dataclass(frozen=True)
class Canary:
    """A secret inserted into the training texts.

    Attributes
    ----------
    secret : str
        Space-separated digits, e.g. ``"4 8 1 9 3 7"`` (so a byte-level tokenizer sees each
        digit as its own token).
    text : str
        The template with the secret filled in.
    repetitions : int
        How many times :func:`insert_canaries` inserts ``text``.
    """

    secret: str
    text: str
    repetitions: int


@dataclass(frozen=True)
class ExposureResult:
    """Exposure of one canary (see :func:`canary_exposure`).

    Attributes
    ----------
    secret : str
    repetitions : int
    nll : float
        The model's NLL of the canary's text.
    rank_estimate : float
        Rank of the secret among all ``|R|`` candidates (1 = most likely): exact when
        enumerated, else from the fitted distribution; ``2 ** (max_exposure - exposure)``.
    exposure_sampled : float
        ``log2|R| - log2(1 + (|R| - 1) * share)``, with ``share`` the fraction of the other
        candidates scored (all of them when enumerated; ties count one half) whose NLL is
        below the canary's. From a sample it cannot resolve more than about
        ``log2(n_candidates)`` bits: when no sampled candidate beats the canary it equals
        ``max_exposure``.
    exposure_fitted : float
        Same with ``share`` replaced by the CDF, at the canary's NLL, of a distribution
        fitted to the candidates' NLLs (``distribution``).
    max_exposure : float
        ``log2 |R|``.
    n_candidates : int
        Other secrets scored (``|R| - 1`` when enumerated).
    exact : bool
        True when every secret of ``R`` was scored.
    distribution : str
        ``"skewnorm"``, ``"norm"`` (skew-normal fit failed) or ``"degenerate"`` (all
        candidate NLLs equal).
    """

    secret: str
    repetitions: int
    nll: float
    rank_estimate: float
    exposure_sampled: float
    exposure_fitted: float
    max_exposure: float
    n_candidates: int
    exact: bool
    distribution: str

    @property
    def exposure(self) -> float:
        """The figure to report: exact when enumerated, else the fitted estimate."""
        return self.exposure_sampled if self.exact else self.exposure_fitted


def _fill(template: str, secret: str) -> str:
    return template.replace("{}", secret)


def _check_template(template: str) -> None:
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ConfigError(f"template must be a string with exactly one '{{}}' where the "
                          f"secret goes, got {template!r}.")


def _check_digits(n_digits: int) -> int:
    if isinstance(n_digits, bool) or not isinstance(n_digits, int | np.integer) or not (
            1 <= n_digits <= MAX_DIGITS):
        raise ConfigError(f"n_digits must be an integer from 1 to {MAX_DIGITS}, "
                          f"got {n_digits!r}.")
    return int(n_digits)


def _secret(value: int, n_digits: int) -> str:
    return " ".join(f"{value:0{n_digits}d}")


def _secret_value(secret: str, n_digits: int) -> int | None:
    digits = secret.split(" ")
    if len(digits) != n_digits or not all(len(d) == 1 and d.isdigit() for d in digits):
        return None
    return int("".join(digits))


def make_canaries(
    template: str = "my PIN is {}",
    *,
    n_digits: int = 6,
    count: int = 10,
    repetitions: Sequence[int] = DEFAULT_REPETITIONS,
    seed: int = 0,
) -> list[Canary]:
    """Draw canaries with different random secrets.

    Parameters
    ----------
    template : str, default "my PIN is {}"
        Text with one ``{}`` where the secret goes.
    n_digits : int, default 6
        Digits per secret; the secret space has ``10 ** n_digits`` elements.
    count : int, default 10
        Number of canaries (at most ``10 ** n_digits``).
    repetitions : sequence of int, default (1, 2, 4, 8, 16)
        Insertion counts, assigned to the canaries in turn (cycled).
    seed : int, default 0

    Returns
    -------
    canaries : list of Canary
        Secrets drawn uniformly without replacement.

    Examples
    --------
    >>> cs = make_canaries(n_digits=4, count=3, repetitions=(1, 8), seed=0)
    >>> [c.repetitions for c in cs], len(cs[0].secret), cs[0].text.startswith("my PIN is ")
    ([1, 8, 1], 7, True)
    """
    _check_template(template)
    n_digits = _check_digits(n_digits)
    space = 10 ** n_digits
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or not (
            1 <= count <= space):
        raise ConfigError(f"count must be an integer from 1 to {space} (the number of "
                          f"{n_digits}-digit secrets), got {count!r}.")
    reps = [int(r) for r in repetitions]
    if not reps or any(r < 1 for r in reps):
        raise ConfigError(f"repetitions must be a non-empty list of integers >= 1, "
                          f"got {list(repetitions)!r}.")
    values = np.random.default_rng(seed).choice(space, size=int(count), replace=False)
    out = []
    for i, value in enumerate(values.tolist()):
        secret = _secret(int(value), n_digits)
        out.append(Canary(secret=secret, text=_fill(template, secret),
                          repetitions=reps[i % len(reps)]))
    return out


def insert_canaries(texts: Sequence[str], canaries: Sequence[Canary], seed: int = 0) -> list[str]:
    """Insert each canary's text ``repetitions`` times, as separate documents.

    Parameters
    ----------
    texts : sequence of str
        Training texts; their order is kept.
    canaries : sequence of Canary
    seed : int, default 0
        Seed of the insertion positions.

    Returns
    -------
    texts : list of str
        ``len(texts) + sum(c.repetitions)`` documents: the canary copies at seeded random
        positions (uniform over the merged order), the original texts in their order.

    Examples
    --------
    >>> out = insert_canaries(["a", "b", "c"], [Canary("1 2", "pin 1 2", 2)], seed=0)
    >>> len(out), out.count("pin 1 2"), [t for t in out if t != "pin 1 2"]
    (5, 2, ['a', 'b', 'c'])
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string.")
    copies = [c.text for c in canaries for _ in range(int(c.repetitions))]
    total = len(texts) + len(copies)
    rng = np.random.default_rng(seed)
    slots = np.zeros(total, dtype=bool)
    slots[rng.choice(total, size=len(copies), replace=False)] = True
    order = rng.permutation(len(copies))
    originals = iter(texts)
    inserted = iter(order.tolist())
    return [copies[next(inserted)] if s else next(originals) for s in slots.tolist()]


def _score(nll_fn: Callable[[list[str]], np.ndarray], texts: list[str],
           batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        values = np.asarray(nll_fn(batch), dtype=np.float64)
        if values.shape != (len(batch),):
            raise OutputError(f"nll_fn returned shape {values.shape} for {len(batch)} texts; "
                              f"it must return one NLL per text, shape ({len(batch)},).")
        if not np.isfinite(values).all():
            raise OutputError(f"nll_fn returned NaN or infinite values for "
                              f"{int((~np.isfinite(values)).sum())} of {len(batch)} texts.")
        out.append(values)
    return np.concatenate(out) if out else np.zeros(0)


def _fitted_share(nll: float, others: np.ndarray) -> tuple[float, str]:
    """CDF at ``nll`` of a skew-normal (else normal) fitted to ``others``."""
    if np.ptp(others) == 0:
        value = float(others[0])
        return (0.0 if nll < value else 1.0 if nll > value else 0.5), "degenerate"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            params = stats.skewnorm.fit(others)
            share = float(stats.skewnorm.cdf(nll, *params))
            if np.isfinite(params).all() and params[-1] > 0 and math.isfinite(share):
                return share, "skewnorm"
        except (ValueError, RuntimeError, FloatingPointError):
            pass
    loc, scale = float(np.mean(others)), float(np.std(others))
    return float(stats.norm.cdf(nll, loc=loc, scale=scale)), "norm"


def _exposure(share: float, space: int) -> float:
    rank = 1.0 + (space - 1) * min(max(share, 0.0), 1.0)
    return math.log2(space) - math.log2(rank)


def canary_exposure(
    nll_fn: Callable[[list[str]], np.ndarray],
    canary: Canary,
    *,
    template: str,
    n_digits: int,
    candidates: int = 2000,
    enumerate_below: int = 10_000,
    seed: int = 0,
    batch_size: int = 256,
) -> ExposureResult:
    """Exposure of one canary under a model, exact or estimated from sampled secrets.

    When ``|R| = 10 ** n_digits <= enumerate_below`` every secret is scored and the rank is
    exact. Otherwise ``candidates`` secrets other than the canary's are drawn uniformly
    without replacement, and the fraction of them with a lower NLL than the canary's (ties
    count one half) is turned into a rank two ways: empirically, ``1 + (|R| - 1) * share``,
    and through the CDF of a skew-normal distribution fitted to their NLLs (normal when the
    fit fails), as Carlini et al. suggest, which extrapolates into the tail the sample
    cannot reach.

    Parameters
    ----------
    nll_fn : callable
        ``nll_fn(list of str) -> array (n,)``: NLL of each text under the model (lower =
        more likely). Called with at most ``batch_size`` texts at a time.
    canary : Canary
    template : str
        The template the canary was made with (one ``{}``).
    n_digits : int
        Digits of its secret.
    candidates : int, default 2000
        Secrets to sample when ``R`` is not enumerated.
    enumerate_below : int, default 10_000
        Largest ``|R|`` scored in full.
    seed : int, default 0
        Seed of the sampled secrets.
    batch_size : int, default 256

    Returns
    -------
    result : ExposureResult
        ``exposure`` (the property) is the exact exposure, or the fitted estimate.

    Raises
    ------
    ConfigError
        A template without one ``{}``, a canary that does not match ``template`` and
        ``n_digits``, or bad counts.
    OutputError
        ``nll_fn`` returned the wrong shape or non-finite values.

    References
    ----------
    Carlini et al. (2019), "The Secret Sharer", USENIX Security, sections 4.1-4.2.

    Examples
    --------
    >>> canary = make_canaries("pin {}", n_digits=2, count=1, seed=3)[0]
    >>> def nll_fn(texts):  # the model has memorised the canary
    ...     return np.array([0.0 if t == canary.text else 5.0 for t in texts])
    >>> res = canary_exposure(nll_fn, canary, template="pin {}", n_digits=2)
    >>> res.exact, res.rank_estimate, round(res.exposure, 2)
    (True, 1.0, 6.64)
    """
    _check_template(template)
    n_digits = _check_digits(n_digits)
    own = _secret_value(canary.secret, n_digits)
    if own is None or _fill(template, canary.secret) != canary.text:
        raise ConfigError(f"Canary {canary.text!r} was not made from template {template!r} "
                          f"with {n_digits} digits; pass the template and n_digits given to "
                          f"make_canaries.")
    for label, value, low in (("candidates", candidates, 2), ("enumerate_below",
                              enumerate_below, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ConfigError(f"{label} must be an integer >= {low}, got {value!r}.")
    space = 10 ** n_digits
    exact = space <= enumerate_below
    if exact:
        values = np.delete(np.arange(space, dtype=np.int64), own)
    else:
        if candidates > space - 1:
            raise ConfigError(f"candidates={candidates} exceeds the {space - 1} other "
                              f"secrets; raise enumerate_below to score them all.")
        values = np.random.default_rng(seed).choice(space - 1, size=int(candidates),
                                                    replace=False).astype(np.int64)
        values[values >= own] += 1  # skip the canary's own secret
    texts = [canary.text] + [_fill(template, _secret(int(v), n_digits)) for v in values]
    nll_all = _score(nll_fn, texts, int(batch_size))
    nll, others = float(nll_all[0]), nll_all[1:]
    share = float(((others < nll).sum() + 0.5 * (others == nll).sum()) / len(others))
    fitted_share, distribution = _fitted_share(nll, others)
    exposure_sampled = _exposure(share, space)
    exposure_fitted = _exposure(fitted_share, space)
    max_exposure = math.log2(space)
    exposure = exposure_sampled if exact else exposure_fitted
    return ExposureResult(secret=canary.secret, repetitions=int(canary.repetitions), nll=nll,
                          rank_estimate=float(2.0 ** (max_exposure - exposure)),
                          exposure_sampled=exposure_sampled, exposure_fitted=exposure_fitted,
                          max_exposure=max_exposure, n_candidates=len(others), exact=exact,
                          distribution=distribution)


def exposure_table(results: Sequence[ExposureResult]) -> pd.DataFrame:
    """One row per canary, in the given order.

    Returns
    -------
    table : pandas.DataFrame
        Columns ``secret``, ``repetitions``, ``exposure`` (exact or fitted), then every
        field of :class:`ExposureResult`.

    Examples
    --------
    >>> r = ExposureResult("1 2", 4, 0.5, 1.0, 6.6, 6.6, 6.64, 99, True, "skewnorm")
    >>> exposure_table([r])[["repetitions", "exposure"]].to_dict("records")
    [{'repetitions': 4, 'exposure': 6.6}]
    """
    rows = []
    for r in results:
        row = asdict(r)
        rows.append({"secret": row.pop("secret"), "repetitions": row.pop("repetitions"),
                     "exposure": r.exposure, **row})
    columns = ["secret", "repetitions", "exposure",
               *(f for f in ExposureResult.__dataclass_fields__
                 if f not in ("secret", "repetitions"))]
    return pd.DataFrame(rows, columns=columns)


def plot_exposure(results: Sequence[ExposureResult], path: str | os.PathLike[str]) -> Path:
    """Plot exposure against repetitions (log2 axis) to a ``.png``, ``.svg`` or ``.pdf``.

    Each canary is a point; the line joins the mean exposure per repetition count; the dashed
    line is the largest possible exposure ``log2 |R|``. Uses matplotlib's object API (no
    pyplot, no global backend change).

    Parameters
    ----------
    results : sequence of ExposureResult
    path : str or path-like
        Output file; its suffix picks the format.

    Returns
    -------
    path : Path

    Raises
    ------
    DependencyError
        matplotlib is not installed.
    ConfigError
        No results, or an unsupported suffix.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        raise ConfigError(f"plot_exposure writes .png, .svg or .pdf files, got {path.name!r}.")
    if not results:
        raise ConfigError("plot_exposure needs at least one ExposureResult.")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise DependencyError("plot_exposure needs matplotlib: pip install matplotlib") from exc
    reps = np.array([r.repetitions for r in results], dtype=np.float64)
    exposure = np.array([r.exposure for r in results], dtype=np.float64)
    fig = Figure(figsize=(5.0, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(reps, exposure, s=22, alpha=0.7, color="C1", zorder=3, label="canary")
    levels = np.unique(reps)
    ax.plot(levels, [exposure[reps == k].mean() for k in levels], marker="o", color="C0",
            label="mean")
    top = max(r.max_exposure for r in results)
    ax.axhline(top, linestyle="--", color="grey", label=f"log2|R| = {top:.1f}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("insertions in the training data")
    ax.set_ylabel("exposure (bits)")
    ax.set_ylim(0, top * 1.22)
    ax.legend(loc="upper left", ncols=3, fontsize="small", frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=150)
    return path
