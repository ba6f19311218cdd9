"""The command line: files written, and one clear line for each kind of bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from miaudit.cli import app

runner = CliRunner()
FAST = ["-p", "epochs=5", "-p", "hidden=32"]


def _run(*args):
    return runner.invoke(app, ["run", *args])


def test_run_writes_summary_and_scores(tmp_path):
    out = tmp_path / "run"
    res = _run("--data", "wine", *FAST, "--attacks", "loss,mentr", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "loss" in res.output and str(out) in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["attacks"]) == {"loss", "mentr"}
    scores = pd.read_parquet(out / "scores.parquet")
    assert {"exposure", "target", "record_id", "fingerprint", "is_member", "label", "loss",
            "mentr"} == set(scores.columns)
    signals = np.load(out / "signals.npz")
    assert signals["membership"].shape == (1, len(scores))
    assert signals["logits"].shape == (1, len(scores), 3)
    assert (signals["membership"][0] == scores["is_member"].to_numpy()).all()
    # the terminal ends with what a reader takes away: the verdict, then where the files are
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert lines[-2].startswith("run folder") and lines[-1] == f"report {out / 'report.html'}"
    verdict = next(i for i, line in enumerate(lines) if line.startswith("verdict: "))
    shown = " ".join(" ".join(lines[verdict:-2]).split())  # wrapped at the console's width
    assert shown == f"verdict: {summary['verdict']['level']} {summary['verdict']['sentence']}"


def test_json_format_prints_the_summary(tmp_path):
    res = _run("--data", "wine", *FAST, "--attacks", "loss", "--out", str(tmp_path / "r"),
               "--format", "json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["attacks"]["loss"]["auc"] > 0


def test_existing_folder_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = _run("--data", "wine", *FAST, "--out", str(out))
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert (out / "keep.txt").read_text() == "mine"


def _npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _bad_cases(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = rng.integers(0, 3, 40)
    X_nan = X.copy()
    X_nan[7, 1] = np.nan
    csv = tmp_path / "t.csv"
    pd.DataFrame({"age": [1, 2, 3, 4], "income": ["a", "b", "a", "b"]}).to_csv(csv, index=False)
    member = np.arange(40) % 2 == 0
    logits = rng.normal(size=(40, 3))
    nan_logits = logits.copy()
    nan_logits[3, 0] = np.inf
    return {
        "missing file": (["--data", str(tmp_path / "nope.npz")], "not found"),
        "unknown name": (["--data", "mnist"], "mnist"),
        "label column absent": (["--data", str(csv), "--label-column", "incme"], "income"),
        "one class": (["--data", str(_npz(tmp_path, "one.npz", X=X, y=np.zeros(40, int)))],
                      "class"),
        "NaN features": (["--data", str(_npz(tmp_path, "nan.npz", X=X_nan, y=y))], "NaN"),
        "NaN outputs": (["--outputs", str(_npz(tmp_path, "o1.npz", logits=nan_logits, y=y,
                                                is_member=member))], "NaN or infinite"),
        "wrong shape": (["--outputs", str(_npz(tmp_path, "o2.npz", logits=logits[:30], y=y,
                                                is_member=member))], "30 rows of outputs"),
        "label outside classes": (["--outputs", str(_npz(tmp_path, "o3.npz", logits=logits,
                                                          y=np.where(y == 2, 5, y),
                                                          is_member=member))],
                                  "outside the model's classes"),
        "shared records": (["--outputs", str(_npz(tmp_path, "o4.npz", logits=logits, y=y,
                                                   is_member=member,
                                                   fingerprints=np.repeat(["a", "b"], 20)))],
                           "both members and non-members"),
        "exposure too coarse": (["--data", "wine", "--exposure", "label", "--attacks", "loss"],
                                "does not release"),
        "bad exposure": (["--data", "wine", "--exposure", "top-k:0"], "k must be >= 1"),
        "unknown attack": (["--data", "wine", "--attacks", "lossy"], "Unknown attack"),
        "bad recipe param": (["--data", "wine", "-p", "activation=sigmoid"],
                             "activation must be one of"),
    }




@pytest.mark.parametrize(
    "case",
    ["missing file", "unknown name", "label column absent", "one class", "NaN features",
     "NaN outputs", "wrong shape", "label outside classes", "shared records",
     "exposure too coarse", "bad exposure", "unknown attack", "bad recipe param"],
)
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, case):
    args, words = _bad_cases(tmp_path)[case]
    out = tmp_path / "run"
    fast = [] if args[0] == "--outputs" else FAST  # nothing is trained from outputs
    res = _run(*args, *fast, "--out", str(out), "--quiet")
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error:") and words in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]


def test_debug_variable_shows_the_traceback(tmp_path, monkeypatch):
    from miaudit.errors import DataError

    monkeypatch.setenv("MIAUDIT_DEBUG", "1")
    res = _run("--data", "mnist", "--out", str(tmp_path / "r"))
    assert isinstance(res.exception, DataError)


def test_listings():
    for cmd, word in (("attacks", "class-mentr"), ("recipes", "mlp"), ("datasets", "digits")):
        res = runner.invoke(app, [cmd])
        assert res.exit_code == 0 and word in res.output
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and "miaudit" in res.output


def test_location30_command_from_the_issue(tmp_path, shared_file):
    from sklearn.metrics import roc_auc_score

    path = shared_file("location30.npz")
    out = tmp_path / "r"
    res = _run("--data", str(path), "--model", "mlp", "--attacks",
               "loss,mentr,confidence,entropy,correctness", "--out", str(out))
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    scores = pd.read_parquet(out / "scores.parquet")
    assert summary["attacks"]["loss"]["auc"] > 0.75
    for name in ("loss", "mentr", "confidence", "entropy", "correctness"):
        assert summary["attacks"][name]["auc"] == pytest.approx(
            roc_auc_score(scores["is_member"], scores[name]))


def test_id_column_is_used_for_ids_and_not_as_a_feature(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({"uid": [f"u{i:03d}" for i in range(n)], "x": rng.normal(size=n),
                       "label": rng.integers(0, 2, n)})
    df.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "r"
    res = _run("--data", str(tmp_path / "t.csv"), "--label-column", "label", "--id-column",
               "uid", *FAST, "--out", str(out))
    assert res.exit_code == 0, res.output
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores["record_id"].str.startswith("u").all()
    assert json.loads((out / "summary.json").read_text())["data"]["n_features"] == 1


def test_overwrite_refuses_folders_that_are_not_runs(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "important.txt").write_text("keep")
    res = _run("--data", "wine", *FAST, "--out", str(out), "--overwrite")
    assert res.exit_code == 1 and "not a miaudit run" in " ".join(res.output.split())
    assert (out / "important.txt").exists()
    # a previous run's folder is replaced
    run = tmp_path / "run"
    assert _run("--data", "wine", *FAST, "--out", str(run)).exit_code == 0
    assert _run("--data", "wine", *FAST, "--out", str(run), "--overwrite").exit_code == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--seed", "-1"], "seed must be >= 0"), (["--device", "cuda"], "not available"),
     (["--device", "bogus"], "Unknown device"), (["-p", "lr=inf"], "finite number"),
     (["--alpha", "2"], "alpha must lie in (0, 1)")],
)
def test_bad_settings_fail_before_training(tmp_path, args, words):
    res = _run("--data", "wine", *FAST, *args, "--out", str(tmp_path / "r"))
    assert res.exit_code == 1 and words in res.output, res.output
    assert not (tmp_path / "r").exists()


def test_out_below_a_file_is_refused_early(tmp_path):
    (tmp_path / "f").write_text("x")
    res = _run("--data", "wine", *FAST, "--out", str(tmp_path / "f" / "run"))
    assert res.exit_code == 1 and "is a file" in res.output


def test_run_with_a_spec_file(tmp_path):
    spec = tmp_path / "audit.toml"
    spec.write_text('[data]\nsource = "wine"\n[target]\nrecipe = "logistic"\n'
                    'params = { epochs = 3 }\n[audit]\nexposure = "probabilities"\n')
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--spec", str(spec), "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["spec"]["data"]["source"] == "wine" and summary["exposure"] == "probabilities"
    res = runner.invoke(app, ["run", "--spec", str(spec), "--seed", "3"])
    assert res.exit_code == 1 and "remove --seed" in res.output


def test_runs_are_recorded_and_found_by_id(tmp_path):
    url = f"sqlite:///{tmp_path}/reg.db"
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--data", "wine", "--model", "logistic", "-p", "epochs=3",
                              "--out", str(out), "--registry", url, "--no-cache"])
    assert res.exit_code == 0, res.output
    match = re.search(r"run ID (\S+)", res.output)
    assert match, res.output
    run_id = match.group(1)
    shown = runner.invoke(app, ["show", run_id, "--registry", url, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["run_dir"] == str(out.resolve())
    # commands that take a RUN resolve the ID through the (default) registry
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nmetric = "auc"\nmax = 0.99\n')
    gated = runner.invoke(app, ["gate", run_id, "--policy", str(policy)],
                          env={"MIAUDIT_REGISTRY": url})
    assert gated.exit_code == 0, gated.output
    res = runner.invoke(app, ["run", "--data", "wine", "--model", "logistic", "-p",
                              "epochs=3", "--out", str(tmp_path / "r2"), "--no-registry"])
    assert res.exit_code == 0 and "run ID" not in res.output


def test_run_help_is_grouped_and_fits_80_columns():
    """'miaudit run --help' reads at 80 columns: options in panels by role, flags shown
    without a type."""
    res = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    panels = [line.strip("╭─ ").split(" ")[0] for line in lines if line.startswith("╭─")]
    assert panels == ["Options", "Data", "Target", "Attacks", "References", "Metrics",
                      "Compute", "Output"]
    assert "<bool>" not in res.output
    overwrite = next(line for line in lines if "--overwrite" in line)
    assert overwrite.split()[:3] == ["│", "--overwrite", "Replace"]


def test_commands_are_grouped_and_old_names_still_work():
    """'miaudit --help' lists the everyday commands and the groups; each grouped command runs
    under its group and under its old top-level name (hidden)."""
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "100"})
    listed = {line.split()[1] for line in res.output.splitlines()
              if line.startswith("│ ") and len(line.split()) > 2 and line.split()[1][0].isalpha()}
    assert {"run", "report", "gate", "runs", "show", "registry", "spec", "dp", "lm",
            "http"} <= listed
    assert not {"run-spec", "spec-check", "serve-model", "audit-one-run", "trace"} & listed
    for grouped, old in ((["spec", "check"], "spec-check"), (["dp", "one-run"], "audit-one-run"),
                         (["registry", "trace"], "trace"), (["http", "detect"], "detect-exposure"),
                         (["lm", "run"], "run-lm")):
        new_help = runner.invoke(app, [*grouped, "--help"])
        old_help = runner.invoke(app, [old, "--help"])
        assert new_help.exit_code == old_help.exit_code == 0, new_help.output
        assert new_help.output.split("Usage:")[1].split("\n", 2)[2] == \
            old_help.output.split("Usage:")[1].split("\n", 2)[2]


def test_the_api_and_the_command_line_share_the_default_cache(tmp_path, monkeypatch):
    import miaudit

    cache = tmp_path / "cache"
    monkeypatch.setenv("MIAUDIT_CACHE", str(cache))
    miaudit.audit(data="wine", model_params={"epochs": 5, "hidden": 32}, attacks=["loss"])
    entries = sorted(p.name for p in cache.rglob("meta.json"))
    assert len(entries) == 1
    res = _run("--data", "wine", *FAST, "--attacks", "loss", "--out", str(tmp_path / "r"),
               "--no-registry")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in cache.rglob("meta.json")) == entries  # reused, not retrained
    miaudit.audit(data="wine", model_params={"epochs": 4}, attacks=["loss"], cache=False)
    assert len(list(cache.rglob("meta.json"))) == 1


@pytest.mark.parametrize(("args", "words"), [
    (["--reference-mode", "both"], "'both' is not one of 'online', 'offline'"),
    (["--executor", "spark"], "'spark' is not one of"),
    (["--augment", "maybe"], "'maybe' is not one of 'auto', 'on', 'off'"),
])
def test_choices_are_checked_and_listed_by_the_command_line(tmp_path, args, words):
    res = _run("--data", "wine", *args, "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and words in " ".join(res.output.replace("│", "").split())


def test_augment_off_and_the_older_no_augment_flag_agree():
    from miaudit.cli.options import augment_setting

    assert augment_setting("auto") is None and augment_setting("on") is True
    assert augment_setting("off") is False and augment_setting("on", no_augment=True) is False
