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
from miaudit.errors import ConfigError, DataError, OutputError, QueryBudgetError
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


# --------------------------------------------------------------------------- SaMIA over the API


@pytest.fixture(scope="module")
def memo(memorised_lm):
    """The shared tiny GPT-2 that memorised 12 of 60 texts (conftest.py), served as
    "memo", on one torch thread (tiny models run fastest so)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield memorised_lm
    torch.set_num_threads(threads)


def _serve(memo, **options):
    return OpenAICompletionsServer({"memo": (memo.target.model, memo.tokenizer)}, **options)


def test_api_samples_are_seeded_order_free_and_split_by_words(memo):
    texts = memo.texts[8:16]  # 4 members, 4 non-members
    with _serve(memo) as srv:
        api = OpenAICompletionsTarget(srv.base_url, "memo")
        a = api.sample_continuations(texts, n_samples=4, seed=3)
        assert srv.stats.requests == 8 == api.queries  # one request (n=4) per text
        b = api.sample_continuations(texts[::-1], n_samples=4, seed=3)
        c = api.sample_continuations(texts, n_samples=4, seed=4)
    assert b.sample_text[::-1] == a.sample_text and c.sample_text != a.sample_text
    assert a.prompt_ids is None and a.settings["split"] == "words"
    assert a.n_tokens.tolist() == [12] * 8
    for text, true, samples in zip(texts, a.true_text, a.sample_text, strict=True):
        assert true.split() == text.split()[6:]  # the first 6 of 12 words are the prompt
        assert len(samples) == 4 and all(len(s.split()) <= 6 for s in samples)
    assert sum(len(set(s)) > 1 for s in a.sample_text) >= 3  # the K samples differ


def test_greedy_api_samples_equal_the_local_greedy_samples(memo):
    from miaudit.attacks.samia import samia_scores
    from miaudit.targets.sampling import sample_continuations

    texts = memo.texts[:24]
    local = sample_continuations(memo.target, texts, n_samples=1, top_k=1)
    with _serve(memo) as srv:
        api = sample_continuations(OpenAICompletionsTarget(srv.base_url, "memo"), texts,
                                   n_samples=1, temperature=0)
    # whole-word tokens: the word split equals the token split, and greedy decoding
    # through the API gives the local greedy tokens
    assert api.true_text == local.true_text
    assert [s[0].split() for s in api.sample_text] == [s[0].split() for s in
                                                       local.sample_text]
    np.testing.assert_array_equal(samia_scores(api), samia_scores(local))


def test_api_first_sampled_tokens_follow_the_models_softmax(memo):
    """Chi-square of 512 one-token samples through the API against the softmax computed
    in-process (tokens decoding to the same text pooled, rare ones pooled together)."""
    import torch
    from scipy import stats

    from miaudit.targets.lm import _encode

    text = memo.texts[-1]  # a non-member: a spread-out next-token distribution
    prompt = " ".join(text.split()[:6])
    with torch.no_grad():
        logits = memo.target.model(input_ids=torch.as_tensor([_encode(memo.tokenizer,
                                                                        [prompt])[0]])).logits
    probs = torch.softmax(logits[0, -1].double(), dim=-1).numpy()

    def first_word(s: str) -> str:
        return s.split()[0] if s.split() else ""

    expected: dict[str, float] = {}
    for token, p in enumerate(probs):
        key = "" if token == memo.tokenizer.eos_token_id else first_word(
            memo.tokenizer.decode([token]))
        expected[key] = expected.get(key, 0.0) + float(p)
    with _serve(memo) as srv:
        api = OpenAICompletionsTarget(srv.base_url, "memo")
        drawn = [s for seed in range(4) for s in api.sample_continuations(
            [text], n_samples=128, max_new_tokens=1, seed=seed).sample_text[0]]
    assert len(drawn) == 512
    observed = {k: 0 for k in expected}
    for s in drawn:
        observed[first_word(s)] += 1
    common = [k for k in expected if expected[k] * 512 >= 5]
    assert len(common) >= 3  # the test has power: several likely words
    f_obs = [observed[k] for k in common] + [512 - sum(observed[k] for k in common)]
    f_exp = [512 * expected[k] for k in common] + [512 * (1 - sum(expected[k]
                                                                   for k in common))]
    assert stats.chisquare(f_obs, f_exp).pvalue > 1e-3


def test_audit_samia_through_a_text_only_endpoint(memo, tmp_path):
    from sklearn.metrics import roc_auc_score

    path = tmp_path / "texts.jsonl"
    with open(path, "w") as f:
        for t, m in zip(memo.texts, memo.member, strict=True):
            f.write(json.dumps({"text": t, "member": bool(m)}) + "\n")
    with _serve(memo, prompt_logprobs="none") as srv:
        api = OpenAICompletionsTarget(srv.base_url, "memo")
        result = audit_lm(data=path, member_column="member", attacks=["samia", "samia-zlib"],
                          model=api, blind=False)
        assert srv.stats.requests == 60 == api.queries  # sampling only: no echo request
        with pytest.raises(OutputError, match=r"text only.*--attacks samia"):
            audit_lm(data=path, member_column="member", model=api, blind=False)
    with (_serve(memo, prompt_logprobs="refuse") as srv,
          pytest.raises(ConfigError, match=r"\(400\).*--attacks samia")):
        audit_lm(data=path, member_column="member", blind=False,
                 model=OpenAICompletionsTarget(srv.base_url, "memo"))
    summary = result.summary()
    assert set(summary["attacks"]) == {"samia", "samia-zlib"}
    assert "member_mean_nll" not in summary["target"]
    assert summary["exposure"] == "text (sampled continuations)"  # no log-probability read
    assert "Under exposure 'text (sampled continuations)'" in summary["verdict"]["sentence"]
    assert set(result.scores["exposure"]) == {"text (sampled continuations)"}
    assert summary["target"]["api"]["completion_tokens"] > 0
    scores = result.scores["samia"].to_numpy()
    assert roc_auc_score(memo.member, scores) > 0.8
    assert summary["attacks"]["samia"]["auc"] == pytest.approx(roc_auc_score(memo.member,
                                                                             scores))
    result.save(tmp_path / "run")  # no NaN in summary.json


def test_api_sampling_budgets_cache_and_refusals(memo, tmp_path, monkeypatch):
    texts = memo.texts[:5]
    with _serve(memo) as srv:
        api = OpenAICompletionsTarget(srv.base_url, "memo", max_texts=3)
        with pytest.raises(QueryBudgetError, match="budget of 3 texts"):
            api.sample_continuations(texts, n_samples=2)
        assert srv.stats.requests == 3
        api = OpenAICompletionsTarget(srv.base_url, "memo", max_generated_tokens=50)
        with pytest.raises(QueryBudgetError, match="budget of 50 generated tokens"):
            api.sample_continuations(texts, n_samples=10)  # 10 x (bytes + 2) > 50
        assert srv.stats.requests == 3  # refused before sending
        first = OpenAICompletionsTarget(srv.base_url, "memo", cache_dir=tmp_path)
        a = first.sample_continuations(texts, n_samples=3, seed=1)
        first.close()
        assert srv.stats.requests == 8
        again = OpenAICompletionsTarget(srv.base_url, "memo", cache_dir=tmp_path)
        b = again.sample_continuations([*texts[::-1], texts[0]], n_samples=3, seed=1)
        assert srv.stats.requests == 8 and again.queries == 0 and again.cache_hits == 6
        assert b.sample_text[:5][::-1] == a.sample_text
        again.sample_continuations(texts[:1], n_samples=4, seed=1)  # another request
        assert srv.stats.requests == 9
        again.close()
        real = srv.complete
        monkeypatch.setattr(srv, "complete", lambda body: {**real(body), "choices": [
            {"index": i, "text": "", "finish_reason": "stop"} for i in range(body["n"])]})
        with pytest.raises(OutputError, match="returned no text"):
            OpenAICompletionsTarget(srv.base_url, "memo").sample_continuations(texts[:1])
        monkeypatch.setattr(srv, "complete", lambda body: {**real(body), "choices": [
            {"index": 0, "text": " river", "finish_reason": "length"}]})
        with pytest.raises(OutputError, match="does not honour n"):
            OpenAICompletionsTarget(srv.base_url, "memo").sample_continuations(texts[:1])
        monkeypatch.setattr(srv, "complete", real)
        with pytest.raises(DataError, match="1 word"):
            OpenAICompletionsTarget(srv.base_url, "memo").sample_continuations(["river"])
        with pytest.raises(ConfigError, match="refuses sampling"):
            OpenAICompletionsTarget(srv.base_url, "memo").sample_continuations(
                texts[:1], n_samples=200)  # the server takes n <= 128


def test_cli_samia_through_a_text_only_endpoint(memo, tmp_path):
    from typer.testing import CliRunner

    from miaudit.cli import app

    path = tmp_path / "texts.jsonl"
    with open(path, "w") as f:
        for t, m in zip(memo.texts, memo.member, strict=True):
            f.write(json.dumps({"text": t, "member": bool(m)}) + "\n")
    with _serve(memo, prompt_logprobs="none") as srv:
        common = ["run-lm", "--data", str(path), "--member-column", "member", "--target",
                  srv.base_url, "--target-model", "memo", "--no-registry"]
        res = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "a")])
        assert res.exit_code != 0 and "--attacks samia" in res.output
        res = CliRunner().invoke(app, [*common, "--attacks", "samia", "--out",
                                       str(tmp_path / "b")])
        assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert set(summary["attacks"]) == {"samia"} and summary["attacks"]["samia"]["auc"] > 0.8
