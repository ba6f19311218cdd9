"""A causal LM audited through an OpenAI-compatible completions API: the real ``openai``
client against the local server (:mod:`miaudit.testing.openai_server`) over the tiny
GPT-2, compared with the same model queried in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("openai")

from miaudit.audits.lm import audit_lm
from miaudit.errors import ConfigError, OutputError, QueryBudgetError
from miaudit.targets.lm import CausalLMTarget, _encode
from miaudit.targets.openai import OpenAICompletionsTarget, detect_lm_exposure, token_bound
from miaudit.testing.openai_server import OpenAICompletionsServer
from miaudit.training import lm

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 64, "block_size": 64,
        "vocab_size": 300, "epochs": 10, "batch_size": 8, "lr": 3e-3}
WORDS = ("river", "stone", "cloud", "lamp", "garden", "window", "engine", "copper", "violet",
         "harbor", "pencil", "marble", "forest", "candle", "ticket", "orbit", "saddle", "meadow")
KEY_ENV = "MIAUDIT_TEST_OPENAI_KEY"
SECRET = "sk-test-5f1e0c2a9d"


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(6, 10))) + f" {i}" for i in range(n)]


@pytest.fixture(scope="module")
def models():
    """A target trained on the first half of 60 texts, a reference on other texts (about
    5 s together, with the imports)."""
    texts = _texts(60, 0)
    tokenizer = lm.train_tokenizer(_texts(30, 9), vocab_size=TINY["vocab_size"])
    recipe = lm.LMRecipe(**TINY)
    target = lm.finetune_lm(recipe, tokenizer, texts[:30], seed=0)
    reference = lm.finetune_lm(lm.LMRecipe(**{**TINY, "epochs": 3}), tokenizer,
                               _texts(30, 5), seed=1)  # any other model will do
    return {"texts": texts, "tokenizer": tokenizer, "target": target, "reference": reference}


@pytest.fixture()
def server(models):
    with OpenAICompletionsServer({"tiny": (models["target"], models["tokenizer"]),
                                  "tiny-ref": (models["reference"], models["tokenizer"])}
                                 ) as srv:
        yield srv


def test_token_scores_equal_the_in_process_model(models, server):
    tok = models["tokenizer"]
    long = " ".join(_texts(12, 3))  # longer than the 64-token window: scored in windows
    texts = [*models["texts"][:6], long, "river"]
    assert len(_encode(tok, [long])[0]) > 64
    api = OpenAICompletionsTarget(server.base_url, "tiny", batch_size=3)
    got = api.token_scores(texts)
    want = CausalLMTarget(models["target"], tok, distribution=False).token_scores(texts)
    assert got.mean is None and got.std is None and got.token_ids is None
    assert api.distribution is False  # what audit_lm reads to leave Min-K%++ out
    for g, w, t in zip(got.logprobs, want.logprobs, texts, strict=True):
        # every text token is predicted (the server puts the BOS first, as miaudit does)
        assert len(g) == len(w) == len(_encode(tok, [t])[0]) - 1
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)
        assert (g <= 0).all()
    assert api.requests == 3 == server.stats.requests  # 8 texts, 3 per request
    assert api.queries == 8 and api.prompt_tokens == sum(len(_encode(tok, [t])[0])
                                                         for t in texts)


def test_audit_through_the_api_gives_the_in_process_aucs(models, server, tmp_path,
                                                         monkeypatch):
    texts = models["texts"]
    path = tmp_path / "texts.jsonl"
    with open(path, "w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"text": t, "id": f"d{i}", "member": i < 30}) + "\n")
    attacks = ["lm-loss", "zlib", "lowercase", "min-k", "reference"]
    tok = models["tokenizer"]
    local = audit_lm(data=path, id_column="id", member_column="member", attacks=attacks,
                     model=CausalLMTarget(models["target"], tok),
                     reference_model=CausalLMTarget(models["reference"], tok), blind=False)
    monkeypatch.setenv(KEY_ENV, SECRET)
    with OpenAICompletionsServer({"tiny": (models["target"], tok),
                                  "tiny-ref": (models["reference"], tok)},
                                 api_key_env=KEY_ENV) as keyed:
        api = OpenAICompletionsTarget(keyed.base_url, "tiny", auth_env=KEY_ENV)
        ref = OpenAICompletionsTarget(keyed.base_url, "tiny-ref", auth_env=KEY_ENV)
        remote = audit_lm(data=path, id_column="id", member_column="member", attacks=attacks,
                          model=api, reference_model=ref, blind=False)
        assert keyed.stats.unauthorized == 0 and keyed.stats.requests > 0
    a, b = local.summary()["attacks"], remote.summary()["attacks"]
    assert set(a) == set(b) == set(attacks)
    for name in attacks:
        assert b[name]["auc"] == pytest.approx(a[name]["auc"], abs=1e-9), name
        np.testing.assert_allclose(remote.scores[name], local.scores[name], atol=1e-4)
    assert a["lm-loss"]["auc"] > 0.7  # the target leaks, so the comparison means something
    out = remote.save(tmp_path / "run")
    saved = (out / "summary.json").read_text()
    assert SECRET not in saved and SECRET not in repr(api) and SECRET not in str(api.stats())


def test_detection_with_and_without_prompt_logprobs(models):
    pair = {"tiny": (models["target"], models["tokenizer"])}
    with OpenAICompletionsServer(pair) as srv:
        found = detect_lm_exposure(OpenAICompletionsTarget(srv.base_url, "tiny"))
        assert found.setting == "token log-probabilities"
        assert "Min-K%" in found.explanation and srv.stats.requests == 1
    for mode, why in (("none", "returns no log-probabilities"), ("refuse", "refuses echo")):
        with OpenAICompletionsServer(pair, prompt_logprobs=mode) as srv:
            target = OpenAICompletionsTarget(srv.base_url, "tiny")
            found = detect_lm_exposure(target)
            assert found.setting == "text", mode
            assert why in found.explanation and "SaMIA" in found.explanation
            assert "characters for the probe" in found.explanation
            with pytest.raises((OutputError, ConfigError), match=r"text only|\(400\)"):
                target.token_scores(["river stone"])


def test_budgets_refuse_before_sending(server):
    texts = _texts(5, 1)
    api = OpenAICompletionsTarget(server.base_url, "tiny", batch_size=2, max_texts=3)
    with pytest.raises(QueryBudgetError, match="budget of 3 texts"):
        api.token_scores(texts)
    assert server.stats.requests == 1 and api.queries == 2
    bound = sum(token_bound(t) for t in texts[:2])
    api = OpenAICompletionsTarget(server.base_url, "tiny", batch_size=2, max_tokens=bound)
    with pytest.raises(QueryBudgetError, match=f"budget of {bound} prompt tokens"):
        api.token_scores(texts)
    assert server.stats.requests == 2
    assert 0 < api.prompt_tokens <= bound  # the bound holds: never more than the budget


def test_the_cache_answers_without_a_request(server, tmp_path):
    texts = _texts(6, 2)
    first = OpenAICompletionsTarget(server.base_url, "tiny", batch_size=4, cache_dir=tmp_path)
    a = first.token_scores(texts)
    first.close()
    assert server.stats.requests == 2
    again = OpenAICompletionsTarget(server.base_url, "tiny", cache_dir=tmp_path)
    b = again.token_scores([*texts[::-1], texts[0]])
    assert server.stats.requests == 2 and again.queries == 0 and again.cache_hits == 7
    for x, y in zip(a.logprobs, b.logprobs[:6][::-1], strict=True):
        np.testing.assert_array_equal(x, y)
    other = OpenAICompletionsTarget(server.base_url, "tiny-ref", cache_dir=tmp_path)
    other.token_scores(texts[:1])  # another model: not the cached answers
    assert server.stats.requests == 3 and other.cache_hits == 0
    for t in (again, other):
        t.close()


def test_credentials_come_from_the_environment_only(models, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with OpenAICompletionsServer({"tiny": (models["target"], models["tokenizer"])},
                                 api_key_env=KEY_ENV) as srv:
        good = OpenAICompletionsTarget(srv.base_url, "tiny", auth_env=KEY_ENV)
        assert len(good.token_scores(["river stone lamp"]).logprobs[0]) > 0
        assert SECRET not in repr(good) and SECRET not in json.dumps(vars(good), default=str)
        monkeypatch.setenv("MIAUDIT_TEST_WRONG_KEY", "sk-wrong-0000")
        bad = OpenAICompletionsTarget(srv.base_url, "tiny", auth_env="MIAUDIT_TEST_WRONG_KEY",
                                      max_retries=0)
        with pytest.raises(ConfigError, match="refused the API key") as err:
            bad.token_scores(["river"])
        assert "sk-wrong-0000" not in str(err.value)
        with pytest.raises(ConfigError, match="answered 404"):
            OpenAICompletionsTarget(srv.base_url, "nope", auth_env=KEY_ENV).token_scores(
                ["river"])
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=f"{KEY_ENV} .auth_env. is not set"):
        OpenAICompletionsTarget("http://127.0.0.1:9/v1", "tiny", auth_env=KEY_ENV)
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        OpenAICompletionsTarget("http://127.0.0.1:9/v1", "tiny", batch_size=0)
    with pytest.raises(ConfigError, match="not an http"):
        OpenAICompletionsTarget("127.0.0.1:9/v1", "tiny")


def test_the_clients_own_retries_ride_out_a_busy_server(models):
    pair = {"tiny": (models["target"], models["tokenizer"])}
    with OpenAICompletionsServer(pair, fail_first=2) as srv:
        api = OpenAICompletionsTarget(srv.base_url, "tiny", max_retries=2)
        assert len(api.token_scores(["river stone"]).logprobs[0]) > 0
        assert srv.stats.requests == 3 and api.requests == 1
    with OpenAICompletionsServer(pair, fail_first=1) as srv:
        api = OpenAICompletionsTarget(srv.base_url, "tiny", max_retries=0)
        with pytest.raises(ConfigError, match=r"refused the request \(503\): Overloaded"):
            api.token_scores(["river stone"])


def test_cli_run_lm_through_the_api(models, server, tmp_path):
    from typer.testing import CliRunner

    from miaudit.cli import app

    path = tmp_path / "texts.jsonl"
    with open(path, "w") as f:
        for i, text in enumerate(models["texts"]):
            f.write(json.dumps({"text": text, "member": i < 30}) + "\n")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "run-lm", "--data", str(path), "--member-column", "member", "--target",
        server.base_url, "--target-model", "tiny", "--target-reference-model", "tiny-ref",
        "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    # the default attacks that prompt log-probabilities allow (no Min-K%++, no DC-PDD)
    assert set(summary["attacks"]) == {"lm-loss", "zlib", "min-k", "lowercase", "reference"}
    assert summary["target"]["api"]["model"] == "tiny"
    assert "(model 'tiny')" in summary["target"]["model"]
    res = CliRunner().invoke(app, ["run-lm", "--data", str(path), "--member-column", "member",
                                   "--target", server.base_url])
    assert res.exit_code != 0 and "--target-model" in res.output
