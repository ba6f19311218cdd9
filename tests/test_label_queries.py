"""Label-only query routines: closed-form distances, query accounting, perturbations, and the
score direction on an overfit model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from miaudit.errors import ConfigError, DataError, QueryBudgetError
from miaudit.signals.label_queries import (
    DEFAULT_BOUNDARY_QUERIES,
    DEFAULT_COPIES,
    IMAGE_VARIANTS,
    TABULAR_LEVELS,
    augmentation_correctness,
    boundary_distance,
)
from miaudit.targets.oracle import LabelOracle


def linear_problem(n: int, d: int, seed: int = 0, noise: float = 0.1):
    """Records, noisy labels and a linear oracle ``label = (X @ w + b > 0)``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    b = 0.3
    predicted = (X @ w + b > 0).astype(np.int64)
    y = predicted ^ (rng.random(n) < noise)
    true = np.abs(X @ w + b) / np.linalg.norm(w)
    return X, y.astype(np.int64), predicted, true, lambda Z: (Z @ w + b > 0).astype(np.int64)


class Recorder:
    """A predict function that keeps a copy of every input it is sent."""

    def __init__(self, predict):
        self.predict = predict
        self.sent: list[np.ndarray] = []

    def __call__(self, Z):
        self.sent.append(np.array(Z, copy=True))
        return self.predict(Z)


# ---------------------------------------------------------------- boundary distance


def test_boundary_distance_matches_the_closed_form_in_two_dimensions():
    X, y, predicted, true, predict = linear_problem(300, 2)
    oracle = LabelOracle(predict)
    res = boundary_distance(oracle, X, y, directions=64, queries_per_record=600)
    assert res.directions == 64 and res.queries_per_record == 1 + 64 * 9
    assert res.converged.all()
    est = np.abs(res.distance)
    # every reported distance is an input with another label: never below the truth
    assert (est >= true * (1 - 1e-9)).all()
    assert np.mean(est <= 1.05 * true) >= 0.95
    # negative exactly for the records the model gets wrong
    np.testing.assert_array_equal(res.distance < 0, predicted != y)


def test_boundary_distance_ranks_records_in_ten_dimensions_with_the_default_budget():
    X, y, predicted, true, predict = linear_problem(400, 10, seed=1)
    res = boundary_distance(LabelOracle(predict), X, y)
    assert res.queries_per_record <= DEFAULT_BOUNDARY_QUERIES
    signed_true = np.where(predicted == y, true, -true)
    assert spearmanr(res.distance, signed_true)[0] > 0.95


def test_boundary_distance_query_accounting_and_budget():
    X, y, _, _, predict = linear_problem(50, 3)
    oracle = LabelOracle(predict)
    res = boundary_distance(oracle, X, y, queries_per_record=57, directions=5)
    assert res.queries == oracle.queries == 50 * res.queries_per_record <= 50 * 57
    assert res.queries_per_record == 1 + 5 * 11

    recorder = Recorder(predict)
    small = LabelOracle(recorder, budget=50 * 40)
    with pytest.raises(QueryBudgetError, match="budget of 2000"):
        boundary_distance(small, X, y, queries_per_record=41)
    assert small.queries == 0 and recorder.sent == []  # refused before sending anything
    res = boundary_distance(small, X, y, queries_per_record=40)
    assert small.queries == res.queries <= small.budget


