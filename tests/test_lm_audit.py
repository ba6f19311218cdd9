"""Language-model audits end to end: the tiny recipe trained offline, attacks, blind
baseline, canaries, a given model folder with a reference model, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("transformers")

from miaudit.cli import app
from miaudit.errors import ConfigError, MembershipError
from miaudit.orchestration.lm import audit_lm

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 64, "block_size": 64,
        "vocab_size": 300, "epochs": 25, "batch_size": 8, "lr": 3e-3}
WORDS = ("river", "stone", "cloud", "lamp", "garden", "window", "engine", "copper", "violet",
         "harbor", "pencil", "marble", "forest", "candle", "ticket", "orbit", "saddle", "meadow")


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(6, 10))) + f" {i}" for i in range(n)]


def _jsonl(path, texts, members=None):
    with open(path, "w") as f:
        for i, t in enumerate(texts):
            row = {"text": t, "id": f"doc{i}"}
            if members is not None:
                row["member"] = bool(members[i])
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = _jsonl(tmp_path_factory.mktemp("lm") / "texts.jsonl", _texts(80, 0))
    return audit_lm(data=path, id_column="id", recipe=TINY, references=2, canaries=2, seed=0)


def test_members_score_higher_under_every_attack(trained):
    s = trained.summary()
    assert s["task"] == "language model"
    assert set(s["attacks"]) == {"lm-loss", "zlib", "lowercase", "min-k", "min-k++",
                                 "lira-online", "lira-offline"}
    for name in ("lm-loss", "min-k", "min-k++", "lira-online"):
        assert s["attacks"][name]["auc"] > 0.7, (name, s["attacks"][name]["auc"])
    assert s["target"]["member_mean_nll"] < s["target"]["non_member_mean_nll"]
    scores = trained.scores
    assert len(scores) == 80 and scores["is_member"].sum() == 40
    # every text has one reference LM trained with it and one without
    assert (trained.signals["reference_membership"].sum(axis=0) == 1).all()
    assert (scores["n_tokens"] > 0).all()


def test_blind_baseline_and_canaries_are_reported(trained, tmp_path):
    s = trained.summary()
    blind = s["blind_baseline"]
    assert 0 <= blind["auc"] <= 1 and len(blind["auc_ci"]) == 2
    rows = s["canaries"]
    assert [r["repetitions"] for r in rows] == [1, 2]
    assert all(0 <= r["exposure"] <= r["max_exposure"] for r in rows)
    out = trained.save(tmp_path / "run")
    assert (out / "canary_exposure.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "summary.json").read_text())["canaries"] == json.loads(
        json.dumps(rows))
    from miaudit.registry import Registry  # language-model runs are recorded too

    with Registry(f"sqlite:///{tmp_path / 'reg.db'}") as reg:
        run_id = reg.record_run_dir(out)
        assert reg.show(run_id)["exposure"] == "token log-probabilities"


def test_blind_baseline_warns_when_the_texts_differ(tmp_path):
    rng = np.random.default_rng(1)
    members = np.arange(60) % 2 == 0
    texts = [" ".join(rng.choice(WORDS, 6)) + (f" in {2019 + i % 2} report {i}" if m
                                               else f" in {2024 + i % 2} note {i}")
             for i, m in enumerate(members)]
    path = _jsonl(tmp_path / "shift.jsonl", texts, members)
    with pytest.warns(UserWarning, match="distribution"):
        s = audit_lm(data=path, member_column="member",
                     recipe={**TINY, "epochs": 2}, attacks=["lm-loss"]).summary()
    assert s["blind_baseline"]["auc"] > 0.9 and s["blind_baseline"]["warning"]


def test_given_model_folder_with_a_reference_model(tmp_path):
    from miaudit.models.lm import LMRecipe, finetune_lm, save_lm, train_tokenizer

    texts = _texts(40, 2)
    members = np.arange(40) < 20
    recipe = LMRecipe(**TINY)
    tok = train_tokenizer(texts, vocab_size=300)
    save_lm(finetune_lm(recipe, tok, [t for t, m in zip(texts, members, strict=True) if m],
                        seed=0), tok, tmp_path / "target")
    save_lm(finetune_lm(recipe, tok, texts[20:30], seed=1), tok, tmp_path / "ref")
    path = _jsonl(tmp_path / "t.jsonl", texts, members)
    s = audit_lm(data=path, member_column="member", model=tmp_path / "target",
                 reference_model=tmp_path / "ref", blind=False).summary()
    assert "reference" in s["attacks"] and s["attacks"]["lm-loss"]["auc"] > 0.7
    with pytest.raises(MembershipError, match="member-column"):
        audit_lm(data=_jsonl(tmp_path / "u.jsonl", texts), model=tmp_path / "target")
    with pytest.raises(ConfigError, match="Canaries"):
        audit_lm(data=path, member_column="member", model=tmp_path / "target", canaries=1)
    with pytest.raises(ConfigError, match="--references"):
        audit_lm(data=path, member_column="member", model=tmp_path / "target",
                 attacks=["lira-online"])


def test_cli_run_lm(tmp_path):
    path = _jsonl(tmp_path / "texts.jsonl", _texts(30, 3))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run-lm", "--data", str(path), "--out", str(out),
                                   "-p", "n_layer=1", "-p", "n_embd=32", "-p", "epochs=3",
                                   "-p", "vocab_size=300", "-p", "n_positions=64",
                                   "-p", "block_size=64", "--attacks", "lm-loss,min-k++"])
    assert res.exit_code == 0, res.output
    assert "blind baseline" in res.output and "min-k++" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["attacks"]) == {"lm-loss", "min-k++"}
    res = CliRunner().invoke(app, ["run-lm", "--data", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 1 and "not found" in res.output.lower()
