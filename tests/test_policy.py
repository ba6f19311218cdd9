"""The policy gate: a leaky model fails, a regularised one passes, bad policies say where."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import miaudit
from miaudit.cli import common
from miaudit.cli import governance as gov_cli
from miaudit.errors import ConfigError, DataError
from miaudit.governance.policy import (
    CI_WORKFLOW,
    EXAMPLE_POLICY,
    UNMEASURABLE,
    evaluate_policy,
    gate,
    load_policy,
    parse_policy,
)

runner = CliRunner()

# Thresholds, chosen far from both models (600 records with random labels, 300 members and
# 300 non-members, attacks loss and mentr):
# - the leaky MLP memorises the random labels (train accuracy 1.0, test ~0.27): AUC ~0.99,
#   TPR at 1% FPR 0.1-0.95 (upper bound >= 0.2), epsilon bound ~3, advantage ~0.95, and
#   most members have risk >= 0.99;
# - the regularised logistic regression (3 epochs, weight decay 0.1) learns nothing: AUC
#   0.5 +- 0.04 (upper end <= ~0.6), TPR at 1% FPR ~1-4% (upper end <= ~0.07), epsilon
#   bound 0, advantage <= ~0.12, and by chance ~1% of members (~3) have risk >= 0.99.
POLICY = """\
name = "test gate"

[[rule]]
name = "AUC"
metric = "auc"
use = "upper"
max = 0.7

[[rule]]
metric = "tpr_at_fpr"
fpr = 0.01
use = "upper"
max = 0.15

[[rule]]
metric = "epsilon_lower_bound"
max = 1.0

[[rule]]
metric = "advantage"
attacks = ["loss"]
max = 0.3

