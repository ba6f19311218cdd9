"""Audit specs: parsing, errors with file / field / line, paths, running, re-running, CLI."""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import warnings

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import miaudit
from miaudit.audits.lm import audit_lm
from miaudit.cli import common
from miaudit.cli.spec import register
from miaudit.config import SECTIONS, SETTINGS, AuditConfig
from miaudit.errors import ConfigError, DataError, MiauditWarning
from miaudit.spec import (
    AuditSpec,
    SpecError,
    load_spec,
    parse_spec,
    rerun,
    run_spec,
    spec_from_run,
    spec_from_summary,
)
from miaudit.spec.schema import AUDIT_KEYS, TRAINING_KEYS, AuditSection, TrainingSection

FAST = {"epochs": 3}

FULL_TOML = """\
name = "location-mlp"
description = "pre-release audit"

[data]
source = "../data/d.npz"   # relative to this file
n_records = 100

[target]
recipe = "mlp"
params = { epochs = 20, hidden = [256, 128] }

[audit]
exposure = ["logits", "top-k:1"]
attacks = ["loss", "lira-online"]
references = 16
reference_mode = "online"
targets = 4
seed = 0
query_budget = 100000
alpha = 0.05
fprs = [0.01, 0.001]

[training]
device = "cpu"
executor = "inprocess"
models_per_batch = 32

[thresholds]
"tpr_at_fpr.0.001" = 0.01
"""

FULL_YAML = """\
name: location-mlp
description: pre-release audit
data:
  source: ../data/d.npz
  n_records: 100
target:
  recipe: mlp
  params: {epochs: 20, hidden: [256, 128]}
audit:
  exposure: [logits, "top-k:1"]
  attacks: [loss, lira-online]
  references: 16
  reference_mode: online
  targets: 4
  seed: 0
  query_budget: 100000
  alpha: 0.05
  fprs: [1e-2, 1e-3]
training:
  device: cpu
  executor: inprocess
  models_per_batch: 32
thresholds:
  "tpr_at_fpr.0.001": 0.01
"""


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        yield


@pytest.fixture
def layout(tmp_path):
    """A spec folder and a data folder beside it (specs refer to ../data/d.npz)."""
    (tmp_path / "data").mkdir()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data" / "d.npz", X=rng.normal(size=(120, 4)),
             y=rng.integers(0, 2, 120))
    (tmp_path / "specs").mkdir()
    return tmp_path


def _write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _digits_spec(folder, name="digits.toml", extra=""):
    return _write(folder, name, f"""\
[data]
source = "digits"

[target]
recipe = "logistic"
params = {{ epochs = 3 }}

[audit]
attacks = ["loss", "mentr"]
seed = 1
{extra}
[thresholds]
"tpr_at_fpr.0.001" = 0.01
""")


def _aucs(summary):
    return {name: entry["auc"] for name, entry in summary["attacks"].items()}


def _assert_same_figures(a, b):
    assert set(a["attacks"]) == set(b["attacks"])
    for name, entry in a["attacks"].items():
        assert entry["auc"] == pytest.approx(b["attacks"][name]["auc"], abs=1e-12)
        for level, tpr in entry["tpr_at_fpr"].items():
            other = b["attacks"][name]["tpr_at_fpr"][level]
            assert (tpr is None and other is None) or tpr == pytest.approx(other, abs=1e-12)


# ------------------------------------------------------------------ schema and kwargs


def test_toml_and_yaml_give_identical_kwargs(layout, monkeypatch):
    monkeypatch.chdir(layout)  # paths resolve from the spec's folder, not from here
    toml = load_spec(_write(layout / "specs", "a.toml", FULL_TOML))
    yaml = load_spec(_write(layout / "specs", "a.yaml", FULL_YAML))
    kwargs = toml.to_audit_kwargs()
    assert kwargs == yaml.to_audit_kwargs()
    assert toml.to_dict() == yaml.to_dict()
    assert toml.task == "classification"
    assert kwargs["data"] == str(layout / "data" / "d.npz")
    assert kwargs["model_params"] == {"epochs": 20, "hidden": [256, 128]}
    assert kwargs["exposure"] == ["logits", "top-k:1"] and kwargs["fprs"] == [0.01, 0.001]
    assert toml.thresholds == {"tpr_at_fpr.0.001": 0.01}
    assert toml.source["format"] == "toml" and yaml.source["format"] == "yaml"
    inspect.signature(miaudit.audit).bind(**kwargs)  # exactly audit()'s keywords


