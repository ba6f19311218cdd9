"""Dataset inference (Maini et al. 2024): the split test's p-values by simulation, its
figures against scipy / scikit-learn, the whole procedure on a fake and on a tiny GPT-2,
the command line, and bad input."""

from __future__ import annotations

import json
import warnings
import zlib

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from miaudit.audits.dataset_inference import (
    DEFAULT_KS,
    NO_EVIDENCE,
    TEXT_STATISTICS,
    USED,
    _welch,
    dataset_inference,
    split_test,
    text_statistics,
)
from miaudit.errors import (
    ConfigError,
    DataError,
    DataWarning,
    DegenerateResultWarning,
)
from miaudit.signals.tokens import TokenScores

# --------------------------------------------------------------------------- simulation


def _features(rng, n: int, f: int = 20, *, heavy: bool = False) -> np.ndarray:
    """Correlated features, like membership scores of one text (and heavy-tailed ones)."""
    x = rng.standard_normal((n, f)) * np.sqrt(0.5) + rng.standard_normal((n, 1)) * np.sqrt(0.5)
    return np.sinh(1.5 * x) if heavy else x


@pytest.mark.parametrize(("n_s", "n_v", "heavy"), [(30, 30, False), (20, 60, True)])
def test_null_rejects_at_most_alpha(n_s, n_v, heavy):
    """Suspect and validation rows from one distribution: the combined test (5 splits,
    Bonferroni) rejects in at most 5% of 300 data sets, up to the binomial 99.9% bound;
    the single split's p-values are uniform (Kolmogorov-Smirnov) and reject at the rate
    alpha. When written: 3% of 300 for 5 splits, 5% for one split."""
    rng = np.random.default_rng(0)
    runs = 300
    bound = stats.binom.ppf(0.999, runs, 0.05)
    combined, single = [], []
    for r in range(runs):
        x = _features(rng, n_s + n_v, heavy=heavy)
        combined.append(split_test(x[:n_s], x[n_s:], seed=r).p_value)
        single.append(split_test(x[:n_s], x[n_s:], seed=r, splits=1).p_value)
    combined, single = np.array(combined), np.array(single)
    assert (combined < 0.05).sum() <= bound, (combined < 0.05).mean()
    assert (single < 0.05).sum() <= bound, (single < 0.05).mean()
    assert stats.kstest(single, "uniform").pvalue > 0.001


def test_auc_interval_covers_chance_under_the_null():
    """Under the null the classifier's held-out AUC is 0.5; the DeLong interval of the
    reported (median) split covers it in at least 95% of 300 data sets up to the binomial
    bound (0.99 when written: the median split's interval is conservative)."""
    rng = np.random.default_rng(1)
    runs = 300
    covered = 0
    for r in range(runs):
        x = _features(rng, 80)
        res = split_test(x[:40], x[40:], seed=r)
        lo, hi = res.auc_cis[res.median_split]
        covered += lo <= 0.5 <= hi
    assert covered >= runs - stats.binom.ppf(0.999, runs, 0.05)


def test_power_under_a_feature_shift():
    """A shift of 0.5 standard deviations in 3 of 20 features: 100 texts per set reject in
    at least 90% of 50 data sets (50 of 50 when written; 49 for one split), and the combined
    test is about as powerful as one split."""
    rng = np.random.default_rng(2)
    combined, single = 0, 0
    for r in range(50):
        xs, xv = _features(rng, 100), _features(rng, 100)
        xs[:, :3] += 0.5
        combined += split_test(xs, xv, seed=r).p_value < 0.05
        single += split_test(xs, xv, seed=r, splits=1).p_value < 0.05
    assert combined >= 45
    assert combined >= single - 3


def test_weights_point_to_the_suspect_set_and_any_difference_counts():
    """Positive weights = higher in the suspect set. The classifier learns the direction
    from the training halves, as in the paper, so a suspect set that differs in either
    direction is told apart: the test does not rely on the features' signs (the
    distribution-shift check guards against differences that are not training)."""
    rng = np.random.default_rng(3)
    xs, xv = _features(rng, 100), _features(rng, 100)
    xs[:, :3] += 1.0
    up = split_test(xs, xv)
    assert up.p_value < 1e-6 and (up.weights[:, :3].mean(axis=0) > 0).all()
    down = split_test(xv, xs)
    assert down.p_value < 1e-6 and (down.weights[:, :3].mean(axis=0) < 0).all()


