"""Label-only queries for the audit: the plan (how many queries), and the answers of the
target and of the attacker's reference models on perturbed copies of the records.

Every label-only attack gets its own :class:`~miaudit.targets.oracle.LabelOracle` on the
target, so its queries are counted (and capped by the budget) separately. The reference
models are the attacker's own: querying them costs nothing and is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.attacks import Attack, LabelQueries
from miaudit.errors import ConfigError
from miaudit.signals import Exposure, observe
from miaudit.signals.label_queries import (
    DEFAULT_BOUNDARY_QUERIES,
    DEFAULT_COPIES,
    MIN_BOUNDARY_QUERIES,
    augmentation_correctness,
    boundary_distance,
)
from miaudit.targets.oracle import LabelOracle
from miaudit.targets.outputs import Query


@dataclass(frozen=True)
class QueryPlan:
    """Queries per record of each label-only attack, within an optional budget.

    ``budget`` is the most queries one label-only attack may send to one target; the
    default numbers of queries per record are lowered to fit it. ``augment_copies=None``
    is the default of :func:`~miaudit.signals.label_queries.augmentation_correctness`
    (30 noised copies of a table row, the 25 flips and shifts of an image).
    """

    augment_copies: int | None = None
    boundary_queries: int = DEFAULT_BOUNDARY_QUERIES
    budget: int | None = None

    @classmethod
    def fit(cls, budget: int | None, n_records: int, chosen: list[Attack]) -> QueryPlan:
        """The default plan, lowered to ``budget // n_records`` queries per record; refuse
        a budget too small for the chosen attacks."""
        if budget is None:
            return cls()
        if budget < 1:
            raise ConfigError(f"The query budget must be >= 1, got {budget}.")
        per_record = budget // max(n_records, 1)
        names = {a.name for a in chosen if a.needs_queries}
        need = 1 if names & {"label-augment", "label-augment-learned"} else 0
        if "label-boundary" in names:
            need = max(need, MIN_BOUNDARY_QUERIES)
        if need and per_record < need:
            raise ConfigError(
                f"A query budget of {budget} allows {per_record} queries per record for "
                f"{n_records} records; the label-only attacks ({', '.join(sorted(names))}) "
                f"need at least {need} per record: raise --query-budget to "
                f"{need * n_records} or more."
            )
        return cls(min(DEFAULT_COPIES, max(per_record, 1)) if per_record < DEFAULT_COPIES
                   else None,
                   min(DEFAULT_BOUNDARY_QUERIES, max(per_record, MIN_BOUNDARY_QUERIES)),
                   budget)


def label_oracle(query: Query, exposure: Exposure, *, seed: int,
                 budget: int | None = None) -> LabelOracle:
    """The label a model releases under ``exposure`` (after any output defence, with fresh
    randomness for every query), as a counted oracle."""
    rng = np.random.default_rng(seed)

    def predict(X: np.ndarray) -> np.ndarray:
        out = query(X)
        return observe(out, np.zeros(len(X), dtype=np.int64), exposure, rng=rng).predicted

    return LabelOracle(predict, budget=budget)


def collect_label_queries(
    chosen: list[Attack],
    exposure: Exposure,
    *,
    target: Query,
    X: np.ndarray,
    y: np.ndarray,
    references: list[Query] | None,
    reference_records: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    plan: QueryPlan,
    image_shape: tuple[int, int, int] | None,
    seed: int,
) -> LabelQueries:
    """Query the target (and, for the learned combination, the references) as the chosen
    label-only attacks need.

    Parameters
    ----------
    references : list of callables, optional
        The attacker's reference models.
    reference_records : (X_ref, y_ref, membership (K, R)), optional
        Records with known membership in the references, for the learned combination.
    """
    names = {a.name for a in chosen if a.needs_queries}
    out: dict = {}
    if names & {"label-augment", "label-augment-learned"}:
        oracle = label_oracle(target, exposure, seed=seed, budget=plan.budget)
        res = augmentation_correctness(oracle, X, y, copies=plan.augment_copies,
                                       image_shape=image_shape, seed=seed)
        out.update(augment_correct=res.correct, augment_levels=res.levels,
                   augment_queries=oracle.queries)
    if "label-boundary" in names:
        oracle = label_oracle(target, exposure, seed=seed + 1, budget=plan.budget)
        res = boundary_distance(oracle, X, y, queries_per_record=plan.boundary_queries,
                                seed=seed)
        out.update(boundary_distance=res.distance, boundary_queries=oracle.queries)
    if "label-augment-learned" in names:
        if not references or reference_records is None:
            raise ConfigError("The attack 'label-augment-learned' needs reference models "
                              "(--references K).")
        X_ref, y_ref, membership = reference_records
        correct = [augmentation_correctness(
                       label_oracle(q, exposure, seed=seed + 2 + k), X_ref, y_ref,
                       copies=plan.augment_copies, image_shape=image_shape, seed=seed).correct
                   for k, q in enumerate(references)]
        out.update(reference_correct=np.stack(correct), reference_membership=membership)
    return LabelQueries(**out)
