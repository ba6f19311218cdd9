"""Command-line edge cases: text taken as Rich markup, run IDs whose folder was written
over, relative paths, spec checks that agree with the audit, the model-card file and
options that do not apply."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from miaudit.cli import app

runner = CliRunner()
FAST = ["-p", "epochs=3"]


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _run_id(output: str) -> str:
    line = next(ln for ln in output.splitlines() if ln.startswith("run ID"))
    return line.split()[2]


def test_brackets_in_paths_and_values_are_printed_as_they_are(tmp_path):
    res = _invoke("run", "--data", tmp_path / "nope[/].csv")
    assert res.exit_code == 1
    assert "nope[/].csv" in res.output and "Traceback" not in res.output
    table = tmp_path / "t[v2].csv"
    table.write_text("weight[kg],label\n" + "".join(f"{i % 7},{i % 2}\n" for i in range(40)))
    res = _invoke("run", "--data", table, "--label-column", "Label")
    assert res.exit_code == 1 and "weight[kg]" in res.output, res.output


def test_a_run_id_whose_folder_was_written_over_is_refused(tmp_path):
    out = tmp_path / "r"
    first = _invoke("run", "--data", "wine", "--model", "logistic", *FAST, "--attacks",
                    "loss", "--out", out)
    assert first.exit_code == 0, first.output
    run_id = _run_id(first.output)
    assert _invoke("model-card", run_id).exit_code == 0
    second = _invoke("run", "--data", "wine", "--model", "mlp", *FAST, "--attacks", "loss",
                     "--out", out, "--overwrite")
    assert second.exit_code == 0, second.output
    res = _invoke("model-card", run_id)
    assert res.exit_code == 1 and "now holds another run" in res.output, res.output
    assert _invoke("model-card", _run_id(second.output)).exit_code == 0


def _outputs_file(folder):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    member = np.arange(60) % 2 == 0
    logits = rng.normal(size=(60, 3)) + 2.0 * member[:, None] * np.eye(3)[y]
    np.savez(folder / "o.npz", logits=logits, y=y, is_member=member)


def test_outputs_given_by_a_relative_path_can_be_rerun(tmp_path, monkeypatch):
    _outputs_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = _invoke("run", "--outputs", "o.npz", "--out", "first", "--no-registry")
    assert res.exit_code == 0, res.output
    res = _invoke("rerun", "first", "--out", "again")
    assert res.exit_code == 0, res.output
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("first", "again"))
    assert a["attacks"]["loss"]["auc"] == b["attacks"]["loss"]["auc"]


def test_a_model_or_its_parameters_do_not_apply_to_outputs(tmp_path):
    _outputs_file(tmp_path)
    for extra in (["--model", "logistic"], ["-p", "epochs=3"]):
        res = _invoke("run", "--outputs", tmp_path / "o.npz", *extra, "--out", tmp_path / "x")
        assert res.exit_code == 1 and "precomputed outputs" in res.output, res.output
        assert not (tmp_path / "x").exists()


def test_run_spec_uses_the_model_cache(tmp_path):
    spec = tmp_path / "a.toml"
    spec.write_text('[data]\nsource = "wine"\n[target]\nrecipe = "logistic"\n'
                    'params = { epochs = 3 }\n[audit]\nreferences = 2\nattacks = ["lira-online"]'
                    '\nexposure = ["logits", "loss"]\n')
    cache = tmp_path / "cache"
    res = _invoke("run", "--spec", spec, "--out", tmp_path / "r1", "--cache-dir", cache)
    assert res.exit_code == 0, res.output
    assert any(cache.rglob("weights.safetensors"))
    assert "strongest attack" in res.output  # the exposure comparison is printed too
    again = _invoke("run", "--spec", spec, "--out", tmp_path / "r2", "--cache-dir", cache,
                    "--format", "json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["target"]["training"]["trained"] == 0


@pytest.mark.parametrize(("audit", "data", "where"), [
    ('exposure = ""', "", "audit.exposure"),
    ('exposure = ["logits", "logits"]', "", "listed twice"),
    ('exposure = ["logits,label", "loss"]', "", "audit.exposure"),
    ("targets = 3", "", "audit.targets"),
    ("references = 2\ntargets = 9", "", "audit.targets"),
    ("", "n_records = 2", "data.n_records"),
    ("", 'label_column = "y"', "data.label_column"),
])
def test_spec_check_refuses_what_the_audit_would_refuse(tmp_path, audit, data, where):
    spec = tmp_path / "s.toml"
    spec.write_text(f'[data]\nsource = "wine"\n{data}\n[audit]\n{audit}\n')
    res = _invoke("spec-check", spec)
    assert res.exit_code == 1, res.output
    assert where in res.output and "s.toml:" in res.output, res.output


def test_spec_check_refuses_an_unknown_device(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('[data]\nsource = "wine"\n[training]\ndevice = "gpu"\n')
    res = _invoke("spec-check", spec)
    assert res.exit_code == 1 and "training.device" in res.output, res.output


def test_model_card_out_is_a_file_written_atomically(tmp_path):
    out = tmp_path / "r"
    assert _invoke("run", "--data", "wine", "--model", "logistic", *FAST, "--attacks", "loss",
                   "--out", out, "--no-registry").exit_code == 0
    folder = tmp_path / "cards"
    folder.mkdir()
    res = _invoke("model-card", out, "--out", folder)
    assert res.exit_code == 1 and "is a folder" in res.output, res.output
    before = (out / "summary.json").read_bytes()
    res = _invoke("model-card", out, "--out", out / "summary.json")
    assert res.exit_code == 1 and "Refusing" in res.output, res.output
    assert (out / "summary.json").read_bytes() == before
    res = _invoke("model-card", out, "--out", folder / "card.md")
    assert res.exit_code == 0, res.output
    assert (folder / "card.md").read_text().startswith("#")
    import os  # the usual permissions, not a temporary file's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert (folder / "card.md").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in folder.iterdir()] == ["card.md"]  # no temporary file left


def test_one_run_audit_bad_lists_and_all_canaries_included(tmp_path):
    res = _invoke("audit-one-run", "--data", "wine", "--model", "logistic", *FAST,
                  "--k-pos", ",")
    assert res.exit_code == 1 and "comma-separated" in res.output, res.output
    res = _invoke("audit-one-run", "--data", "wine", "--model", "logistic", *FAST,
                  "--device", "foo")
    assert res.exit_code == 1 and "device" in res.output and "Traceback" not in res.output
    res = _invoke("audit-one-run", "--data", "wine", "--model", "logistic", "-p", "epochs=2",
                  "--canaries", "2", "--seed", "0", "--format", "json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["canaries"]["n_included"] == 2  # seed 0 includes both canaries
    assert summary["target"]["held_out_accuracy"] is None


def test_a_saved_pandas_index_column_is_flagged(tmp_path):
    import pandas as pd

    from miaudit.data import load_dataset
    from miaudit.errors import DataWarning

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=50), "label": rng.integers(0, 2, 50)})
    frame.to_csv(tmp_path / "t.csv")  # with the index, as pandas writes it by default
    with pytest.warns(DataWarning, match="numbers the rows"):
        load_dataset(tmp_path / "t.csv", label_column="label")