def test_figures_agree_with_scipy_and_sklearn():
    rng = np.random.default_rng(4)
    xs, xv = _features(rng, 41), _features(rng, 57)
    xs[:, 0] += 0.8
    res = split_test(xs, xv, seed=7, splits=3)
    assert res.n_train == (20, 28) and res.n_test == (21, 29)
    for k, (a, b) in enumerate(res.scores):
        assert len(a) == 21 and len(b) == 29
        ref = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
        assert res.split_p_values[k] == pytest.approx(ref.pvalue, rel=1e-9)
        assert res.t_statistics[k] == pytest.approx(ref.statistic, rel=1e-9)
        auc = roc_auc_score(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b])
        assert res.aucs[k] == pytest.approx(auc)
        assert res.mean_differences[k] == pytest.approx(a.mean() - b.mean())
    assert res.p_value == pytest.approx(min(1.0, 3 * res.split_p_values.min()))
    assert res.median_split == int(np.argsort(res.aucs)[1])
    # deterministic under the seed, different for another
    again = split_test(xs, xv, seed=7, splits=3)
    assert np.array_equal(again.split_p_values, res.split_p_values)
    assert not np.array_equal(split_test(xs, xv, seed=8, splits=3).split_p_values,
                              res.split_p_values)


def test_welch_edge_cases():
    assert _welch(np.ones(5), np.ones(6)) == (0.0, 1.0)
    t, p = _welch(np.array([1.0, 2.0, 3.0]), np.zeros(4))  # one side constant
    ref = stats.ttest_ind([1.0, 2.0, 3.0], np.zeros(4), equal_var=False, alternative="greater")
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue))


def test_constant_features_give_no_evidence():
    res = split_test(np.ones((10, 3)), np.ones((12, 3)))
    assert res.p_value == 1.0 and np.all(res.weights == 0)


@pytest.mark.parametrize(("xs", "xv", "match"), [
    (np.ones(10), np.ones((10, 2)), "2-D array"),
    (np.ones((3, 2)), np.ones((10, 2)), "at least 4"),
    (np.ones((10, 2)), np.ones((10, 3)), "same number"),
    (np.r_[np.ones((9, 2)), [[np.nan, 1]]], np.ones((10, 2)), "NaN or infinite.*row 9"),
])
def test_bad_matrices(xs, xv, match):
    with pytest.raises(DataError, match=match):
        split_test(xs, xv)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"splits": 0}, "'splits' must be an integer >= 1"),
    ({"seed": 1.5}, "'seed' must be an integer"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        split_test(np.ones((10, 2)), np.ones((10, 2)), **kwargs)


def test_text_statistics():
    names, x = text_statistics(["Stocks rose 3% in 2021. Bonds fell!", "a a a a"])
    assert names == list(TEXT_STATISTICS) and x.shape == (2, len(TEXT_STATISTICS))
    row = dict(zip(names, x[0], strict=True))
    assert row["has_year"] == 1 and row["log_sentences"] == pytest.approx(np.log(3))
    assert row["capitalised_word_share"] == pytest.approx(2 / 7)
    assert dict(zip(names, x[1], strict=True))["unique_word_share"] == 0.25
    assert np.isfinite(x).all()


# --------------------------------------------------------------------------- a fake LM

WORDS = ("river", "stone", "cloud", "lamp", "garden", "window", "engine", "copper", "violet",
         "harbor", "pencil", "marble", "forest", "candle", "ticket", "orbit", "saddle", "meadow")


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(6, 10))) for _ in range(n)]


class FakeLM:
    """One log-probability per word from its checksum; texts in ``trained`` get a boost of
    ``memory`` nats on every word (what a model that saw them would do)."""

    def __init__(self, trained=(), memory: float = 0.3):
        self.trained, self.memory, self.calls = set(trained), memory, 0

    def token_scores(self, texts):
        self.calls += 1
        lps = []
        for t in texts:
            base = np.array([-1.0 - zlib.crc32(w.encode()) % 7 / 2 for w in t.split()])
            lps.append(np.minimum(base + self.memory * (t in self.trained), 0.0))
        return TokenScores(lps, mean=[lp - 0.5 for lp in lps],
                           std=[np.ones_like(lp) for lp in lps])


