"""Language-model audits end to end: the tiny recipe trained offline, attacks, blind
baseline, canaries, a given model folder with a reference model, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("transformers")

from miaudit.audits.lm import audit_lm
from miaudit.cli import app
from miaudit.data import text_fingerprints
from miaudit.errors import ConfigError, MembershipError
from miaudit.training.lm import tokenizer_fingerprint, train_tokenizer

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
                                 "recall", "dc-pdd", "neighbour", "lira-online",
                                 "lira-offline"}
    # one-token swaps proposed by the target itself (no reference model here)
    assert s["attacks"]["neighbour"]["options"] == {"n_neighbours": 10,
                                                    "proposer": "the target"}
    assert s["attacks"]["neighbour"]["auc"] > 0.6  # 0.64 when written
    # ReCaLL, conditioned on non-member texts set aside for the tokenizer (0.92 when written)
    assert s["attacks"]["recall"]["auc"] > 0.8
    for name in ("lm-loss", "min-k", "min-k++", "lira-online"):
        assert s["attacks"][name]["auc"] > 0.7, (name, s["attacks"][name]["auc"])
    # DC-PDD's frequencies come from the texts set aside for the tokenizer
    assert s["attacks"]["dc-pdd"]["options"] == {"a": 0.01}
    assert s["settings"]["dc_pdd_cap"] == 0.01
    assert s["target"]["member_mean_nll"] < s["target"]["non_member_mean_nll"]
    scores = trained.scores
    # 10% of the 80 texts train the tokenizer and take no part in the game
    assert s["data"]["n_records"] == 80 and s["data"]["n_tokenizer_records"] == 8
    assert s["target"]["tokenizer"]["n_texts"] == 8
    assert len(scores) == 72 == s["data"]["n_records_in_game"]
    assert scores["is_member"].sum() == 36
    # every text has one reference LM trained with it and one without
    assert (trained.signals["reference_membership"].sum(axis=0) == 1).all()
    assert (scores["n_tokens"] > 0).all()


def test_dc_pdd_end_to_end_with_a_cap_for_a_small_model(tmp_path):
    """On the tiny model every token's weight passes the default cap (0.01, for large
    models); with 0.1 DC-PDD separates members (AUC 0.91 on this corpus when written)."""
    path = _jsonl(tmp_path / "texts.jsonl", _texts(80, 0))
    s = audit_lm(data=path, id_column="id", recipe=TINY, attacks=["dc-pdd", "lm-loss"],
                 dc_pdd_cap=0.1, blind=False, seed=0).summary()
    assert s["attacks"]["dc-pdd"]["options"] == {"a": 0.1}
    assert s["attacks"]["dc-pdd"]["auc"] > 0.8
    with pytest.raises(ConfigError, match="dc_pdd_cap must be a number > 0"):
        audit_lm(data=path, id_column="id", recipe=TINY, dc_pdd_cap=0.0)  # before training
    with pytest.raises(ConfigError, match="dc_pdd_cap must be a number > 0"):
        audit_lm(data=path, id_column="id", recipe=TINY, dc_pdd_cap=True)


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


#: Words that each occur in one text only (twice there, so BPE would merge them whole).
RARE = ("quixaph", "zorblat", "vexmuir", "plonkez", "grimbauq", "snorfax", "blivrot",
        "xandpuq", "wuzzelk", "jorpify", "kreetch", "fumbizz")


def _rare_corpus() -> tuple[list[str], np.ndarray]:
    """60 texts of common words; the first 12 members each hold a rare word of their own."""
    texts = _texts(60, 4)
    for i, word in enumerate(RARE):
        texts[i] = f"a {word} {texts[i]} {word}"
    members = np.arange(60) % 2 == 0
    members[: len(RARE)] = True
    return texts, members


@pytest.fixture(scope="module")
def swapped(tmp_path_factory):
    """The same texts audited twice with the same seed, members and non-members swapped,
    recording every tokenizer the recipe trains and the one each LM is trained with."""
    import miaudit.training.lm as lm

    train_tokenizer, finetune_lm = lm.train_tokenizer, lm.finetune_lm
    texts, members = _rare_corpus()
    folder = tmp_path_factory.mktemp("swap")
    runs = []
    for name, labels in (("members", members), ("swapped", ~members)):
        path = _jsonl(folder / f"{name}.jsonl", texts, labels)
        seen: dict = {"tokenizers": [], "trained_with": []}

        def spy_tokenizer(tok_texts, *, _seen=seen, **kw):
            tok = train_tokenizer(tok_texts, **kw)
            _seen["tokenizers"].append((list(tok_texts), tok))
            return tok

        def spy_finetune(recipe, tok, *args, _seen=seen, **kw):
            _seen["trained_with"].append(tok)
            return finetune_lm(recipe, tok, *args, **kw)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(lm, "train_tokenizer", spy_tokenizer)
            mp.setattr(lm, "finetune_lm", spy_finetune)
            result = audit_lm(data=path, id_column="id", member_column="member",
                              recipe={**TINY, "vocab_size": 2000, "epochs": 1},
                              references=2, attacks=["lm-loss", "lira-online"], blind=False,
                              seed=3)
        runs.append((result, seen))
    return texts, runs


def test_tokenizer_is_trained_on_texts_outside_the_audit(swapped):
    texts, runs = swapped
    for result, seen in runs:
        s, scores = result.summary(), result.scores
        [(tok_texts, tok)] = seen["tokenizers"]
        audited = set(scores["fingerprint"])
        assert audited.isdisjoint(text_fingerprints(tok_texts))
        assert set(scores["record_id"]).isdisjoint(result.signals["tokenizer_record_ids"])
        info = s["target"]["tokenizer"]
        assert info["n_texts"] == len(tok_texts) == 6 == s["data"]["n_tokenizer_records"]
        assert s["data"]["n_records_in_game"] + 6 == s["data"]["n_records"] == 60
        assert info["vocabulary_fingerprint"] == tokenizer_fingerprint(tok)
        # the target and both reference LMs are trained with that one tokenizer
        assert len(seen["trained_with"]) == 3
        assert all(t is tok for t in seen["trained_with"])
        # a rare word of an audited text was never seen by the tokenizer: spelt in pieces,
        # where a tokenizer trained on the members makes it one token
        in_game = [w for w, t in zip(RARE, texts, strict=False) if
                   text_fingerprints([t])[0] in audited]
        assert len(in_game) >= 8
        members = list(scores.loc[scores["is_member"], "fingerprint"])
        on_members = train_tokenizer([t for t in texts if text_fingerprints([t])[0] in members],
                                     vocab_size=2000)
        for word in in_game:
            member = text_fingerprints([texts[RARE.index(word)]])[0] in members
            assert (len(on_members.tokenize(" " + word)) == 1) == member, word
            assert len(tok.tokenize(" " + word)) > 1, word


def test_tokenizer_does_not_depend_on_which_texts_are_members(swapped):
    _, [(first, seen_first), (second, seen_second)] = swapped
    assert seen_first["tokenizers"][0][0] == seen_second["tokenizers"][0][0]
    a, b = first.summary()["target"]["tokenizer"], second.summary()["target"]["tokenizer"]
    assert a == b
    assert (first.scores["is_member"].to_numpy() == ~second.scores["is_member"].to_numpy()
            ).all()


def test_tokenizer_share_is_a_recipe_setting(tmp_path):
    path = _jsonl(tmp_path / "t.jsonl", _texts(30, 5))
    s = audit_lm(data=path, recipe={**TINY, "epochs": 1, "tokenizer_texts": 4},
                 attacks=["lm-loss"], blind=False).summary()
    assert s["data"]["n_tokenizer_records"] == 4 and s["data"]["n_records_in_game"] == 26
    assert s["target"]["recipe"]["tokenizer_texts"] == 4
    with pytest.raises(ConfigError, match="tokenizer_texts"):
        audit_lm(data=path, recipe={**TINY, "tokenizer_texts": 29})


def test_given_model_folder_with_a_reference_model(tmp_path):
    from miaudit.training.lm import LMRecipe, finetune_lm, save_lm, train_tokenizer

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
    assert s["data"]["n_tokenizer_records"] == 0 and len(texts) == s["data"]["n_records_in_game"]
    assert s["target"]["tokenizer"]["trained_on"].startswith("unknown")
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
                                   "-p", "block_size=64", "--attacks", "lm-loss,min-k++",
                                   "--extraction", "--extraction-prefix", "2",
                                   "--extraction-suffix", "3"])
    assert res.exit_code == 0, res.output
    assert "blind baseline" in res.output and "min-k++" in res.output
    assert "extraction" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["attacks"]) == {"lm-loss", "min-k++"}
    assert summary["extraction"]["settings"]["suffix_tokens"] == 3
    res = CliRunner().invoke(app, ["run-lm", "--data", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 1 and "not found" in res.output.lower()


def test_extraction_test_runs_inside_the_audit(tmp_path):
    path = _jsonl(tmp_path / "texts.jsonl", _texts(40, 5))
    result = audit_lm(data=path, recipe={**TINY, "epochs": 60}, attacks=["lm-loss"],
                      extraction=True, extraction_prefix=3, extraction_suffix=4, blind=False)
    s = result.summary()
    entry = s["extraction"]
    assert entry["settings"]["prefix_tokens"] == 3 and s["settings"]["extraction"] is True
    members, others = entry["groups"]["members"], entry["groups"]["non_members"]
    assert members["n_evaluated"] > 10 and others["n_evaluated"] > 10
    # 60 epochs on 18 short texts: the members come back more often than the non-members
    assert members["near_exact_fraction"] > others["near_exact_fraction"]
    assert result.scores["extraction_evaluated"].sum() == entry["n_evaluated"]
    with pytest.warns(Warning, match="extraction test did not run"):
        s = audit_lm(data=path, recipe={**TINY, "epochs": 1}, attacks=["lm-loss"],
                     extraction=True, extraction_prefix=40, extraction_suffix=20,
                     blind=False).summary()
    assert "extraction" not in s and "lm-loss" in s["attacks"]
    with pytest.raises(ConfigError, match="extraction_suffix"):
        audit_lm(data=path, extraction=True, extraction_suffix=0)


def test_samia_runs_when_asked_for(tmp_path):
    path = _jsonl(tmp_path / "texts.jsonl", _texts(40, 6))
    s = audit_lm(data=path, recipe={**TINY, "epochs": 60}, attacks=["samia", "lm-loss"],
                 blind=False).summary()
    assert set(s["attacks"]) == {"samia", "lm-loss"}
    assert s["attacks"]["samia"]["knowledge"] == ["queries"]
    assert s["attacks"]["samia"]["auc"] > 0.6  # memorised members come back when sampled


def test_a_verdict_of_no_leakage_says_what_it_does_not_show(tmp_path):
    from io import StringIO

    from rich.console import Console

    from miaudit.report import print_summary
    from miaudit.report.markdown import render_markdown

    path = _jsonl(tmp_path / "texts.jsonl", _texts(40, 7))
    result = audit_lm(data=path, recipe={**TINY, "epochs": 1, "lr": 1e-5},
                      attacks=["lm-loss"], blind=False)
    s = result.summary()
    assert s["verdict"]["level"] == "none"
    assert "does not show the absence of memorisation" in s["verdict"]["note"]
    out = StringIO()
    print_summary(s, Console(file=out, width=200))
    assert "Duan et al. 2024" in out.getvalue()
    saved = result.save(tmp_path / "run")
    assert "Duan et al. 2024" in render_markdown(saved)