def test_defaults_are_those_of_audit_and_audit_lm(tmp_path):
    # classification: the spec's settings are AuditConfig's, defaults included
    spec = parse_spec('[data]\nsource = "digits"\n')
    assert spec.to_config() == AuditConfig.from_settings(data="digits")
    assert set(spec.to_audit_kwargs()) < set(SETTINGS)
    for key in (*AUDIT_KEYS, *TRAINING_KEYS):  # declared once, in the config
        section, field = SETTINGS[key]
        declared = (SECTIONS[section] if section else AuditConfig).model_fields[field]
        assert AuditSection.model_fields.get(key, TrainingSection.model_fields.get(key)
                                             ).default == declared.default, key
    texts = _write(tmp_path, "t.jsonl", '{"text": "a"}\n')
    spec = parse_spec(f'[data]\nsource = "{texts}"\n[target]\ntask = "lm"\n')
    kwargs = spec.to_audit_kwargs()
    params = inspect.signature(audit_lm).parameters
    caller = {"progress", "cache", "cache_dir"}  # left to the caller: they change no figure
    skip = {*caller, "data"}
    assert set(kwargs) == set(params) - caller
    for key in set(params) - skip:
        default = params[key].default
        assert kwargs[key] == (list(default) if isinstance(default, tuple) else default), key


def test_relative_paths_resolve_from_the_spec_folder(layout, monkeypatch):
    monkeypatch.chdir(layout / "data")
    spec = load_spec(_write(layout / "specs", "o.toml", '[target]\noutputs = "../data/d.npz"\n'))
    assert spec.to_audit_kwargs()["outputs"] == str(layout / "data" / "d.npz")
    assert "data" not in spec.to_audit_kwargs()
    assert spec.to_dict()["target"]["outputs"] == str(layout / "data" / "d.npz")
    # a missing file is named with its resolved path, the field and the line
    path = _write(layout / "specs", "m.toml", '\n[data]\nsource = "d.npz"\n')
    with pytest.raises(SpecError, match=r"m\.toml:3: data\.source: data file not found: "
                                        + str(layout / "specs" / "d.npz")):
        load_spec(path)


def test_spec_round_trips_through_to_dict(layout):
    spec = load_spec(_write(layout / "specs", "a.toml", FULL_TOML))
    again = AuditSpec.model_validate(json.loads(json.dumps(spec.to_dict())))
    assert again.to_audit_kwargs() == spec.to_audit_kwargs()
    assert again.to_dict() == spec.to_dict()


def test_language_model_spec(tmp_path):
    _write(tmp_path, "t.jsonl", '{"body": "a", "in": true}\n')
    (tmp_path / "base").mkdir()
    spec = load_spec(_write(tmp_path, "lm.toml", """\
[data]
source = "t.jsonl"
text_column = "body"
member_column = "in"
[target]
task = "lm"
params = { n_layer = 1, epochs = 1 }
[audit]
attacks = ["lm-loss", "zlib", "reference", "lira-online"]
references = 2
[lm]
reference_model = "base"
canaries = 5
k = 0.1
"""))
    kwargs = spec.to_audit_kwargs()
    assert spec.task == "lm"
    inspect.signature(audit_lm).bind(**kwargs)
    assert kwargs["data"] == str(tmp_path / "t.jsonl")
    assert kwargs["reference_model"] == str(tmp_path / "base")
    assert kwargs["recipe"] == {"n_layer": 1, "epochs": 1} and kwargs["model"] is None
    assert (kwargs["text_column"], kwargs["member_column"], kwargs["canaries"]) == (
        "body", "in", 5)
    assert AuditSpec.model_validate(spec.to_dict()).to_audit_kwargs() == kwargs


# ------------------------------------------------------------------ errors


