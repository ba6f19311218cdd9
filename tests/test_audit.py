"""End-to-end audits through the Python API: files, numbers, adapters, determinism."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

import miaudit
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, MembershipError, OutputError
from miaudit.game import membership_design, split_members
from miaudit.targets import PrecomputedOutputs, check_outputs

FAST_MLP = {"epochs": 15, "hidden": (64,)}


@pytest.fixture(scope="module")
def digits_result():
    return miaudit.audit(data="digits", model="mlp", model_params=FAST_MLP, seed=0)


def test_summary_has_the_documented_layout(digits_result, tmp_path):
    out = digits_result.save(tmp_path / "run")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["miaudit_version"] == miaudit.__version__
    assert {"name", "n_records", "n_classes", "fingerprint"} <= summary["data"].keys()
    assert summary["data"]["name"] == "digits" and summary["data"]["n_classes"] == 10
    t = summary["target"]
    assert {"model", "train_accuracy", "test_accuracy", "n_members", "n_non_members"} <= t.keys()
    # attack-p's population data: 10% of the pool set aside, never audited
    n_pop = summary["data"]["n_population_records"]
    assert n_pop == 180
    # members drawn per record with probability 1/2
    assert t["n_members"] + t["n_non_members"] == 1797 - n_pop - 1
    assert abs(t["n_members"] - t["n_non_members"]) < 4 * np.sqrt(1797)
    assert t["train_accuracy"] > 0.95 and t["test_accuracy"] > 0.8
    # no references: the class-conditional thresholds (fitted on references) do not run,
    # and their oracle variants only when named
    expected = {"loss", "confidence", "entropy", "mentr", "correctness", "attack-p", "quantile"}
    assert set(summary["attacks"]) == expected
    for m in summary["attacks"].values():
        assert set(m["tpr_at_fpr"]) == {"0.01", "0.001", "0.0001"}
        lo, hi = m["auc_ci"]
        assert lo <= m["auc"] <= hi
        # 808 non-members cannot measure FPR 0.1% or 0.01%: null with a reason
        assert m["tpr_at_fpr"]["0.001"] is None and m["tpr_at_fpr"]["0.0001"] is None
        assert "not measurable" in m["undefined"]["tpr_at_fpr.0.001"]
        assert m["tpr_at_fpr"]["0.01"] is not None


def test_scores_file_agrees_with_sklearn(digits_result, tmp_path):
    out = digits_result.save(tmp_path / "run")
    scores = pd.read_parquet(out / "scores.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert list(scores.columns[:6]) == ["exposure", "target", "record_id", "fingerprint",
                                        "is_member", "label"]
    assert (scores["exposure"] == "logits").all()
    assert len(scores) == summary["target"]["n_members"] + summary["target"]["n_non_members"]
    assert scores["record_id"].is_unique and scores["fingerprint"].str.len().eq(64).all()
    for name, m in summary["attacks"].items():
        assert m["auc"] == pytest.approx(roc_auc_score(scores["is_member"], scores[name]))
        fpr, tpr, _ = roc_curve(scores["is_member"], scores[name], drop_intermediate=False)
        assert m["tpr_at_fpr"]["0.01"] == pytest.approx(tpr[fpr <= 0.01].max())


def test_members_score_higher_on_an_overfit_model(digits_result):
    for name, m in digits_result.summary()["attacks"].items():
        assert m["auc"] > 0.5, name


def test_same_seed_same_everything_other_seed_other_split():
    a = miaudit.audit(data="wine", model="logistic", model_params={"epochs": 20}, seed=3)
    b = miaudit.audit(data="wine", model="logistic", model_params={"epochs": 20}, seed=3)
    c = miaudit.audit(data="wine", model="logistic", model_params={"epochs": 20}, seed=4)
    pd.testing.assert_frame_equal(a.scores, b.scores)
    assert a.summary()["attacks"] == b.summary()["attacks"]
    assert set(a.scores.record_id[a.scores.is_member]) != set(
        c.scores.record_id[c.scores.is_member])


def test_membership_design_balance():
    d = membership_design(101, 8, seed=0)
    assert d.shape == (8, 101) and (d.sum(axis=0) == 4).all()
    one = membership_design(11, 1, seed=2)[0]
    m, n = split_members(11, seed=2)
    assert one.sum() == 5 and set(np.flatnonzero(one)) == set(m)
    assert len(n) == 5 and not set(m) & set(n)
    odd = membership_design(100, 5, seed=0)
    assert (odd.sum(axis=1) == 50).all() and set(odd.sum(axis=0).tolist()) <= {2, 3}
    with pytest.raises(ConfigError, match=">= 1"):
        membership_design(10, 0)


def test_sklearn_estimator_with_members():
    from sklearn.ensemble import RandomForestClassifier

    ds = load_dataset("breast_cancer")
    members = ds.ids[::2]
    clf = RandomForestClassifier(n_estimators=50, random_state=0).fit(ds.X[::2], ds.y[::2])
    result = miaudit.audit(data=ds, model=clf, members=members, exposure="probabilities")
    s = result.summary()
    assert s["target"]["n_members"] == len(members)
    assert s["target"]["train_accuracy"] == 1.0
    # A random forest fits its training set exactly; on this easy task the leak is small
    # but measurable (AUC about 0.60, interval above 0.5).
    assert s["attacks"]["loss"]["auc_ci"][0] > 0.5
    with pytest.raises(miaudit.errors.ExposureError, match="logits"):
        miaudit.audit(data=ds, model=clf, members=members, exposure="logits")


def test_torch_module_and_callable_give_same_numbers():
    torch = pytest.importorskip("torch")
    ds = load_dataset("wine")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(ds.n_features, ds.n_classes))
    mask = np.arange(ds.n_records) % 2 == 0

    def fn(X):
        with torch.no_grad():
            return torch.softmax(module(torch.as_tensor(X, dtype=torch.float32)), 1).numpy()

    a = miaudit.audit(data=ds, model=module, members=mask, exposure="probabilities")
    b = miaudit.audit(data=ds, model=fn, members=mask, exposure="probabilities")
    for name in ("loss", "entropy", "mentr"):
        assert np.allclose(a.scores[name], b.scores[name], atol=1e-5)


def test_precomputed_outputs_match_in_process(tmp_path):
    result = miaudit.audit(data="wine", model="logistic", model_params={"epochs": 30},
                           exposure="logits", attacks=["loss", "mentr"])
    # the run's own raw material, handed back in as "bring your own logits"
    sig = result.signals
    path = tmp_path / "out.npz"
    np.savez(path, logits=sig["logits"][0], y=sig["labels"], is_member=sig["membership"][0],
             ids=sig["record_ids"],
             fingerprints=result.scores["fingerprint"].to_numpy().astype(str))
    pre = miaudit.audit(outputs=path, exposure="logits", attacks=["loss", "mentr"])
    assert np.allclose(pre.scores["loss"], result.scores["loss"], atol=1e-5)
    assert pre.summary()["attacks"]["mentr"]["auc"] == pytest.approx(
        result.summary()["attacks"]["mentr"]["auc"], abs=1e-6)
    assert pre.summary()["target"]["train_accuracy"] == result.summary()["target"][
        "train_accuracy"]


def test_shared_records_between_sides_are_refused():
    ds = load_dataset("wine")
    fps = ds.fingerprints.copy()
    fps[1] = fps[0]
    outputs = check_outputs(np.zeros((ds.n_records, 3)), "logits")
    is_member = np.arange(ds.n_records) % 2 == 0  # record 0 member, record 1 not
    pre = PrecomputedOutputs(outputs, ds.y, is_member, ds.ids, fps, "x.npz")
    with pytest.raises(MembershipError, match="both members and non-members"):
        miaudit.audit(outputs=pre)


def test_duplicates_are_left_out_of_the_game(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    X[30:40], y[30:40] = X[0:10], y[0:10]  # ten exact copies
    np.savez(tmp_path / "dup.npz", X=X, y=y)
    with pytest.warns(miaudit.errors.DataWarning, match="10 duplicate"):
        result = miaudit.audit(data=tmp_path / "dup.npz", model="logistic",
                               model_params={"epochs": 5})
    s = result.summary()
    assert s["data"]["n_duplicates_left_out"] == 10
    # 5 of the 50 records set aside as population data; one sits out to keep equal halves
    assert s["data"]["n_population_records"] == 5
    assert s["target"]["n_members"] + s["target"]["n_non_members"] == 44
    assert result.scores["fingerprint"].is_unique


def test_labels_outside_model_classes():
    ds = load_dataset("wine")  # 3 classes
    with pytest.raises(OutputError, match="labels outside the model's classes"):
        miaudit.audit(data=ds, model=lambda X: np.full((len(X), 2), 0.5),
                      members=np.arange(ds.n_records) < 80)


def test_save_is_atomic(tmp_path, monkeypatch, digits_result):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        digits_result.save(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_location30_loss_attack_beats_chance_clearly(shared_file):
    path = shared_file("location30.npz")
    result = miaudit.audit(data=path, model="mlp",
                           attacks=["loss", "mentr", "confidence", "entropy", "correctness"])
    s = result.summary()
    assert s["target"]["train_accuracy"] > 0.99
    assert 0.5 < s["target"]["test_accuracy"] < 0.75
    loss = s["attacks"]["loss"]
    assert loss["auc"] > 0.75
    assert loss["auc_ci"][0] > 0.75
    assert loss["auc"] == pytest.approx(roc_auc_score(result.scores.is_member,
                                                      result.scores["loss"]))


def test_adult_csv_with_categorical_and_missing_values(shared_file):
    path = shared_file("adult.csv.gz")
    result = miaudit.audit(data=path, label_column="income", model="logistic",
                           model_params={"epochs": 3}, attacks=["loss", "correctness"])
    s = result.summary()
    assert s["data"]["n_classes"] == 2
    assert s["data"]["n_missing_values"] > 0
    assert s["target"]["test_accuracy"] > 0.8
    assert 0.45 < s["attacks"]["loss"]["auc"] < 0.65  # a linear model leaks little


def test_exact_zero_probabilities_keep_class_thresholds_working():
    from sklearn.metrics import roc_auc_score
    from sklearn.tree import DecisionTreeClassifier

    ds = load_dataset("breast_cancer")
    mask = np.arange(ds.n_records) % 2 == 0
    tree = DecisionTreeClassifier(max_depth=6, random_state=0).fit(ds.X[mask], ds.y[mask])
    result = miaudit.audit(data=ds, model=tree, members=mask, exposure="probabilities",
                           attacks=["loss", "class-loss-known"])
    s = result.scores
    assert np.isfinite(s["class-loss-known"]).all()
    # Pure leaves give p_y in {0, 1}: the loss is binary, and the per-class threshold must
    # keep that split (it once collapsed every score to one value, AUC 0.5).
    assert s["class-loss-known"].nunique() == 2
    auc = roc_auc_score(s.is_member, s["class-loss-known"])
    assert auc == pytest.approx(roc_auc_score(s.is_member, s["loss"])) and auc > 0.5


def test_integer_zero_one_members_are_refused():
    ds = load_dataset("wine")
    mask = (np.arange(ds.n_records) % 2 == 0).astype(int)
    with pytest.raises(MembershipError, match="0/1 mask but is not boolean"):
        miaudit.audit(data=ds, model=lambda X: np.full((len(X), 3), 1 / 3), members=mask)
    with pytest.raises(MembershipError, match="more than once"):
        miaudit.audit(data=ds, model=lambda X: np.full((len(X), 3), 1 / 3),
                      members=["1", "1", "2"])


def test_many_valued_labels_warn_about_distribution_shift(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = np.round(rng.normal(size=200) * 30).astype(int)  # ~100 classes, mostly singletons
    np.savez(tmp_path / "cont.npz", X=X, y=y)
    with pytest.warns(miaudit.errors.DataWarning, match="looks continuous or ID-like"):
        result = miaudit.audit(data=tmp_path / "cont.npz", model="logistic",
                               model_params={"epochs": 2}, attacks=["loss"])
    assert any("no member has" in w for w in result.summary()["warnings"])


def test_duplicate_ids_in_outputs_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "o.npz", logits=rng.normal(size=(20, 2)), y=np.arange(20) % 2,
             is_member=np.arange(20) < 10, ids=np.array(["same"] * 20))
    with pytest.raises(MembershipError, match="appears more than once"):
        miaudit.audit(outputs=tmp_path / "o.npz")


def test_typed_attack_reports_mirror_the_summary():
    """``AuditResult.attacks`` and ``.verdict`` hold the summary's figures, typed: values
    with their intervals, the reason of every figure that could not be measured."""
    import math

    from miaudit.audits import AttackReport, Figure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = miaudit.audit(data="wine", model="logistic", attacks=["loss", "mentr"])
    summary = result.summary()
    reports = result.attacks
    assert set(reports) == set(summary["attacks"]) == {"loss", "mentr"}
    for name, report in reports.items():
        entry = summary["attacks"][name]
        assert isinstance(report, AttackReport) and report.name == name
        assert report.auc == Figure(entry["auc"], tuple(entry["auc_ci"]))
        assert report.knowledge == tuple(entry["knowledge"])
        assert math.isclose(report.advantage, entry["advantage"])
        for f, figure in report.tpr_at_fpr.items():
            key = str(f)
            assert figure.value == entry["tpr_at_fpr"][key]
            if figure.measured:
                assert figure.interval == tuple(entry["tpr_at_fpr_ci"][key])
            else:  # 85 non-members measure no TPR at 1% FPR or below
                assert figure.reason == entry["undefined"][f"tpr_at_fpr.{key}"]
                assert figure.reason.startswith("not measurable")
        assert report.epsilon_lower_bound.value == entry["epsilon_lower_bound"]
        assert report.epsilon_lower_bound.note == entry["epsilon_method"]
    v = result.verdict
    assert (v.level, v.strongest_attack, v.sentence) == (
        summary["verdict"]["level"], summary["verdict"]["strongest_attack"],
        summary["verdict"]["sentence"])
