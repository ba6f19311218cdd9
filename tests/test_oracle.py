"""The label oracle counts every query and never sends one beyond its budget."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.errors import OutputError, QueryBudgetError
from miaudit.targets.oracle import LabelOracle


def test_counts_queries_and_refuses_a_batch_beyond_the_budget():
    sent = []

    def predict(X):
        sent.append(len(X))
        return (X[:, 0] > 0).astype(np.int64)

    oracle = LabelOracle(predict, budget=10)
    X = np.array([[1.0], [-1.0], [2.0], [0.5]])
    np.testing.assert_array_equal(oracle(X), [1, 0, 1, 1])
    oracle(X)
    assert oracle.queries == 8 and oracle.remaining == 2
    with pytest.raises(QueryBudgetError, match="budget of 10"):
        oracle(X)
    assert sent == [4, 4]  # the refused batch was never sent
    assert oracle.queries == 8
    oracle(X[:2])
    assert oracle.remaining == 0


def test_unlimited_budget_and_bad_outputs():
    oracle = LabelOracle(lambda X: np.zeros(len(X), dtype=int))
    oracle(np.zeros((1000, 2)))
    assert oracle.queries == 1000 and oracle.remaining is None
    bad = LabelOracle(lambda X: np.zeros((len(X), 2)))
    with pytest.raises(OutputError, match="expected"):
        bad(np.zeros((3, 2)))
    assert bad.queries == 0