ERRORS = [
    ("unknown key", "toml", '[data]\nsource = "digits"\n\n[audit]\nseed = 1\nrefrences = 4\n',
     r"a\.toml:6: audit\.refrences: unknown key 'refrences' in \[audit\]; did you mean "
     r"'references'\?"),
    ("wrong type", "toml", '[data]\nsource = "digits"\n[audit]\nseed = 0\n\nreferences = '
     '"many"\n', r"a\.toml:6: audit\.references: Input should be a valid integer, got 'many'"),
    ("missing source", "toml", '# audit\n\n[data]\nlabel_column = "income"\n',
     r"a\.toml:3: data\.source: required, but missing"),
    ("TOML syntax", "toml", '[data]\nsource = "digits"\n[audit]\nreferences = many\n',
     r"a\.toml:4: audit\.references: TOML syntax error: Invalid value"),
    ("YAML syntax", "yaml", "data:\n  source: digits\naudit:\n  seed: [3\n  references: 2\n",
     r"a\.yaml:5: audit\.references: YAML syntax error"),
    ("YAML type", "yaml", "data:\n  source: digits\naudit:\n  seed: 0\n  alpha: high\n",
     r"a\.yaml:5: audit\.alpha: Input should be a valid number, got 'high'"),
    ("YAML list item", "yaml", "data:\n  source: digits\naudit:\n  fprs:\n    - 0.01\n"
     "    - 2\n", r"a\.yaml:6: audit\.fprs\[1\]: Input should be less than 1"),
    ("recipe and outputs", "toml", '[target]\nrecipe = "mlp"\n\noutputs = "o.npz"\n',
     r"a\.toml:4: target\.outputs: give either target\.recipe .* or target\.outputs"),
    ("unknown section", "toml", '[data]\nsource = "digits"\n[traning]\ndevice = "cpu"\n',
     r"a\.toml:3: traning: unknown key 'traning' at the top level; did you mean 'training'"),
    ("recipe parameter", "toml", '[data]\nsource = "digits"\n[target]\nrecipe = "mlp"\n'
     'params = { epochs = 2, hiden = [8] }\n',
     r"a\.toml:5: target\.params\.hiden: unknown recipe parameter; did you mean 'hidden'"),
    ("recipe parameter type", "toml", '[data]\nsource = "digits"\n[target.params]\n'
     'epochs = "20"\n', r"a\.toml:4: target\.params\.epochs: should be an integer, got '20'"),
    ("bad exposure", "toml", '[data]\nsource = "digits"\n[audit]\nexposure = "top-k:0"\n',
     r"a\.toml:4: audit\.exposure: The exposure setting 'top-k:0' is invalid"),
    ("unknown attack", "toml", '[data]\nsource = "digits"\n[audit]\nattacks = ["loss", '
     '"mentrr"]\n', r"a\.toml:4: audit\.attacks\[1\]: unknown attack 'mentrr'; did you mean"),
    ("lm key for classification", "toml", '[data]\nsource = "digits"\n[lm]\nk = 0.1\n',
     r"a\.toml:3: lm: the \[lm\] section is for target\.task = 'lm'"),
    ("classification key for lm", "yaml", "data:\n  source: t.jsonl\ntarget:\n  task: lm\n"
     "training:\n  executor: ray\n",
     r"a\.yaml:6: training\.executor: not used by a language-model audit"),
    ("threshold", "toml", '[data]\nsource = "digits"\n[thresholds]\n"tpr_at_fpr.0.001" = '
     '"low"\n', r'a\.toml:4: thresholds\."tpr_at_fpr\.0\.001": Input should be a valid number'),
    ("duplicate YAML key", "yaml", "data:\n  source: digits\n  source: wine\n",
     r"a\.yaml:3: data\.source: duplicate key 'source'"),
]


