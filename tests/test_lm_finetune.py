"""Fine-tuned language models: a base pretrained on set-aside texts, then fine-tuned on the
members in full or through a LoRA adapter (peft); adapter folders loaded on their base;
the base as reference model; reference LMs fine-tuned from the base the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("transformers")
pytest.importorskip("peft")

import torch

from miaudit.audits import lm as audit_module
from miaudit.audits.lm import audit_lm
from miaudit.cli import app
from miaudit.errors import ConfigError, DataError
from miaudit.targets.lm import CausalLMTarget, adapter_base, load_causal_lm
from miaudit.training import lm as training
from miaudit.training.lm import (
    LMRecipe,
    finetune_lm,
    is_adapter,
    pretrain_base,
    save_lm,
    train_tokenizer,
)

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 64, "block_size": 64,
        "vocab_size": 300, "batch_size": 8, "base_epochs": 30, "base_lr": 3e-3}
WORDS = ("river", "stone", "cloud", "lamp", "garden", "window", "engine", "copper", "violet",
         "harbor", "pencil", "marble", "forest", "candle", "ticket", "orbit", "saddle", "meadow")


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(6, 10))) + f" {i}" for i in range(n)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A base pretrained on 20 public texts, a LoRA adapter and a full fine-tune of it on
    20 members, saved; and 20 non-members."""
    root = tmp_path_factory.mktemp("finetune")
    public, members, others = _texts(20, 1), _texts(20, 2), _texts(20, 3)
    tok = train_tokenizer(public, vocab_size=300)
    base = pretrain_base(LMRecipe(**TINY, lr=3e-3), tok, public, seed=0)
    lora = finetune_lm(LMRecipe(**TINY, epochs=30, lr=1e-2, finetune="lora"), tok, members,
                       seed=1, model=base)
    full = finetune_lm(LMRecipe(**TINY, epochs=30, lr=3e-3, finetune="full"), tok, members,
                       seed=1, model=base)
    save_lm(base, tok, root / "base")
    save_lm(lora, tok, root / "adapter", base=root / "base")
    save_lm(full, tok, root / "full")
    with open(root / "texts.jsonl", "w") as f:
        for i, text in enumerate(members + others):
            f.write(json.dumps({"text": text, "id": f"t{i}", "member": i < 20}) + "\n")
    return {"root": root, "tok": tok, "base": base, "lora": lora, "full": full,
            "members": members, "others": others}


