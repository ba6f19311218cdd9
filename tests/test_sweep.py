"""Privacy-utility sweeps over a recipe parameter, and the sweep / audit-one-run commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from miaudit.audits.sweep import SEARCH_NOTE, SweepResult, parse_sweep, sweep, sweep_plot
from miaudit.errors import ConfigError
from miaudit.results.folder import RUN_FILES

pytest.importorskip("torch")

FAST = {"data": "wine", "model": "mlp", "model_params": {"hidden": (16,), "epochs": 5},
        "attacks": ["loss", "entropy"]}
ROW_KEYS = {"value", "attack", "test_accuracy", "train_accuracy", "auc", "auc_ci",
            "tpr_at_fpr", "tpr_at_fpr_ci", "epsilon_lower_bound", "dp_epsilon_accountant"}


@pytest.fixture(scope="module")
def wd_sweep() -> SweepResult:
    return sweep("weight_decay", [0, "1e-3", 0.1], **FAST)


def test_sweep_rows_hold_every_figure(wd_sweep):
    rows = wd_sweep.rows
    assert [r["value"] for r in rows] == [0.0, 0.001, 0.1]
    for r, summary in zip(rows, wd_sweep.summaries, strict=True):
        assert set(r) == ROW_KEYS
        assert summary["target"]["recipe"]["weight_decay"] == r["value"]
        e = summary["attacks"][r["attack"]]
        assert r["auc"] == e["auc"] and r["auc_ci"] == e["auc_ci"]
        assert r["tpr_at_fpr"] == e["tpr_at_fpr"] and "0.001" in r["tpr_at_fpr"]
        assert r["epsilon_lower_bound"] == e["epsilon_lower_bound"] is not None
        assert r["dp_epsilon_accountant"] is None
        assert r["test_accuracy"] == summary["target"]["test_accuracy"]
    section = wd_sweep.section()
    assert section["parameter"] == "weight_decay" and section["rows"] is rows
    assert "search_note" not in section  # no DP-SGD row, no epsilon to qualify
    json.dumps(section, allow_nan=False)
    assert list(wd_sweep.table().columns)[:2] == ["weight_decay", "attack"]


def test_sweep_plot_is_a_png(wd_sweep):
    png = wd_sweep.plot_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # rows with nothing measurable still plot (blank panels)
    blank = [{**r, "auc": None, "auc_ci": None, "tpr_at_fpr": {"0.001": None}}
             for r in wd_sweep.rows]
    assert sweep_plot(blank, parameter="x")[:4] == b"\x89PNG"


def test_sweep_run_folder_and_report(wd_sweep, tmp_path):
    result = wd_sweep.to_result()
    assert result.summary()["sweep"]["rows"] == wd_sweep.rows
    assert "sweep" not in wd_sweep.last.summary()  # the audit's own summary is untouched
    saved = result.save(tmp_path / "run")
    summary = json.loads((saved / "summary.json").read_text())
    assert [r["value"] for r in summary["sweep"]["rows"]] == [0.0, 0.001, 0.1]
    assert 'id="sweep-table"' in (saved / "report.html").read_text()
    assert (saved / "sweep.png").exists() == ("sweep.png" in RUN_FILES)


def test_a_fixed_attack_fills_every_row():
    res = sweep("epochs", [1, 3], attack="entropy", **{**FAST, "model_params": ["hidden=16"]})
    assert [r["attack"] for r in res.rows] == ["entropy", "entropy"]
    assert [r["value"] for r in res.rows] == [1, 3]


def test_dp_epsilon_sweep_reports_the_accountant():
    pytest.importorskip("opacus")
    res = sweep("dp_epsilon", ["2", "inf"], **{**FAST, "attacks": ["loss"]})
    assert [r["value"] for r in res.rows] == [2.0, "inf"]
    assert res.rows[0]["dp_epsilon_accountant"] == pytest.approx(2.0, abs=0.02)
    assert res.rows[1]["dp_epsilon_accountant"] is None
    json.dumps(res.section(), allow_nan=False)
    from miaudit.report.html import render_html_from

    page = render_html_from(res.to_result().summary(), res.last.scores)
    assert 'id="sweep-table"' in page and 'data-value="inf"' in page
    # picking a setting is a search the accountant's epsilon does not include: said
    assert res.section()["search_note"] == SEARCH_NOTE
    assert 'id="sweep-note"' in page and "does not include it" in page
    from miaudit.report.markdown import render_markdown_from

    assert "does not include it" in render_markdown_from(res.to_result().summary(),
                                                         res.last.scores)


@pytest.mark.parametrize(("args", "match"), [
    (("colour", [1]), "Unknown model parameter 'colour'"),
    (("dp_epsilon", ["4", "many"]), "wrong type"),
    (("dropout", [0.1, 2.0]), "dropout must lie"),
    (("epochs", []), "no values"),
    (("hidden", [(8,)]), "both swept and fixed"),
])
def test_bad_sweeps_are_refused_before_training(args, match):
    with pytest.raises(ConfigError, match=match):
        sweep(*args, **{**FAST, "model_params": {"hidden": (16,)}})


def test_a_sweep_needs_a_recipe():
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(ConfigError, match="from a recipe"):
        sweep("epochs", [1], data="wine", model=LogisticRegression())


def test_parse_sweep():
    assert parse_sweep("weight-decay=0,1e-4") == ("weight_decay", ["0", "1e-4"])
    assert parse_sweep("hidden=64,32;128") == ("hidden", ["64,32", "128"])
    with pytest.raises(ConfigError, match="name=value1,value2"):
        parse_sweep("dp_epsilon")


# ---------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def app():
    from miaudit.cli.sweep import register

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    register(app)
    return app


def test_sweep_command_writes_a_run_folder(app, tmp_path):
    out = tmp_path / "sweep"
    res = CliRunner().invoke(app, [
        "sweep", "--data", "wine", "--param", "weight_decay=0,0.1", "--set", "hidden=16",
        "-s", "epochs=3", "--attacks", "loss", "--out", str(out), "--no-cache", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "Sweep over weight_decay" in res.output and "0.1" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert [r["value"] for r in summary["sweep"]["rows"]] == [0.0, 0.1]
    again = CliRunner().invoke(app, [
        "sweep", "--data", "wine", "--param", "weight_decay=0,0.1", "--set", "hidden=16",
        "-s", "epochs=3", "--attacks", "loss", "--out", str(out), "--no-cache", "--quiet"])
    assert again.exit_code == 1 and "already exists" in again.output


def test_sweep_command_json_and_errors(app, tmp_path):
    res = CliRunner().invoke(app, [
        "sweep", "--data", "wine", "--param", "epochs=1,2", "--set", "hidden=8",
        "--attacks", "loss", "--out", str(tmp_path / "j"), "--no-cache", "--format", "json"])
    assert res.exit_code == 0, res.output
    section = json.loads(res.stdout)
    assert section["parameter"] == "epochs" and len(section["rows"]) == 2
    bad = CliRunner().invoke(app, ["sweep", "--data", "wine", "--param", "colour=1"])
    assert bad.exit_code == 1 and "Unknown model parameter 'colour'" in bad.output


def test_audit_one_run_command(app):
    pytest.importorskip("opacus")
    res = CliRunner().invoke(app, ["audit-one-run", "--data", "digits", "--canaries", "400",
                                   "-p", "hidden=128", "-p", "epochs=20", "--format", "json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["one_run"]["epsilon"] > 1 and summary["dp_epsilon_accountant"] is None
    res = CliRunner().invoke(app, ["audit-one-run", "--data", "wine", "--canaries", "60",
                                   "-p", "hidden=8", "-p", "epochs=2", "-p", "dp_epsilon=1",
                                   "--k-pos", "5,10", "--k-neg", "5"])
    assert res.exit_code == 0, res.output
    assert "eps accountant" in res.output and "RDP" in res.output
    bad = CliRunner().invoke(app, ["audit-one-run", "--data", "wine", "--k-pos", "a"])
    assert bad.exit_code == 1 and "comma-separated" in bad.output
    assert np.isfinite(summary["one_run_pure_dp"]["epsilon"])
