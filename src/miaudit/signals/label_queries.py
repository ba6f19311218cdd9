"""Label-only query routines: how robust the target's label is around each record.

A model trained on a record tends to keep predicting that record's label when the record
is perturbed, and places its decision boundary farther from it. Two label-only attacks
measure this by querying a :class:`~miaudit.targets.oracle.LabelOracle` (predicted labels
only, every query counted):

- :func:`augmentation_correctness`: the target's label on perturbed copies of each record
  (noise and feature flips for tables; horizontal flips and small shifts for images).
  The attack score is the fraction of copies still labelled correctly.
- :func:`boundary_distance`: the size (L2) of the smallest perturbation found along random
  directions that changes the target's label, negative for misclassified records.

Both signals are oriented as attack scores: **higher means more likely a member**.

Queries always go out in large batches (one oracle call per perturbation step, with one row
per record), and the perturbed inputs depend only on ``seed``, the records and the settings,
never on the oracle: the same seed sends the same inputs to a target and to reference
models (for the boundary search, as long as their answers agree; the random directions are
the same in any case).

References
----------
Choquette-Choo, Tramèr, Carlini, Papernot. Label-Only Membership Inference Attacks.
ICML 2021.
Li, Zhang. Membership Leakage in Label-Only Exposures. CCS 2021.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError, DataError, QueryBudgetError
from miaudit.targets.oracle import LabelOracle

__all__ = [
    "DEFAULT_BOUNDARY_QUERIES",
    "DEFAULT_COPIES",
    "IMAGE_VARIANTS",
    "MIN_BOUNDARY_QUERIES",
    "TABULAR_LEVELS",
    "AugmentResult",
    "BoundaryResult",
    "augmentation_correctness",
    "boundary_distance",
]

#: Perturbed copies per record for tabular data (10 per level of :data:`TABULAR_LEVELS`).
DEFAULT_COPIES = 30

#: Tabular perturbation ladder, mild to strong, as (flip probability of each binary column,
#: Gaussian noise sigma of each other column, in units of a standardised column). Which
#: strength separates members best depends on the model (Choquette-Choo et al., Sec. 4),
#: so copies are spread over the ladder and a learned combination can weigh the levels.
TABULAR_LEVELS: tuple[tuple[float, float], ...] = ((0.02, 0.1), (0.05, 0.25), (0.1, 0.5))

_MAX_SHIFT = 2


def _image_variants() -> tuple[tuple[bool, int, int], ...]:
    # Mild first: shifts by L1 distance 0, 1, 2, each without then with the mirror image.
    shifts = [(dx, dy) for dx in range(-_MAX_SHIFT, _MAX_SHIFT + 1)
              for dy in range(-_MAX_SHIFT, _MAX_SHIFT + 1) if abs(dx) + abs(dy) <= _MAX_SHIFT]
    shifts.sort(key=lambda s: (abs(s[0]) + abs(s[1]), -s[0], -s[1]))
    return tuple((flip, dx, dy) for d in range(_MAX_SHIFT + 1) for flip in (False, True)
                 for dx, dy in shifts if abs(dx) + abs(dy) == d and (flip or d > 0))


#: Image variants as (horizontal flip, dx, dy): the image moved ``dx`` pixels right and
#: ``dy`` down (reflect padding: the pixels beside the border, mirrored), then mirrored
#: left-right if ``flip``. Every shift with ``|dx| + |dy| <= 2``, with and without the
#: flip, except the identity: 25 variants, mild first.
IMAGE_VARIANTS: tuple[tuple[bool, int, int], ...] = _image_variants()

#: Queries per record of the boundary search: 1 clean query + 20 directions x 10 steps.
DEFAULT_BOUNDARY_QUERIES = 201

#: Steps per direction when ``directions`` is not given.
_STEPS_PER_DIRECTION = 10
#: Fewest steps per direction (a bracket needs room to grow, then to shrink).
_MIN_STEPS = 3
#: Fewest queries per record :func:`boundary_distance` accepts (1 clean + 3 steps).
MIN_BOUNDARY_QUERIES = 1 + _MIN_STEPS
#: The bracket search starts at ``max_radius / 2**_DOUBLINGS`` and so reaches
#: ``max_radius`` after this many doublings.
_DOUBLINGS = 6


@dataclass(frozen=True, eq=False)
class AugmentResult:
    """The target's label on perturbed copies of each record.

    Attributes
    ----------
    correct : ndarray (N, A) of bool
        Whether copy ``a`` of record ``i`` is still labelled ``y[i]``.
    levels : ndarray (A,) of int
        Perturbation level (tables) or image variant (images) of each copy: an index
        into ``level_names``.
    level_names : tuple of str
        A readable name of each level, e.g. ``"flip p=0.05, noise sigma=0.25"`` or
        ``"flip+shift(1,-1)"``.
    queries : int
        Queries this call made (``N * A``).
    """

    correct: np.ndarray
    levels: np.ndarray
    level_names: tuple[str, ...]
    queries: int


@dataclass(frozen=True, eq=False)
class BoundaryResult:
    """Distance of each record to the target's decision boundary, as found by queries.

    Attributes
    ----------
    distance : ndarray (N,) of float
        Signed L2 distance: positive for records the target labels correctly, negative
        for misclassified ones; ``+/- max_radius`` where no label change was found.
        Higher means more likely a member.
    queries : int
        Queries this call made (``N * queries_per_record``).
    queries_per_record : int
        Queries spent on every record: ``1 + directions * steps``.
    directions : int
        Random directions searched per record.
    converged : ndarray (N,) of bool
        Whether a label change was found within ``max_radius``.
    """

    distance: np.ndarray
    queries: int
    queries_per_record: int
    directions: int
    converged: np.ndarray


def augmentation_correctness(
    oracle: LabelOracle,
    X: np.ndarray,
    y: np.ndarray,
    *,
    copies: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> AugmentResult:
    """Query the label of perturbed copies of every record (Choquette-Choo et al., 2021).

    The attack score is ``result.correct.mean(axis=1)``, higher for members: a model keeps
    the label of its training records under more perturbation. The clean records are not
    queried (and the identity is never among the copies).

    Tables (``image_shape=None``): a column whose values in ``X`` are all 0 or 1 is binary
    and each of its entries is flipped with probability ``p``; every other column
    (standardised) gets Gaussian noise ``sigma``. Copy ``a`` uses level ``a % 3`` of
    :data:`TABULAR_LEVELS`, ``(p, sigma) = (0.02, 0.1), (0.05, 0.25), (0.1, 0.5)``, from
    a barely perceptible change to half a standard deviation per column.

    Images (``image_shape=(C, H, W)``, rows of ``X`` flattened channel-first): copy ``a``
    is the deterministic variant ``a % 25`` of :data:`IMAGE_VARIANTS` (horizontal flip and
    shifts of up to 2 pixels with reflect padding); beyond 25 copies the variants repeat,
    which tells something only if the target answers at random.

    Parameters
    ----------
    oracle : LabelOracle
        The model's predicted labels.
    X : ndarray (N, D)
        Records (rows of the model's input).
    y : ndarray (N,) of int
        True labels.
    copies : int, optional
        Perturbed copies per record (``A``); default :data:`DEFAULT_COPIES` (30) for
        tables and all 25 variants for images.
    image_shape : (C, H, W), optional
        Shape of one image, ``C * H * W == D``, ``H, W >= 3``; ``None`` for tables.
    seed : int, default 0
        Seed of the tabular perturbations (images need none).

    Returns
    -------
    AugmentResult
        ``correct (N, A)``, ``levels (A,)``, ``level_names``, ``queries``.

    Raises
    ------
    QueryBudgetError
        When ``N * A`` queries exceed what is left of the oracle's budget (nothing is sent).

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.targets.oracle import LabelOracle
    >>> X = np.array([[2.0, 0.0], [0.05, 1.0]])
    >>> oracle = LabelOracle(lambda Z: (Z[:, 0] > 0).astype(int))
    >>> res = augmentation_correctness(oracle, X, np.array([1, 1]), copies=6)
    >>> res.correct.shape, res.queries, res.level_names[0]
    ((2, 6), 12, 'flip p=0.02, noise sigma=0.1')
    """
    X, y = _check_records(X, y)
    n, d = X.shape
    if image_shape is not None:
        image_shape = _check_image_shape(image_shape, d)
    n_variants = len(TABULAR_LEVELS) if image_shape is None else len(IMAGE_VARIANTS)
    if copies is None:
        copies = DEFAULT_COPIES if image_shape is None else n_variants
    if not _is_int(copies) or copies < 1:
        raise ConfigError(f"'copies' must be an integer >= 1, got {copies!r}.")
    copies = int(copies)
    _reserve(oracle, n * copies, f"{n} records x {copies} copies", "copies")

    levels = np.arange(copies) % n_variants
    correct = np.empty((n, copies), dtype=bool)
    if image_shape is None:
        binary = np.all((X == 0) | (X == 1), axis=0)
        names = tuple(_tabular_name(p, s, binary) for p, s in TABULAR_LEVELS)
        rng = np.random.default_rng(seed)
        Xf = X if np.issubdtype(X.dtype, np.floating) else X.astype(np.float64)
        for a in range(copies):
            p, sigma = TABULAR_LEVELS[levels[a]]
            correct[:, a] = oracle(_perturb_table(Xf, binary, p, sigma, rng)) == y
    else:
        names = tuple(_variant_name(*v) for v in IMAGE_VARIANTS)
        images = X.reshape(n, *image_shape)
        for a in range(copies):
            variant = _image_variant(images, *IMAGE_VARIANTS[levels[a]]).reshape(n, d)
            correct[:, a] = oracle(variant) == y
    used = min(copies, n_variants)
    return AugmentResult(correct, levels, names[:used], n * copies)


def boundary_distance(
    oracle: LabelOracle,
    X: np.ndarray,
    y: np.ndarray,
    *,
    queries_per_record: int = DEFAULT_BOUNDARY_QUERIES,
    directions: int | None = None,
    max_radius: float | None = None,
    seed: int = 0,
) -> BoundaryResult:
    """Distance to the decision boundary along random directions (label only).

    For a record the target labels correctly, the smallest L2 perturbation found that
    changes its predicted label; for a misclassified record, minus the distance at which
    its (wrong) predicted label changes (Choquette-Choo et al., 2021; Li & Zhang, 2021).
    Higher means more likely a member: training records lie farther from the boundary.

    The search, in the manner of HopSkipJump's line searches: one query for the clean
    label ``c_i``, then ``directions`` random unit directions ``u_j`` (isotropic Gaussian,
    normalised; the same directions for every record, common random numbers that keep the
    ranking of records free of direction noise), each given ``steps =
    (queries_per_record - 1) // directions`` queries ``x_i + r u_j``. Until a first label
    change is found, a record's radius doubles from ``max_radius / 64`` (capped at
    ``max_radius``, restarting with each direction); from then on it keeps the smallest
    radius ``hi`` at which a label change was seen, and along each direction bisects
    ``[lo, hi]`` from ``lo = 0`` (a change at the midpoint lowers ``hi``, none raises
    ``lo``). The reported distance is ``hi``, the upper end of the final bracket: an input
    at that distance really has another label, so the estimate never undershoots the true
    distance to the boundary, and overshoots the crossing along the best direction found
    by at most that bracket's width. A record whose label never changes within
    ``max_radius`` gets ``+/- max_radius`` and ``converged = False``.

    All records advance in lock-step, so each step is one oracle call with ``N`` rows and
    every record costs the same ``1 + directions * steps <= queries_per_record`` queries.

    Parameters
    ----------
    oracle : LabelOracle
        The model's predicted labels.
    X : ndarray (N, D)
        Records (rows of the model's input; images flattened).
    y : ndarray (N,) of int
        True labels (they only set the sign).
    queries_per_record : int, default 201
        Most queries per record, at least 4 (``1 + 3 * directions``).
    directions : int, optional
        Random directions; default ``max(1, (queries_per_record - 1) // 10)``, i.e.
        10 steps per direction (about 6 to bracket a first change, then bisections that
        narrow the bracket 2x per step).
    max_radius : float, optional
        Largest perturbation tried; default 4 times the largest distance of a row of
        ``X`` from the mean row (the largest row norm when all rows are equal).
    seed : int, default 0
        Seed of the random directions.

    Returns
    -------
    BoundaryResult
        ``distance (N,)``, ``queries``, ``queries_per_record``, ``directions``,
        ``converged (N,)``.

    Raises
    ------
    QueryBudgetError
        When ``N * queries_per_record`` queries exceed what is left of the oracle's
        budget (nothing is sent).

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.targets.oracle import LabelOracle
    >>> X = np.array([[3.0, 0.0], [-1.0, 2.0], [0.5, -1.0]])
    >>> oracle = LabelOracle(lambda Z: (Z[:, 0] > 0).astype(int))
    >>> res = boundary_distance(oracle, X, np.array([1, 0, 0]), queries_per_record=101)
    >>> np.round(res.distance, 1), res.queries
    (array([ 3. ,  1. , -0.5]), 303)
    """
    X, y = _check_records(X, y)
    n, d = X.shape
    if not _is_int(queries_per_record) or queries_per_record < MIN_BOUNDARY_QUERIES:
        raise ConfigError(f"'queries_per_record' must be an integer >= {MIN_BOUNDARY_QUERIES} "
                          f"(1 clean query + {_MIN_STEPS} search steps), got "
                          f"{queries_per_record!r}.")
    budget = int(queries_per_record) - 1
    if directions is None:
        directions = max(1, budget // _STEPS_PER_DIRECTION)
    elif not _is_int(directions) or directions < 1:
        raise ConfigError(f"'directions' must be an integer >= 1, got {directions!r}.")
    directions = int(directions)
    steps = budget // directions
    if steps < _MIN_STEPS:
        raise ConfigError(
            f"'queries_per_record'={queries_per_record} leaves {steps} steps for each of "
            f"{directions} directions; at least {_MIN_STEPS} are needed: use "
            f"queries_per_record >= {1 + _MIN_STEPS * directions} or fewer directions."
        )
    if max_radius is None:
        max_radius = _default_max_radius(X)
    elif (isinstance(max_radius, bool) or not isinstance(max_radius, int | float | np.number)
          or not math.isfinite(max_radius) or max_radius <= 0):
        raise ConfigError(f"'max_radius' must be a finite number > 0, got {max_radius!r}.")
    max_radius = float(max_radius)
    per_record = 1 + directions * steps
    _reserve(oracle, n * per_record,
             f"{n} records x {per_record} queries per record", "queries_per_record")

    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float64)
    Xf = X.astype(dtype, copy=False)
    clean = oracle(Xf)
    rng = np.random.default_rng(seed)
    start = max_radius / 2.0**_DOUBLINGS
    found = np.zeros(n, dtype=bool)
    hi = np.full(n, max_radius)  # smallest radius seen with another label (where found)
    for _ in range(directions):
        u = rng.standard_normal(d)
        u /= max(np.linalg.norm(u), np.finfo(np.float64).tiny)
        lo = np.zeros(n)
        for t in range(steps):
            r = np.where(found, 0.5 * (lo + hi), min(start * 2.0**t, max_radius))
            changed = oracle(Xf + (r[:, None] * u).astype(dtype, copy=False)) != clean
            newly = changed & ~found
            # a first change: the bracket is (previous radius tried, r]
            lo = np.where(newly, np.where(t > 0, np.minimum(r, start * 2.0**(t - 1)), 0.0),
                          np.where(changed, lo, r))
            hi = np.where(changed, r, hi)
            found |= changed
    sign = np.where(clean == y, 1.0, -1.0)
    return BoundaryResult(sign * hi, n * per_record, per_record, directions, found)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_records(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise DataError(f"X must be a 2-D array (records x features), got shape {X.shape}; "
                        "flatten images and pass image_shape.")
    if len(X) == 0:
        raise DataError("X has no records.")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(f"X must be numeric, got dtype {X.dtype}.")
    if not np.isfinite(X).all():
        raise DataError("X contains NaN or infinite values; impute or drop them first.")
    if y.ndim != 1 or len(y) != len(X):
        raise DataError(f"y must be 1-D with one label per record of X: got shape {y.shape} "
                        f"for {len(X)} records.")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"y must hold integer class labels, got dtype {y.dtype}.")
    return X, y


def _check_image_shape(image_shape: tuple[int, int, int], d: int) -> tuple[int, int, int]:
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(_is_int(s) and s >= 1 for s in shape):
        raise ConfigError(f"'image_shape' must be (C, H, W) with positive integers, "
                          f"got {image_shape!r}.")
    c, h, w = (int(s) for s in shape)
    if c * h * w != d:
        raise ConfigError(f"'image_shape' {(c, h, w)} has {c * h * w} values but the rows of "
                          f"X have {d}; pass the shape of one channel-first image.")
    if min(h, w) < _MAX_SHIFT + 1:
        raise ConfigError(f"'image_shape' {(c, h, w)}: shifts of {_MAX_SHIFT} pixels need "
                          f"images of at least {_MAX_SHIFT + 1} x {_MAX_SHIFT + 1} pixels.")
    return c, h, w


def _reserve(oracle: LabelOracle, total: int, what: str, knob: str) -> None:
    """Refuse, before sending anything, a search the oracle's budget cannot pay for."""
    left = oracle.remaining
    if left is not None and total > left:
        raise QueryBudgetError(
            f"This search needs {total} queries ({what}) but only {left} remain of the "
            f"budget of {oracle.budget}; lower '{knob}' or raise the budget."
        )


def _tabular_name(p: float, sigma: float, binary: np.ndarray) -> str:
    parts = ([f"flip p={p:g}"] if binary.any() else []) + \
            ([f"noise sigma={sigma:g}"] if not binary.all() else [])
    return ", ".join(parts)


def _perturb_table(X: np.ndarray, binary: np.ndarray, p: float, sigma: float,
                   rng: np.random.Generator) -> np.ndarray:
    out = X.copy()
    n = len(X)
    if binary.any():
        cols = out[:, binary]
        out[:, binary] = np.where(rng.random(cols.shape) < p, 1 - cols, cols)
    if not binary.all():
        noise = rng.standard_normal((n, int((~binary).sum())))
        out[:, ~binary] += (sigma * noise).astype(out.dtype, copy=False)
    return out


def _variant_name(flip: bool, dx: int, dy: int) -> str:
    shift = f"shift({dx},{dy})" if dx or dy else ""
    return "+".join(part for part in ("flip" if flip else "", shift) if part)


def _reflect(idx: np.ndarray, size: int) -> np.ndarray:
    """Indices beyond ``[0, size)`` mirrored about the border pixel (numpy's "reflect")."""
    idx = np.abs(idx)
    return np.where(idx > size - 1, 2 * (size - 1) - idx, idx)


def _image_variant(images: np.ndarray, flip: bool, dx: int, dy: int) -> np.ndarray:
    """Images ``(N, C, H, W)`` moved ``dx`` right and ``dy`` down, then mirrored if ``flip``."""
    h, w = images.shape[-2:]
    rows = _reflect(np.arange(h) - dy, h)
    cols = np.arange(w)
    cols = _reflect((cols[::-1] if flip else cols) - dx, w)
    return images[:, :, rows[:, None], cols[None, :]]


def _default_max_radius(X: np.ndarray) -> float:
    """4 x the largest distance of a row from the mean row (else from 0; else sqrt(D))."""
    mean = X.mean(axis=0, dtype=np.float64)
    spread = norm = 0.0
    for i in range(0, len(X), 4096):  # rows in blocks: no (N, D) float64 copy
        block = X[i:i + 4096].astype(np.float64)
        norm = max(norm, float(np.sqrt((block**2).sum(axis=1)).max()))
        spread = max(spread, float(np.sqrt(((block - mean) ** 2).sum(axis=1)).max()))
    if spread <= 0:
        spread = norm
    if spread <= 0:
        spread = math.sqrt(X.shape[1])
    return 4.0 * spread