def test_boundary_distance_sends_whole_batches_and_the_same_inputs_under_a_seed():
    X, y, _, _, predict = linear_problem(40, 4)
    first, second, other = Recorder(predict), Recorder(predict), Recorder(predict)
    a = boundary_distance(LabelOracle(first), X, y, queries_per_record=31, seed=7)
    b = boundary_distance(LabelOracle(second), X, y, queries_per_record=31, seed=7)
    boundary_distance(LabelOracle(other), X, y, queries_per_record=31, seed=8)
    assert [len(s) for s in first.sent] == [40] * 31  # one call of N rows per step
    assert all(np.array_equal(s, t) for s, t in zip(first.sent, second.sent, strict=True))
    np.testing.assert_array_equal(a.distance, b.distance)
    assert not np.array_equal(first.sent[1], other.sent[1])
    # a different model gets the same clean records and the same random directions
    different = Recorder(lambda Z: (Z[:, 0] > 0.5).astype(np.int64))
    boundary_distance(LabelOracle(different), X, y, queries_per_record=31, seed=7)
    np.testing.assert_array_equal(different.sent[0], first.sent[0])
    np.testing.assert_array_equal(different.sent[1], first.sent[1])  # first bracket step


def test_boundary_distance_without_a_label_change_reports_max_radius():
    X = np.random.default_rng(0).standard_normal((6, 3))
    y = np.array([0, 0, 0, 1, 1, 1])
    constant = LabelOracle(lambda Z: np.zeros(len(Z), dtype=np.int64))
    res = boundary_distance(constant, X, y, queries_per_record=21, max_radius=5.0)
    assert not res.converged.any()
    np.testing.assert_array_equal(res.distance, [5.0, 5.0, 5.0, -5.0, -5.0, -5.0])
    default = boundary_distance(constant, X, y, queries_per_record=21)
    spread = np.linalg.norm(X - X.mean(axis=0), axis=1).max()
    np.testing.assert_allclose(np.abs(default.distance), 4 * spread)


# ---------------------------------------------------------------- augmentation, tables


def test_tabular_copies_flip_binary_columns_and_add_noise_to_the_others():
    rng = np.random.default_rng(0)
    n = 4000
    X = np.hstack([rng.integers(0, 2, (n, 10)).astype(float), rng.standard_normal((n, 5))])
    y = np.zeros(n, dtype=np.int64)
    recorder = Recorder(lambda Z: np.zeros(len(Z), dtype=np.int64))
    oracle = LabelOracle(recorder)
    res = augmentation_correctness(oracle, X, y, copies=3, seed=0)
    assert res.queries == oracle.queries == 3 * n
    np.testing.assert_array_equal(res.levels, [0, 1, 2])
    assert res.level_names == tuple(f"flip p={p:g}, noise sigma={s:g}" for p, s in TABULAR_LEVELS)
    assert res.correct.all()
    for sent, (p, sigma) in zip(recorder.sent, TABULAR_LEVELS, strict=True):
        assert sent.shape == X.shape
        binary = sent[:, :10]
        assert np.isin(binary, [0.0, 1.0]).all()
        assert abs(np.mean(binary != X[:, :10]) - p) < 0.005
        assert abs(np.std(sent[:, 10:] - X[:, 10:]) - sigma) < 0.05 * sigma


def test_tabular_copies_are_split_round_robin_over_the_levels():
    X = np.random.default_rng(0).standard_normal((5, 3))
    y = np.zeros(5, dtype=np.int64)
    oracle = LabelOracle(lambda Z: np.zeros(len(Z), dtype=np.int64))
    res = augmentation_correctness(oracle, X, y, copies=7)
    np.testing.assert_array_equal(res.levels, [0, 1, 2, 0, 1, 2, 0])
    assert res.level_names == ("noise sigma=0.1", "noise sigma=0.25", "noise sigma=0.5")
    one = augmentation_correctness(oracle, X, y, copies=1)
    assert one.correct.shape == (5, 1) and one.level_names == ("noise sigma=0.1",)
    default = augmentation_correctness(oracle, X, y)
    assert default.correct.shape == (5, DEFAULT_COPIES)
    assert np.bincount(default.levels).tolist() == [10, 10, 10]