def test_fake_lm_members_and_null():
    members, others, more = _texts(60, 0), _texts(60, 1), _texts(60, 2)
    lm = FakeLM(members)
    used = dataset_inference(lm, members, others)
    assert used.verdict == USED and used.used_in_training and used.p_value < 1e-6
    assert not used.shift_detected and lm.calls == 2  # the texts and the lowercased texts
    assert len(used.feature_names) == 3 + 3 * len(DEFAULT_KS)
    assert used.counts["n_suspect_test"] == 30 and used.counts["n_validation_train"] == 30
    null = dataset_inference(lm, more, others)
    assert null.verdict == NO_EVIDENCE and null.p_value >= 0.05
    data = json.loads(json.dumps(used.to_dict()))
    assert data["verdict"] == USED and data["p_value"] == used.p_value
    assert data["distribution_shift"]["detected"] is False
    assert set(data["feature_weights"]) == set(used.feature_names)
    assert data["auc"] == used.auc and data["auc_ci"] == list(used.auc_ci)


def test_fake_lm_null_false_positive_rate():
    """Disjoint non-member sets, 60 data sets: the verdict 'used' at most 5% of the time up
    to the binomial 99% bound (0 of 60 when written)."""
    lm = FakeLM()
    with warnings.catch_warnings():  # a chance rejection may come with a chance shift
        warnings.simplefilter("ignore", DegenerateResultWarning)
        rejected = sum(dataset_inference(lm, _texts(30, 2 * r + 10), _texts(30, 2 * r + 11),
                                         seed=r).used_in_training for r in range(60))
    assert rejected <= stats.binom.ppf(0.99, 60, 0.05)


def test_distribution_shift_warns_loudly():
    base = _texts(80, 3)
    suspect = [t + f" report of {2019 + i % 3}" for i, t in enumerate(base[:40])]
    with pytest.warns(DegenerateResultWarning, match="differ in distribution"):
        res = dataset_inference(FakeLM(), suspect, base[40:])
    assert res.used_in_training and res.shift_detected
    assert "UNRELIABLE" in res.headline() and res.warnings
    assert res.to_dict()["distribution_shift"]["detected"] is True


def test_reference_model_adds_a_feature():
    members, others = _texts(40, 4), _texts(40, 5)
    res = dataset_inference(FakeLM(members), members, others, reference_model=FakeLM())
    assert res.feature_names[-1] == "reference" and res.used_in_training
    assert res.settings["reference_model"] == "FakeLM"


# --------------------------------------------------------------------------- bad input


def test_overlap_and_duplicates_are_dropped_with_counts():
    suspect, validation = _texts(30, 6), _texts(30, 7)
    with pytest.warns(DataWarning) as caught:
        res = dataset_inference(FakeLM(), [*suspect, suspect[0]],
                                validation + suspect[:5] + ["  " + suspect[5] + " "])
    messages = " ".join(str(w.message) for w in caught)
    assert "Dropped 1 repeated text(s) from the suspect set" in messages
    assert "Dropped 6 validation text(s) that also appear in the suspect set" in messages
    assert res.counts["n_overlap_dropped"] == 6 and res.counts["n_validation"] == 30
    assert res.counts["n_suspect_duplicates_dropped"] == 1 and res.counts["n_suspect"] == 30
    with pytest.raises(DataError, match=r"5 validation text.*also appear in the suspect"):
        dataset_inference(FakeLM(), suspect, validation + suspect[:5], overlap="error")