[[rule]]
metric = "record_risk"
max = 0.99
max_records = 20
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders of a leaky and of a regularised model on random-label data."""
    root = tmp_path_factory.mktemp("gate")
    rng = np.random.default_rng(0)
    data = root / "noise.npz"
    np.savez(data, X=rng.normal(size=(600, 20)).astype(np.float32),
             y=rng.integers(0, 4, 600))
    common = {"data": str(data), "attacks": ["loss", "mentr"], "seed": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        leaky = miaudit.audit(model="mlp", model_params={"epochs": 60, "hidden": "128",
                                                         "lr": 0.01}, **common)
        safe = miaudit.audit(model="logistic", model_params={"epochs": 3,
                                                             "weight_decay": 0.1}, **common)
    policy = root / "policy.toml"
    policy.write_text(POLICY)
    return {"leaky": leaky.save(root / "leaky"), "safe": safe.save(root / "safe"),
            "policy": policy, "root": root}


def test_gate_fails_a_leaky_model(runs):
    result = gate(runs["leaky"], runs["policy"])
    assert not result.passed
    assert result.n_failed == len(result.results)  # every rule fails, by a wide margin
    auc = [r for r in result.results if r.index == 1]
    assert {r.attack for r in auc} == {"loss", "mentr"}
    assert all(r.value > 0.9 for r in auc)


def test_gate_passes_a_regularised_model(runs):
    result = gate(runs["safe"], runs["policy"])
    assert result.passed, [r.to_dict() for r in result.results if not r.passed]
    # one check per attack for figure rules, one per rule for record_risk and for a rule
    # naming one attack
    assert [r.index for r in result.results] == [1, 1, 2, 2, 3, 3, 4, 5]
    risk = result.results[-1]
    assert risk.attack in ("loss", "mentr") and "20 allowed" in risk.detail
    assert all(r.reason is None for r in result.results)


def test_values_come_from_the_summary(runs):
    summary = json.loads((runs["leaky"] / "summary.json").read_text())
    policy = parse_policy(POLICY.split("[[rule]]\nmetric = \"record_risk\"")[0])
    results = evaluate_policy(policy, summary)  # no record_risk rule: no scores needed
    assert len(results) == 7
    loss = summary["attacks"]["loss"]
    assert results[0].value == loss["auc_ci"][1]
    assert results[2].value == loss["tpr_at_fpr_ci"]["0.01"][1]
    assert results[4].value == loss["epsilon_lower_bound"]
    assert results[0].limit == 0.7 and results[0].figure == "AUC, upper end of 95% interval"


def test_unmeasurable_figure_fails_unless_the_rule_says_pass(runs):
    text = '[[rule]]\nmetric = "tpr_at_fpr"\nfpr = 0.001\nmax = 0.5\n'
    summary = json.loads((runs["safe"] / "summary.json").read_text())
    failed = evaluate_policy(parse_policy(text), summary)
    assert [r.passed for r in failed] == [False, False]
    assert all(r.value is None for r in failed)
    # about 300 non-members (drawn per record) cannot measure a 0.1% FPR: the run's own
    # reason is given
    assert failed[0].reason.startswith(UNMEASURABLE)
    assert re.search(r"\d+ non-members < 1000", failed[0].reason)
    passed = evaluate_policy(parse_policy(text + 'when_unmeasurable = "pass"\n'), summary)
    assert [r.passed for r in passed] == [True, True]
    assert passed[0].reason == failed[0].reason


def _entry(**changes):
    e = {"auc": 0.55, "auc_ci": [0.5, 0.6], "tpr_at_fpr": {"0.01": 0.02},
         "tpr_at_fpr_ci": {"0.01": [0.01, 0.03]}, "advantage": 0.1,
         "epsilon_lower_bound": None,
         "undefined": {"epsilon_lower_bound": "not measurable: too few records"}}
    return {**e, **changes}


def test_null_epsilon_and_missing_interval():
    summary = {"attacks": {"a": _entry(), "b": _entry(tpr_at_fpr_ci={"0.01": None})}}
    rules = ('[[rule]]\nmetric = "epsilon_lower_bound"\nmax = 1\n'
             '[[rule]]\nmetric = "tpr_at_fpr"\nfpr = 0.01\nuse = "upper"\nmax = 0.5\n'
             '[[rule]]\nmetric = "tpr_at_fpr"\nfpr = 0.01\nuse = "lower"\nmax = 0.005\n')
    r = evaluate_policy(parse_policy(rules), summary)
    assert [(x.attack, x.passed) for x in r] == [("a", False), ("b", False), ("a", True),
                                                ("b", False), ("a", False), ("b", False)]
    assert "too few records" in r[0].reason
    assert r[3].value is None and r[3].reason.startswith(UNMEASURABLE)
    assert r[4].value == 0.01


def test_rules_naming_what_the_run_lacks_are_errors(runs):
    summary = json.loads((runs["safe"] / "summary.json").read_text())
    with pytest.raises(ConfigError, match=r"Rule 1 .*'lira-online'.*it has: loss, mentr"):
        evaluate_policy(parse_policy('[[rule]]\nmetric = "auc"\nattacks = ["lira-online"]\n'
                                     'max = 0.6\n'), summary)
    with pytest.raises(ConfigError, match=r"FPR 0.05, but the run reports FPR 0.01, 0.001"):
        evaluate_policy(parse_policy('[[rule]]\nmetric = "tpr_at_fpr"\nfpr = 0.05\n'
                                     'max = 0.1\n'), summary)
    with pytest.raises(DataError, match=r"scores\.parquet"):
        evaluate_policy(parse_policy('[[rule]]\nmetric = "record_risk"\nmax = 0.9\n'),
                        summary, None)


@pytest.mark.parametrize("text, expected", [
    ('name = "x"\n\n[[rule]]\nmetric = "auc"\nmax = 0.6\n\n[[rule]]\nname = "second"\n'
     'metric = "aucc"\nmax = 0.5\n',
     r"p\.toml, line 9: rule 2 \('second'\), field 'metric': Input should be 'auc'.*"
     r"\(got 'aucc'\)"),
    ('[[rule]]\nmetric = "auc"\nmaxx = 0.6\n',
     r"line 3: rule 1, field 'maxx': unknown field \(did you mean 'max'\?.*1 more problem"),
    ('[[rule]]\nmetric = "auc"\n', r"line 1: rule 1, field 'max': Field required"),
    ('[[rule]]\nmetric = "tpr_at_fpr"\nmax = 0.1\n',
     r"line 1: rule 1, field 'fpr': required with metric 'tpr_at_fpr'"),
    ('[[rule]]\nmetric = "auc"\nfpr = 0.01\nmax = 0.1\n',
     r"line 3: rule 1, field 'fpr': applies to metric 'tpr_at_fpr' only"),
    ('[[rule]]\nmetric = "epsilon_lower_bound"\nuse = "upper"\nmax = 1\n',
     r"line 3: rule 1, field 'use': 'upper' needs an interval"),
    ('[[rule]]\nmetric = "auc"\nmax = 60\n', r"line 3: .*write 0.6 for 60%"),
    ('[[rule]]\nmetric = "auc"\nmax = "0.5"\n', r"line 3: .*valid number \(got '0.5'\)"),
    ('[[rule]]\nmetric = "auc"\nmax = 0.5\nattacks = 3\n', r"line 4: .*'attacks': must be"),
    ('[[rule]]\nmetric = "auc"\nmax = 0.5\nmax_records = 2\n',
     r"line 4: .*'max_records': applies to metric 'record_risk' only"),
    ('[[rule]]\nmetric = "auc"\nmax = 0.5\nwhen_unmeasurable = "skip"\n',
     r"line 4: .*'fail' or 'pass' \(got 'skip'\)"),
    ('nme = "x"\n[[rule]]\nmetric = "auc"\nmax = 0.5\n',
     r"line 1: field 'nme': unknown field \(did you mean 'name'"),
    ('name = "x"\n', r"p\.toml: the policy has no rules"),
    ('[[rule]]\nmetric = auc\n', r"p\.toml: not valid TOML: .*line 2"),
])
def test_bad_policies_name_file_line_rule_and_field(text, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        parse_policy(text, source="p.toml")
    assert "\n" not in str(info.value)


def test_example_policy_and_ci_workflow():
    policy = load_policy(EXAMPLE_POLICY)
    assert {r.metric for r in policy.rules} == {"auc", "tpr_at_fpr", "epsilon_lower_bound",
                                                "record_risk"}
    assert "miaudit gate run --policy policy.toml" in CI_WORKFLOW
    yaml = pytest.importorskip("yaml")
    steps = yaml.safe_load(CI_WORKFLOW)["jobs"]["membership-inference"]["steps"]
    audit = next(s["run"] for s in steps if s.get("name") == "Audit the model")
    assert audit.startswith("miaudit run ") and "--out run" in audit
    from miaudit.cli import app

    help_text = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    for option in re.findall(r"--[a-z-]+", audit):
        assert option in help_text, option


def _app():
    app = typer.Typer()
    gov_cli.register(app)
    return app


def test_cli_exit_codes(runs, tmp_path):
    app = _app()
    res = runner.invoke(app, ["gate", str(runs["safe"]), "--policy", str(runs["policy"])])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.stdout and "FAIL" not in res.stdout and "gate passed" in res.stdout
    res = runner.invoke(app, ["gate", str(runs["leaky"]), "--policy", str(runs["policy"])])
    assert res.exit_code == 1 and "FAIL" in res.stdout and "gate failed" in res.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nmetric = "auc"\nmax = 0.6\n\n[[rule]]\nmetric = "auk"\nmax = 1\n')
    res = runner.invoke(app, ["gate", str(runs["safe"]), "--policy", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}, line 6: rule 2, field 'metric'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(app, ["gate", str(tmp_path / "nope"), "--policy", str(runs["policy"])])
    assert res.exit_code == 2 and "Run folder not found" in res.stderr
    res = runner.invoke(app, ["gate", str(runs["safe"])])  # --policy missing: usage error
    assert res.exit_code == 2


def test_cli_json_and_run_resolver(runs, monkeypatch):
    app = _app()
    monkeypatch.setattr(common, "run_lookup", lambda run_id: runs[run_id])
    res = runner.invoke(app, ["gate", "leaky", "--policy", str(runs["policy"]),
                              "--format", "json"])
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["passed"] is False and out["n_checks"] == 8 == out["n_failed"]
    assert out["run"] == str(runs["leaky"])
    assert {"rule", "name", "attack", "value", "limit", "passed", "reason"} <= set(
        out["results"][0])