def test_tabular_correctness_is_against_the_true_label_and_seeded():
    X = np.array([[5.0, 0.0], [-5.0, 1.0], [0.0, 0.0]])
    y = np.array([1, 1, 0])
    predict = lambda Z: (Z[:, 0] > 0).astype(np.int64)  # noqa: E731
    res = augmentation_correctness(LabelOracle(predict), X, y, copies=9, seed=3)
    assert res.correct[0].all() and not res.correct[1].any()
    first, second = Recorder(predict), Recorder(lambda Z: np.ones(len(Z), dtype=np.int64))
    augmentation_correctness(LabelOracle(first), X, y, copies=9, seed=3)
    augmentation_correctness(LabelOracle(second), X, y, copies=9, seed=3)
    assert all(np.array_equal(s, t) for s, t in zip(first.sent, second.sent, strict=True))
    other = Recorder(predict)
    augmentation_correctness(LabelOracle(other), X, y, copies=9, seed=4)
    assert not np.array_equal(first.sent[0], other.sent[0])


def test_augmentation_refuses_a_budget_it_cannot_pay_for():
    X = np.zeros((20, 3))
    y = np.zeros(20, dtype=np.int64)
    recorder = Recorder(lambda Z: np.zeros(len(Z), dtype=np.int64))
    oracle = LabelOracle(recorder, budget=99)
    with pytest.raises(QueryBudgetError, match="100 queries"):
        augmentation_correctness(oracle, X, y, copies=5)
    assert oracle.queries == 0 and recorder.sent == []
    res = augmentation_correctness(oracle, X, y, copies=4)
    assert res.queries == oracle.queries == 80 <= oracle.budget


# ---------------------------------------------------------------- augmentation, images


def _images(n=3, c=2, h=6, w=7):
    X = np.random.default_rng(0).random((n, c * h * w)).astype(np.float32)
    return X, (c, h, w)


def test_image_variants_are_25_distinct_flips_and_shifts_without_the_identity():
    assert len(IMAGE_VARIANTS) == len(set(IMAGE_VARIANTS)) == 25
    assert (False, 0, 0) not in IMAGE_VARIANTS
    assert all(abs(dx) + abs(dy) <= 2 for _, dx, dy in IMAGE_VARIANTS)
    X, shape = _images()
    recorder = Recorder(lambda Z: np.zeros(len(Z), dtype=np.int64))
    res = augmentation_correctness(LabelOracle(recorder), X, np.zeros(3, dtype=np.int64),
                                   image_shape=shape)
    assert res.correct.shape == (3, 25) and res.queries == 75
    np.testing.assert_array_equal(res.levels, np.arange(25))
    assert res.level_names[0] == "flip" and len(set(res.level_names)) == 25
    assert "flip+shift(1,0)" in res.level_names and "shift(0,-2)" in res.level_names
    assert all(s.dtype == X.dtype and s.shape == X.shape for s in recorder.sent)
    assert not any(np.array_equal(s, X) for s in recorder.sent)
    assert len({s.tobytes() for s in recorder.sent}) == 25


def test_image_variants_mirror_and_shift_the_pixels():
    X, shape = _images()
    images = X.reshape(-1, *shape)
    recorder = Recorder(lambda Z: np.zeros(len(Z), dtype=np.int64))
    res = augmentation_correctness(LabelOracle(recorder), X, np.zeros(3, dtype=np.int64),
                                   image_shape=shape)
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    h, w = shape[1:]
    for (flip, dx, dy), name, sent in zip(IMAGE_VARIANTS, res.level_names, recorder.sent,
                                          strict=True):
        out = sent.reshape(-1, *shape)
        shifted = padded[:, :, 2 - dy:2 - dy + h, 2 - dx:2 - dx + w]
        np.testing.assert_array_equal(out, shifted[..., ::-1] if flip else shifted, err_msg=name)
        if not flip:  # interior pixels move by (dx, dy)
            np.testing.assert_array_equal(out[:, :, 2 + dy, 2 + dx], images[:, :, 2, 2])
    mirrored = recorder.sent[res.level_names.index("flip")].reshape(-1, *shape)
    np.testing.assert_array_equal(mirrored[..., 0], images[..., -1])
    np.testing.assert_array_equal(mirrored[..., 2], images[..., w - 3])