def test_lora_trains_the_adapter_only_and_leaves_the_base_unchanged(folders):
    base, lora = folders["base"], folders["lora"]
    assert is_adapter(lora) and not is_adapter(base)
    trainable = {n: p for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # every linear layer of the block: c_attn 32 -> 96, attn.c_proj 32 -> 32, c_fc 32 -> 128,
    # mlp.c_proj 128 -> 32; r * (n_in + n_out) weights each
    assert sum(p.numel() for p in trainable.values()) == 8 * (128 + 64 + 160 + 160)
    inner = {k.replace(".base_layer", ""): v
             for k, v in lora.get_base_model().state_dict().items() if "lora_" not in k}
    assert inner.keys() == base.state_dict().keys()
    assert all(torch.equal(v, inner[k]) for k, v in base.state_dict().items())
    # the fine-tune learnt the members: their NLL fell more than the non-members'
    texts = folders["members"] + folders["others"]
    before = CausalLMTarget(base, folders["tok"]).token_scores(texts).nll()
    after = CausalLMTarget(lora, folders["tok"]).token_scores(texts).nll()
    drop = before - after
    assert drop[:20].mean() > drop[20:].mean() + 0.2


def test_adapter_folder_round_trips_on_its_base(folders):
    root = folders["root"]
    config = json.loads((root / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    assert adapter_base(root / "adapter") == root.resolve() / "base"
    assert adapter_base(root / "full") is None
    model, tok = load_causal_lm(root / "adapter")
    texts = folders["members"][:5] + folders["others"][:5]
    loaded = CausalLMTarget(model, tok).token_scores(texts).nll()
    in_memory = CausalLMTarget(folders["lora"], folders["tok"]).token_scores(texts).nll()
    np.testing.assert_allclose(loaded, in_memory, atol=1e-5)
    with pytest.raises(ConfigError, match="base=FOLDER"):
        save_lm(folders["lora"], folders["tok"], root / "nowhere")


def test_adapter_errors_say_what_is_missing(folders, tmp_path):
    root = folders["root"]
    moved = tmp_path / "adapter"
    moved.mkdir()
    config = json.loads((root / "adapter" / "adapter_config.json").read_text())
    (moved / "adapter_model.safetensors").write_bytes(
        (root / "adapter" / "adapter_model.safetensors").read_bytes())
    (moved / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path":
                                                           "gpt2"}))
    with pytest.raises(DataError, match=r"offline.*--base-model"):
        load_causal_lm(moved)
    model, _ = load_causal_lm(moved, base=root / "base")  # the base given explicitly
    assert not is_adapter(model)
    (moved / "adapter_model.safetensors").rename(moved / "adapter_model.bin")
    with pytest.raises(DataError, match=r"pickled adapter_model\.bin"):
        load_causal_lm(moved, base=root / "base")
    with pytest.raises(ConfigError, match="finetune must be one of"):
        LMRecipe(finetune="qlora")
    with pytest.raises(ConfigError, match="lora_rank"):
        LMRecipe(lora_rank=0)


def test_recipe_fine_tunes_from_a_pretrained_base(tmp_path):
    path = tmp_path / "texts.jsonl"
    with open(path, "w") as f:
        for text in _texts(60, 4):
            f.write(json.dumps({"text": text}) + "\n")
    recipe = {**TINY, "finetune": "lora", "epochs": 10, "lr": 1e-2, "tokenizer_texts": 20}
    result = audit_lm(data=path, recipe=recipe, references=2,
                      attacks=["lm-loss", "reference", "lira-online"], blind=False)
    s = result.summary()
    target = s["target"]
    assert target["base_model"] == "gpt2 recipe pretrained 30 epochs on the 20 set-aside texts"
    assert target["reference_model"] == "the base model"
    assert "LoRA adapter, r=8" in target["description"]
    assert target["member_mean_nll"] < target["non_member_mean_nll"]
    # the base (never saw a member) is the reference model
    assert s["attacks"]["reference"]["auc"] > 0.8
    assert s["attacks"]["lira-online"]["auc"] > 0.6
    with pytest.raises(ConfigError, match="finetune=lora"):
        audit_lm(data=path, recipe=recipe, base_model=tmp_path)


def test_adapter_folder_audit_uses_its_base(folders, monkeypatch):
    root = folders["root"]
    seen = []
    real = training.finetune_lm

    def spy(recipe, tok, texts, **kw):
        seen.append((recipe.finetune, recipe.lora_rank, kw.get("model") is not None))
        return real(recipe, tok, texts, **kw)

    monkeypatch.setattr(training, "finetune_lm", spy)
    s = audit_lm(data=root / "texts.jsonl", member_column="member", model=root / "adapter",
                 recipe={"epochs": 3, "lr": 1e-2, "batch_size": 8}, references=2,
                 attacks=["lm-loss", "reference", "neighbour", "lira-offline"],
                 blind=False).summary()
    target = s["target"]
    assert target["adapter"]["peft_type"] == "LORA" and target["adapter"]["r"] == 8
    assert target["base_model"] == str(root.resolve() / "base")
    assert target["reference_model"] == "the base model"
    # the reference LMs are LoRA fine-tunes of the base, of the adapter's rank
    assert seen == [("lora", 8, True)] * 2
    assert s["attacks"]["reference"]["auc"] > 0.7
    assert s["attacks"]["neighbour"]["options"]["proposer"] == "the base model"
    assert s["attacks"]["neighbour"]["knowledge"] == ["queries", "references"]
    # a full fine-tune with its base given: full reference fine-tunes
    seen.clear()
    s = audit_lm(data=root / "texts.jsonl", member_column="member", model=root / "full",
                 base_model=root / "base", recipe={"epochs": 1}, references=2,
                 attacks=["reference", "lira-online"], blind=False).summary()
    assert seen == [("full", 8, True)] * 2 and s["target"]["base_model"] == str(root / "base")
    with pytest.raises(ConfigError, match="--base-model"):
        audit_lm(data=root / "texts.jsonl", member_column="member", model=root / "full",
                 recipe={"finetune": "full"}, references=2, blind=False)
    assert audit_module.ADAPTER_CONFIG == "adapter_config.json"


def test_cli_audits_an_adapter_folder(folders):
    root = folders["root"]
    out = root / "run"
    res = CliRunner().invoke(app, [
        "run-lm", "--data", str(root / "texts.jsonl"), "--member-column", "member",
        "--model", str(root / "adapter"), "--base-model", str(root / "base"),
        "--attacks", "lm-loss,reference", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"]["base_model"] == str(root / "base")
    assert set(summary["attacks"]) == {"lm-loss", "reference"}
