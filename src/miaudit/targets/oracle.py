"""Label-only query access: the predicted label of a model on any input, every query counted.

Label-only attacks (Choquette-Choo et al., ICML 2021; Li & Zhang, CCS 2021) query the
target on perturbed copies of a record and see nothing but the predicted label. A
:class:`LabelOracle` is that access: it counts every input sent and refuses, before
sending anything, a batch that would exceed the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from miaudit.errors import OutputError, QueryBudgetError


@dataclass
class LabelOracle:
    """Predicted labels of one model on any inputs, with a query count and budget.

    Parameters
    ----------
    predict : callable
        ``predict(X: (Q, D)) -> (Q,)`` integer labels.
    budget : int, optional
        Most inputs that may ever be sent; ``None``: unlimited.

    Attributes
    ----------
    queries : int
        Inputs sent so far (one query per input row).
    """

    predict: Callable[[np.ndarray], np.ndarray]
    budget: int | None = None
    queries: int = field(default=0, init=False)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """The predicted label of every row of ``X`` (counted as ``len(X)`` queries).

        Raises
        ------
        QueryBudgetError
            When ``len(X)`` more queries would exceed the budget; nothing is sent.
        """
        X = np.asarray(X)
        n = len(X)
        if self.budget is not None and self.queries + n > self.budget:
            raise QueryBudgetError(
                f"{n} more queries would exceed the budget of {self.budget} "
                f"({self.queries} already made)."
            )
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        labels = np.asarray(self.predict(X))
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise OutputError(f"The label oracle returned shape {labels.shape} and dtype "
                              f"{labels.dtype} for {n} inputs; expected ({n},) integers.")
        self.queries += n
        return labels.astype(np.int64, copy=False)

    @property
    def remaining(self) -> int | None:
        """Queries left in the budget (``None``: unlimited)."""
        return None if self.budget is None else self.budget - self.queries
