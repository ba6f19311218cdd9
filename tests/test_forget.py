"""The forgetting check: a model retrained without F forgets it, the original does not."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import typer
from sklearn.ensemble import RandomForestClassifier
from typer.testing import CliRunner

from miaudit.cli import governance as gov_cli
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, DataError, MembershipError, OutputError
from miaudit.governance.forget import (
    INDISTINGUISHABLE,
    LESS_MEMBER_LIKE,
    STILL_MEMBERS,
    load_id_list,
    verify_forget,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def setup():
    """digits: T = 800 random records (F = 150 of them), fresh = 150 records outside T.

    A random forest with leaves of one record memorises its bootstrap samples: on F the
    original model's loss AUC is ~0.75-0.8 (interval lower end ~0.7 > 0.5), while the model
    retrained on T without F has never seen F, so F is like any other unseen record (AUC
    0.5 +- 0.04; interval half-width ~0.075 with 150 + 150 records and two attacks).
    """
    ds = load_dataset("digits")
    order = np.random.default_rng(0).permutation(ds.n_records)
    train, fresh = order[:800], order[800:950]
    forget = train[:150]
    keep = train[150:]
    original = RandomForestClassifier(n_estimators=50, min_samples_leaf=1, random_state=0)
    retrained = RandomForestClassifier(n_estimators=50, min_samples_leaf=1, random_state=0)
    original.fit(ds.X[train], ds.y[train])
    retrained.fit(ds.X[keep], ds.y[keep])
    return {"ds": ds, "forget": ds.ids[forget].tolist(), "fresh": ds.ids[fresh].tolist(),
            "original": original, "retrained": retrained}


def _check(setup, model, original=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return verify_forget(data=setup["ds"], forget=setup["forget"], fresh=setup["fresh"],
                             model=model, original=original, **kw)


def test_not_retrained_still_looks_like_members(setup):
    r = _check(setup, setup["original"], setup["original"])
    assert r.verdict == STILL_MEMBERS and r.still_member_like and not r.indistinguishable
    best = r.new.attacks[r.strongest_attack]
    assert best["auc_ci"][0] > 0.6
    assert r.auc_drop == {"loss": 0.0, "mentr": 0.0}
    assert r.new.accuracy_forget == 1.0  # the forest fits its training records


def test_retrained_without_f_is_indistinguishable(setup):
    r = _check(setup, setup["retrained"], setup["original"])
    assert r.verdict == INDISTINGUISHABLE and r.indistinguishable
    assert not r.still_member_like
    lo, hi = r.new.attacks[r.strongest_attack]["auc_ci"]
    assert lo < 0.5 < hi
    # the original model still remembers F, and the drop says how much forgetting did
    assert r.original.attacks["loss"]["auc_ci"][0] > 0.6
    assert r.auc_drop["loss"] > 0.15
    assert set(r.new.attacks) == {"loss", "mentr"} and r.n_forget == r.n_fresh == 150
    for e in (*r.new.attacks.values(), *r.original.attacks.values()):
        assert e["tpr_at_1pct_fpr"] is not None and len(e["tpr_at_1pct_fpr_ci"]) == 2
    # two attacks: each interval at 97.5%, so picking the strongest keeps the 5% error rate
    assert r.interval_level == pytest.approx(0.975) and r.alpha == 0.05
    assert r.new.summary["settings"]["alpha"] == pytest.approx(0.025)
    assert r.headline().startswith("The 150 records to forget are indistinguishable from "
                                   "fresh non-members (strongest attack ")
    json.dumps(r.to_dict())


def _save_outputs(path, model, ds, shuffle=True):
    order = np.random.default_rng(1).permutation(ds.n_records) if shuffle else \
        np.arange(ds.n_records)
    np.savez(path, ids=ds.ids[order].astype(int), probs=model.predict_proba(ds.X[order]))
    return path


def test_precomputed_outputs_match_the_models(setup, tmp_path):
    ds = setup["ds"]
    new = _save_outputs(tmp_path / "new.npz", setup["retrained"], ds)
    old = _save_outputs(tmp_path / "old.npz", setup["original"], ds)
    from_files = _check(setup, str(new), old)
    from_models = _check(setup, setup["retrained"], setup["original"])
    assert from_files.verdict == from_models.verdict == INDISTINGUISHABLE
    # the same probabilities (the model path renormalises them twice, so tied scores can
    # differ in the last bit and ties split: the AUCs agree to ~1e-3, not exactly)
    for a in ("loss", "mentr"):
        for mine, theirs in ((from_files.new, from_models.new),
                             (from_files.original, from_models.original)):
            assert mine.attacks[a]["auc"] == pytest.approx(theirs.attacks[a]["auc"], abs=2e-3)
    mapping = {"ids": ds.ids, "probs": setup["retrained"].predict_proba(ds.X)}
    assert _check(setup, mapping).new.attacks == from_files.new.attacks


def test_overdone_unlearning_shows_too(setup):
    """An "unlearning" that leaves F far less confident than unseen records is detectable."""
    ds = setup["ds"]
    probs = setup["retrained"].predict_proba(ds.X)
    in_f = np.isin(ds.ids, setup["forget"])
    probs[in_f] = 0.5 * probs[in_f] + 0.5 / ds.n_classes  # F: flattened towards uniform
    r = _check(setup, {"ids": ds.ids, "probs": probs})
    assert r.verdict == LESS_MEMBER_LIKE and not r.indistinguishable
    assert all(e["auc_ci"][1] < 0.5 for e in r.new.attacks.values())


def test_bad_input(setup, tmp_path):
    ds = setup["ds"]
    with pytest.raises(MembershipError, match="both 'forget' and 'fresh'"):
        _check({**setup, "fresh": setup["fresh"] + setup["forget"][:1]}, setup["retrained"])
    with pytest.raises(MembershipError, match=r"not in the data digits .*'x9'"):
        _check({**setup, "forget": ["x9", *setup["forget"]]}, setup["retrained"])
    with pytest.raises(MembershipError, match="more than once"):
        _check({**setup, "forget": setup["forget"] * 2}, setup["retrained"])
    with pytest.raises(ConfigError, match="not a recipe name"):
        _check(setup, "mlp")
    with pytest.raises(ConfigError, match="at least one attack"):
        _check(setup, setup["retrained"], attacks=())
    part = tmp_path / "part.npz"
    np.savez(part, ids=ds.ids[:100], probs=setup["retrained"].predict_proba(ds.X[:100]))
    with pytest.raises(OutputError, match="no outputs for"):
        _check(setup, part)
    bad = tmp_path / "bad.npz"
    np.savez(bad, ids=ds.ids, y=ds.y)
    with pytest.raises(DataError, match="exactly one of 'logits' or 'probs'"):
        _check(setup, bad)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, ids=ds.ids, logits=np.zeros((ds.n_records, 3)))
    with pytest.raises(OutputError, match="3 columns but the data has 10 classes"):
        _check(setup, wrong)


def _ids(path, ids):
    path.write_text("# record IDs\n" + "\n".join(ids) + "\n\n")
    return path


def test_cli(setup, tmp_path):
    app = typer.Typer()
    gov_cli.register(app)
    ds = setup["ds"]
    forget = _ids(tmp_path / "forget.txt", setup["forget"])
    fresh = _ids(tmp_path / "fresh.txt", setup["fresh"])
    assert load_id_list(forget) == setup["forget"]
    new = _save_outputs(tmp_path / "new.npz", setup["retrained"], ds)
    old = _save_outputs(tmp_path / "old.npz", setup["original"], ds)
    base = ["verify-forget", "--data", "digits", "--forget", str(forget), "--fresh", str(fresh)]
    res = runner.invoke(app, [*base, "--outputs", str(new), "--original-outputs", str(old),
                              "--strict"])
    assert res.exit_code == 0, res.output
    assert "are indistinguishable from fresh" in res.stdout and "AUC drop" in res.stdout
    res = runner.invoke(app, [*base, "--outputs", str(old), "--format", "json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["verdict"] == STILL_MEMBERS
    res = runner.invoke(app, [*base, "--outputs", str(old), "--strict"])
    assert res.exit_code == 1 and "still look like members" in res.stdout
    res = runner.invoke(app, [*base, "--outputs", str(tmp_path / "none.npz")])
    assert res.exit_code == 2 and "Outputs file not found" in res.stderr
    res = runner.invoke(app, ["verify-forget", "--data", "digits", "--forget",
                              str(tmp_path / "no.txt"), "--fresh", str(fresh),
                              "--outputs", str(new)])
    assert res.exit_code == 2 and "ID list not found" in res.stderr