@pytest.mark.parametrize(("fmt", "text", "pattern"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_name_file_field_and_line(tmp_path, fmt, text, pattern):
    path = _write(tmp_path, f"a.{fmt}", text)
    with pytest.raises(SpecError, match=pattern) as info:
        load_spec(path)
    assert "\n" not in str(info.value)
    assert info.value.problems and info.value.problems[0].line is not None


def test_every_problem_is_kept(tmp_path):
    path = _write(tmp_path, "a.toml", '[data]\nsource = "digits"\nfoo = 1\n[audit]\n'
                                      'seed = "x"\nalpha = 2\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert [(p.line, p.path) for p in info.value.problems] == [
        (3, "data.foo"), (5, "audit.seed"), (6, "audit.alpha")]
    assert "2 more problem(s)" in str(info.value)


def test_spec_file_itself_missing_or_wrong_kind(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"must end in \.toml, \.yaml, \.yml"):
        load_spec(_write(tmp_path, "a.json", "{}"))


# ------------------------------------------------------------------ running and re-running


def test_run_spec_stores_the_spec_and_rerun_reproduces_it(tmp_path):
    path = _digits_spec(tmp_path)
    spec = load_spec(path)
    _, saved = run_spec(spec, tmp_path / "run")
    summary = json.loads((saved / "summary.json").read_text())
    assert summary["spec"] == spec.to_dict()
    assert summary["spec"]["thresholds"] == {"tpr_at_fpr.0.001": 0.01}
    assert summary["spec_source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary["spec_source"]["path"] == str(path.resolve())
    assert summary["spec_source"]["text"] == path.read_text()
    assert sorted(p.name for p in saved.iterdir()) == ["report.html", "scores.parquet",
                                                       "signals.npz", "summary.json"]

    again, saved2 = rerun(saved, tmp_path / "again")
    _assert_same_figures(summary, again.summary())
    info = again.summary()["rerun_of"]
    assert info["rebuilt_from"] == "spec" and info["reproduced"]
    assert info["run"] == str(saved)
    assert again.summary()["spec_source"] == summary["spec_source"]
    assert json.loads((saved2 / "summary.json").read_text())["rerun_of"] == info


def test_rerun_of_a_run_made_without_a_spec(tmp_path):
    first = miaudit.audit(data="digits", model="logistic", model_params=FAST, n_records=300,
                          exposure="probabilities", references=2, targets=2, seed=3)
    run = first.save(tmp_path / "cli-run")
    spec = spec_from_run(run)
    assert spec.to_audit_kwargs()["n_records"] == 300
    assert spec.to_audit_kwargs()["attacks"] is None  # the default set, as it was
    again, _ = rerun(run, tmp_path / "again")
    _assert_same_figures(first.summary(), again.summary())
    assert _aucs(first.summary()) == pytest.approx(_aucs(again.summary()), abs=1e-12)
    info = again.summary()["rerun_of"]
    assert info["rebuilt_from"] == "settings" and info["reproduced"]
    # the re-run stores the rebuilt spec, so it re-runs from it in turn
    assert AuditSpec.model_validate(again.summary()["spec"]).to_audit_kwargs() == \
        spec.to_audit_kwargs()


def test_rerun_refuses_what_it_cannot_rebuild(tmp_path):
    rng = np.random.default_rng(0)
    outputs = tmp_path / "outs.npz"
    np.savez(outputs, logits=rng.normal(size=(60, 3)), y=rng.integers(0, 3, 60),
             is_member=rng.random(60) < 0.5)
    run = miaudit.audit(outputs=outputs, attacks=["loss"]).save(tmp_path / "outs-run")
    assert spec_from_run(run).to_audit_kwargs()["outputs"] == str(outputs)
    shutil.move(outputs, tmp_path / "moved.npz")
    with pytest.raises(ConfigError, match=r"outputs file not found: .*outs\.npz"):
        rerun(run, tmp_path / "x")
    assert not (tmp_path / "x").exists()

    summary = json.loads((run / "summary.json").read_text())
    summary["target"] = {"model": "LogisticRegression", "seed": None}
    with pytest.raises(ConfigError, match="existing model"):
        spec_from_summary(summary)
    with pytest.raises(ConfigError, match="No run folder"):
        rerun(tmp_path / "missing")


def test_rerun_refuses_changed_data(tmp_path):
    rng = np.random.default_rng(1)
    data = tmp_path / "d.npz"
    np.savez(data, X=rng.normal(size=(80, 3)), y=rng.integers(0, 2, 80))
    run = miaudit.audit(data=data, model="logistic", model_params=FAST,
                        attacks=["loss"]).save(tmp_path / "run")
    np.savez(data, X=rng.normal(size=(80, 3)), y=rng.integers(0, 2, 80))
    with pytest.raises(DataError, match="changed since it ran"):
        rerun(run, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_language_model_runs_rebuild_from_their_settings(tmp_path):
    from miaudit.training.lm import LMRecipe

    texts = _write(tmp_path, "t.jsonl", '{"text": "a"}\n')
    summary = {
        "task": "language model",
        "data": {"source": str(texts), "text_columns": ["text"], "id_column": None,
                 "member_column": None, "n_records_requested": 40},
        "target": {"model": "gpt2 recipe", "recipe": LMRecipe(epochs=1).to_dict()},
        "attacks": {"lm-loss": {}, "zlib": {}},
        "blind_baseline": None,
        "settings": {"seed": 2, "alpha": 0.1, "prior": 0.5, "delta": 1e-5,
                     "fprs": [0.01], "k": 0.3, "references": 0, "canaries": 2,
                     "device": "cpu", "batch_size": 4, "max_length": None, "stride": None},
    }
    kwargs = spec_from_summary(summary).to_audit_kwargs()
    inspect.signature(audit_lm).bind(**kwargs)
    assert kwargs["data"] == str(texts) and kwargs["text_column"] == "text"
    assert kwargs["n_records"] == 40 and kwargs["recipe"]["epochs"] == 1
    assert kwargs["attacks"] == ["lm-loss", "zlib"] and kwargs["blind"] is False
    assert (kwargs["seed"], kwargs["k"], kwargs["canaries"]) == (2, 0.3, 2)
    summary["attacks"]["reference"] = {}
    with pytest.raises(ConfigError, match="reference model whose folder is not recorded"):
        spec_from_summary(summary)


# ------------------------------------------------------------------ command line


@pytest.fixture
def cli():
    app = typer.Typer()
    register(app)
    return CliRunner(), app


def test_cli_spec_check(cli, tmp_path):
    runner, app = cli
    path = _digits_spec(tmp_path)
    res = runner.invoke(app, ["spec-check", str(path)])
    assert res.exit_code == 0, res.output
    assert "model_params" in res.stdout and "logistic" in res.stdout
    res = runner.invoke(app, ["spec-check", str(path), "--format", "json"])
    out = json.loads(res.stdout)
    assert out["task"] == "classification" and out["kwargs"]["seed"] == 1
    bad = _write(tmp_path, "bad.toml", '[data]\nsource = "digits"\n[audit]\nseed = "one"\n')
    res = runner.invoke(app, ["spec-check", str(bad)])
    assert res.exit_code == 1
    assert "bad.toml:4: audit.seed: Input should be a valid integer" in res.output


def test_cli_run_spec_and_rerun(cli, tmp_path, monkeypatch):
    runner, app = cli
    out = tmp_path / "run"
    res = runner.invoke(app, ["run-spec", str(_digits_spec(tmp_path)), "--out", str(out),
                              "--format", "json", "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["spec"]["target"]["recipe"] == "logistic"
    res = runner.invoke(app, ["run-spec", str(_digits_spec(tmp_path)), "--out", str(out)])
    assert res.exit_code == 1 and "--overwrite" in res.output

    def registry(text):
        if text != "run-1":
            raise ConfigError(f"Unknown run ID {text!r}.")
        return out

    monkeypatch.setattr(common, "run_lookup", registry)
    res = runner.invoke(app, ["rerun", "run-1", "--out", str(tmp_path / "again"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "reproduced" in res.output
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert _aucs(again) == pytest.approx(_aucs(summary), abs=1e-12)
    res = runner.invoke(app, ["rerun", "run-2"])
    assert res.exit_code == 1 and "Unknown run ID 'run-2'" in res.output


def test_a_yaml_alias_bomb_is_refused_before_it_is_walked():
    """Nine levels of nine aliases expand to 9**9 values from ten lines (issue 17: the
    error locator walked every expanded alias and hung); the node graph is measured first."""
    levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    text = "\n".join([*levels, "data: {source: digits}"])
    with pytest.raises(SpecError, match="expands to more than 100,000 values"):
        parse_spec(text, "yaml", file="bomb.yaml")
    with pytest.raises(SpecError, match="refers to itself"):
        parse_spec("a: &a [*a]\ndata: {source: digits}\n", "yaml")
    with pytest.raises(SpecError, match="nested too deeply"):
        parse_spec("data: " + "[" * 5000 + "]" * 5000, "yaml")
    # a spec that uses an alias or two is fine
    ok = parse_spec("name: &n audit-1\ndescription: *n\ndata: {source: digits}\n", "yaml")
    assert ok.name == ok.description == "audit-1"