def test_image_copies_cycle_past_the_number_of_variants():
    X, shape = _images()
    recorder = Recorder(lambda Z: np.zeros(len(Z), dtype=np.int64))
    res = augmentation_correctness(LabelOracle(recorder), X, np.zeros(3, dtype=np.int64),
                                   image_shape=shape, copies=30)
    np.testing.assert_array_equal(res.levels, np.arange(30) % 25)
    assert len(res.level_names) == 25
    np.testing.assert_array_equal(recorder.sent[27], recorder.sent[2])
    few = augmentation_correctness(LabelOracle(recorder), X, np.zeros(3, dtype=np.int64),
                                   image_shape=shape, copies=4)
    assert few.level_names == res.level_names[:4]


# ---------------------------------------------------------------- score direction


def test_members_score_higher_on_an_overfit_model():
    X, y = make_classification(n_samples=400, n_features=8, n_informative=5, flip_y=0.2,
                               random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    member = np.zeros(len(X), dtype=bool)
    member[np.random.default_rng(0).permutation(len(X))[:200]] = True
    model = KNeighborsClassifier(n_neighbors=1).fit(X[member], y[member])
    oracle = LabelOracle(lambda Z: model.predict(Z).astype(np.int64))
    augment = augmentation_correctness(oracle, X, y, seed=0).correct.mean(axis=1)
    distance = boundary_distance(oracle, X, y, seed=0).distance
    for score in (augment, distance):
        assert score[member].mean() > score[~member].mean()
        assert roc_auc_score(member, score) > 0.6


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"X": np.zeros(4)}, DataError, "2-D"),
        ({"y": np.zeros(3, dtype=np.int64)}, DataError, "one label per record"),
        ({"y": np.zeros(4)}, DataError, "integer class labels"),
        ({"X": np.full((4, 3), np.nan)}, DataError, "NaN"),
        ({"X": np.zeros((0, 3)), "y": np.zeros(0, dtype=np.int64)}, DataError, "no records"),
    ],
)
def test_bad_records_are_refused_by_both_routines(kwargs, error, match):
    args = {"X": np.zeros((4, 3)), "y": np.zeros(4, dtype=np.int64)} | kwargs
    oracle = LabelOracle(lambda Z: np.zeros(len(Z), dtype=np.int64))
    with pytest.raises(error, match=match):
        augmentation_correctness(oracle, args["X"], args["y"])
    with pytest.raises(error, match=match):
        boundary_distance(oracle, args["X"], args["y"])
    assert oracle.queries == 0


def test_bad_settings_name_the_argument():
    X, y = np.zeros((4, 12)), np.zeros(4, dtype=np.int64)
    oracle = LabelOracle(lambda Z: np.zeros(len(Z), dtype=np.int64))
    with pytest.raises(ConfigError, match="'copies' must be an integer >= 1, got 0"):
        augmentation_correctness(oracle, X, y, copies=0)
    with pytest.raises(ConfigError, match=r"'image_shape' .* has 27 values but the rows of X "
                                          r"have 12"):
        augmentation_correctness(oracle, X, y, image_shape=(3, 3, 3))
    with pytest.raises(ConfigError, match="at least 3 x 3 pixels"):
        augmentation_correctness(oracle, X, y, image_shape=(3, 2, 2))
    with pytest.raises(ConfigError, match=r"'queries_per_record' must be an integer >= 4.*got 3"):
        boundary_distance(oracle, X, y, queries_per_record=3)
    with pytest.raises(ConfigError, match="queries_per_record >= 31 or fewer directions"):
        boundary_distance(oracle, X, y, queries_per_record=20, directions=10)
    with pytest.raises(ConfigError, match="'directions' must be an integer >= 1"):
        boundary_distance(oracle, X, y, directions=0)
    with pytest.raises(ConfigError, match="'max_radius' must be a finite number > 0"):
        boundary_distance(oracle, X, y, max_radius=-1.0)
    assert oracle.queries == 0