@pytest.mark.parametrize(("suspect", "validation", "match"), [
    (_texts(12, 8), _texts(30, 9), "suspect set has 12 text.*at least 20"),
    (_texts(30, 8), _texts(30, 8)[:25], "validation set has 0 text.*after dropping 25"),
    ([*_texts(30, 8)[:29], " "], _texts(30, 9), "'suspect' text 29 is empty"),
    (_texts(30, 8), [*_texts(29, 9), 3], "'validation' must hold strings only; text 29"),
    ("one text", _texts(30, 9), "got one string"),
    (None, _texts(30, 9), "must be a list of strings, got NoneType"),
])
def test_bad_texts(suspect, validation, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError, match=match):
            dataset_inference(FakeLM(), suspect, validation)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"alpha": 1.0}, "'alpha' must be a number in \\(0, 1\\)"),
    ({"alpha": "0.05"}, "'alpha' must be"),
    ({"splits": 0}, "'splits' must be"),
    ({"ks": (20,)}, "'ks' must be fractions"),
    ({"ks": ()}, "'ks' must be fractions"),
    ({"overlap": "keep"}, "'overlap' must be 'drop' or 'error'"),
    ({"min_texts": 2}, "'min_texts' must be an integer >= 4"),
])
def test_bad_settings_of_dataset_inference(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        dataset_inference(FakeLM(), _texts(30, 10), _texts(30, 11), **kwargs)


def test_bad_models(tmp_path):
    with pytest.raises(ConfigError, match="model must be a local model folder or an object"):
        dataset_inference(42, _texts(30, 10), _texts(30, 11))
    with pytest.raises(ConfigError, match="reference model must be"):
        dataset_inference(FakeLM(), _texts(30, 10), _texts(30, 11), reference_model=[1])
    pytest.importorskip("transformers")
    with pytest.raises(DataError, match="does not exist"):
        dataset_inference(tmp_path / "nowhere", _texts(30, 10), _texts(30, 11))


# --------------------------------------------------------------------------- a tiny GPT-2


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A one-layer GPT-2 trained on 40 members; its tokenizer on 40 texts set aside."""
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    from miaudit.training.lm import LMRecipe, finetune_lm, save_lm, train_tokenizer

    texts = _texts(200, 20)
    aside, members, non_a, non_b = texts[:40], texts[40:80], texts[80:120], texts[120:160]
    recipe = LMRecipe(n_layer=1, n_head=2, n_embd=32, n_positions=32, vocab_size=300,
                      epochs=30, batch_size=8, lr=3e-3, block_size=32)
    tokenizer = train_tokenizer(aside, vocab_size=300)
    model = finetune_lm(recipe, tokenizer, members, seed=0)
    folder = save_lm(model, tokenizer, tmp_path_factory.mktemp("di") / "lm")
    return {"folder": folder, "members": members, "non_a": non_a, "non_b": non_b}


def test_tiny_gpt2_members_are_detected_and_non_members_are_not(tiny_lm):
    from miaudit.targets.lm import CausalLMTarget

    target = CausalLMTarget.load(tiny_lm["folder"])
    used = dataset_inference(target, tiny_lm["members"], tiny_lm["non_a"])
    assert used.verdict == USED and used.p_value < 0.05 and not used.shift_detected
    assert used.auc > 0.8  # 0.99 when written
    assert "min-k++@0.2" in used.feature_names
    null = dataset_inference(target, tiny_lm["non_b"], tiny_lm["non_a"])
    assert null.verdict == NO_EVIDENCE and null.p_value >= 0.05


def _local_app():
    import typer

    from miaudit.cli import app as main_app
    from miaudit.cli.dataset_inference import register

    if any(c.name == "dataset-inference" for c in main_app.registered_commands):
        return main_app
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """miaudit"""

    register(app)
    return app


def _write(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def test_cli(tiny_lm, tmp_path):
    from typer.testing import CliRunner

    app, runner = _local_app(), CliRunner()
    suspect = _write(tmp_path / "suspect.jsonl", tiny_lm["members"])
    validation = _write(tmp_path / "validation.jsonl", tiny_lm["non_a"])
    args = ["dataset-inference", "--suspect", str(suspect), "--validation", str(validation),
            "--model", str(tiny_lm["folder"])]
    res = runner.invoke(app, [*args, "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["verdict"] == USED and data["counts"]["n_suspect"] == 40
    res = runner.invoke(app, [*args, "--strict"])
    assert res.exit_code == 1 and USED in " ".join(res.stdout.split())
    assert "Dataset inference" in res.stdout
    other = tmp_path / "other.txt"  # one text per line
    other.write_text("\n".join(tiny_lm["non_b"]) + "\n")
    res = runner.invoke(app, [*args[:2], str(other), *args[3:], "--strict", "--splits", "1"])
    assert res.exit_code == 0 and NO_EVIDENCE in " ".join(res.stdout.split())
    # bad input: one line on stderr, exit code 2
    few = _write(tmp_path / "few.jsonl", tiny_lm["members"][:10])
    res = runner.invoke(app, [*args[:2], str(few), *args[3:]])
    assert res.exit_code == 2 and "at least 20" in res.stderr and "Traceback" not in res.output
    res = runner.invoke(app, [*args[:2], str(tmp_path / "missing.jsonl"), *args[3:]])
    assert res.exit_code == 2 and "--suspect: Text file not found" in res.stderr
    res = runner.invoke(app, [*args[:-1], str(tmp_path / "no-model")])
    assert res.exit_code == 2 and "does not exist" in res.stderr
    # overlap: dropped with a warning on stderr
    res = runner.invoke(app, [*args[:4], str(_write(tmp_path / "v.jsonl", tiny_lm["non_a"]
                                                     + tiny_lm["members"][:3])),
                              *args[5:], "--format", "json"])
    assert res.exit_code == 0 and "Dropped 3 validation text(s)" in res.stderr
    assert json.loads(res.stdout)["counts"]["n_overlap_dropped"] == 3
