"""SaMIA on AG News: membership inference from sampled text alone, against LOSS.

A byte-level BPE tokenizer is trained on texts set aside (neither members nor non-members),
then the tiny recipe (:class:`miaudit.training.lm.LMRecipe`, defaults but the epochs) on a
seeded random half of the game's texts (title. description); the other half are the
non-members. SaMIA (Kaneko et al. 2024) prompts the model with the first half of each
text's tokens, samples K continuations (temperature 1, whole vocabulary) and scores the
mean ROUGE-1 recall of the true continuation's words (:mod:`miaudit.attacks.samia`); LOSS
reads the model's mean token log-probability, which SaMIA never sees. Reports AUC and TPR
at 1% FPR with 95% intervals (:func:`miaudit.metrics.evaluate`) and the times.

    python benchmarks/samia.py [--records 1000] [--epochs 10] [--samples 10]

With ``--api``, only the few-members setting (``--few``) runs, and SaMIA is measured both
in-process and through an OpenAI-compatible completions API (the local server
:mod:`miaudit.testing.openai_server` over the same model, queried with the ``openai``
client by :class:`~miaudit.targets.openai.OpenAICompletionsTarget`: one request per text
with ``n=K``; the prompt split by words, not tokens, and each sample cut to the true
continuation's word count), in its own section of RESULTS.md:

    python benchmarks/samia.py --api

Skips (exit 0) when ../shared/data/ag_news_test.csv.gz is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _results import table, write_section

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news_test.csv.gz"


def _row(name: str, scores: np.ndarray, member: np.ndarray, seconds: str) -> dict:
    from miaudit.metrics import evaluate

    m = evaluate(scores, member, fprs=(0.01,)).to_dict()
    lo, hi = m["auc_ci"]
    tpr, ci = m["tpr_at_fpr"]["0.01"], m["tpr_at_fpr_ci"]["0.01"]
    return {"attack": name, "AUC": f"{m['auc']:.3f} [{lo:.3f}, {hi:.3f}]",
            "TPR@1%FPR": "n/a" if tpr is None
            else f"{100 * tpr:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]",
            "mean score (m / nm)": f"{scores[member].mean():.4g} / {scores[~member].mean():.4g}",
            "time": seconds}


def _train(texts: list[str], tokenizer, epochs: int, seed: int):
    """A seeded random half of ``texts`` as members and the recipe trained on them:
    ``(member, recipe, model, seconds)``."""
    from miaudit.data import split_texts
    from miaudit.training.lm import LMRecipe, finetune_lm

    member = split_texts(len(texts), seed=seed)
    recipe = LMRecipe(epochs=epochs)
    t = time.perf_counter()
    model = finetune_lm(recipe, tokenizer, [x for x, m in zip(texts, member, strict=True) if m],
                        seed=seed)
    return member, recipe, model, time.perf_counter() - t


def _setting(texts: list[str], tokenizer, n_game: int, epochs: int, args) -> tuple[list, str]:
    """Train on a seeded random half of the first ``n_game`` texts; LOSS and SaMIA rows."""
    from miaudit.attacks.samia import samia_scores
    from miaudit.targets.lm import CausalLMTarget
    from miaudit.targets.sampling import sample_continuations

    texts = texts[:n_game]
    member, recipe, model, train_s = _train(texts, tokenizer, epochs, args.seed)
    target = CausalLMTarget(model, tokenizer, batch_size=16)
    t = time.perf_counter()
    loss = -target.token_scores(texts).nll()
    loss_s = time.perf_counter() - t
    t = time.perf_counter()
    samples = sample_continuations(target, texts, n_samples=args.samples,
                                   temperature=args.temperature, seed=args.seed)
    sample_s = time.perf_counter() - t
    ref_words = np.mean([len(x.split()) for x in samples.true_text])
    sample_words = np.mean([len(x.split()) for per in samples.sample_text for x in per])
    setting = {"members / epochs": f"{int(member.sum())} / {epochs}"}
    rows = [
        _row("LOSS (lm-loss; reads log-probabilities)", loss, member,
             f"{train_s:.0f} s train + {loss_s:.1f} s"),
        _row(f"SaMIA (K={args.samples}, ROUGE-1 recall, lowercased)", samia_scores(samples),
             member, f"{sample_s:.0f} s sampling ({ref_words:.1f} / {sample_words:.1f} "
                     "words true / sampled)"),
        _row("SaMIA, case-sensitive (the authors' script)",
             samia_scores(samples, lowercase=False), member, "same samples"),
        _row("SaMIA*zlib", samia_scores(samples, zlib=True), member, "same samples"),
    ]
    return [{**setting, **r} for r in rows], recipe.describe()


def _api_setting(texts: list[str], tokenizer, n_game: int, epochs: int, args) -> tuple:
    """The few-members setting: SaMIA in-process and through the API on one model."""
    from miaudit.attacks.samia import samia_scores
    from miaudit.targets.lm import CausalLMTarget
    from miaudit.targets.openai import OpenAICompletionsTarget
    from miaudit.targets.sampling import sample_continuations
    from miaudit.testing.openai_server import OpenAICompletionsServer

    texts = texts[:n_game]
    member, recipe, model, train_s = _train(texts, tokenizer, epochs, args.seed)
    model.eval()
    target = CausalLMTarget(model, tokenizer, batch_size=16)
    rows = []

    def add(route: str, samples, seconds: float, extra: str) -> None:
        words = np.mean([len(x.split()) for per in samples.sample_text for x in per])
        for name, zlib_variant in (("SaMIA", False), ("SaMIA*zlib", True)):
            r = _row(f"{name}, {route}", samia_scores(samples, zlib=zlib_variant), member,
                     f"{seconds:.0f} s ({len(texts) / seconds:.1f} texts/s){extra}"
                     if not zlib_variant else "same samples")
            r["sampled words"] = f"{words:.1f}" if not zlib_variant else ""
            rows.append(r)

    t = time.perf_counter()
    local = sample_continuations(target, texts, n_samples=args.samples,
                                 temperature=args.temperature, seed=args.seed)
    add("in-process (split by tokens)", local, time.perf_counter() - t, "")
    with OpenAICompletionsServer({"gpt2-tiny": (model, tokenizer)}) as server:
        api = OpenAICompletionsTarget(server.base_url, "gpt2-tiny")
        t = time.perf_counter()
        remote = sample_continuations(api, texts, n_samples=args.samples,
                                      temperature=args.temperature, seed=args.seed)
        seconds = time.perf_counter() - t
        add("OpenAI API (split by words)", remote, seconds,
            f"; {api.requests} requests, {api.completion_tokens} tokens generated")
    agree = np.mean([a == b for a, b in zip(local.true_text, remote.true_text, strict=True)])
    return rows, recipe.describe(), train_s, agree, member


def api_main(args, texts, tokenizer, start: float) -> None:
    n, epochs = (int(x) for x in (args.few or "100:100").split(":"))
    rows, recipe, train_s, agree, member = _api_setting(texts, tokenizer, n, epochs, args)
    elapsed = time.perf_counter() - start
    body = (
        f"AG News texts (title. description): {n} texts, a seeded random half ("
        f"{int(member.sum())}) the members, trained {epochs} epochs ({train_s:.0f} s); "
        f"byte-level BPE tokenizer ({len(tokenizer)} tokens) trained on "
        f"{args.tokenizer_texts} further texts set aside; {recipe}; torch on {args.threads} "
        f"thread(s). SaMIA, K={args.samples}, temperature {args.temperature:g}, on one "
        "model: in-process (miaudit.targets.sampling: the prompt is the first half of each "
        "text's tokens, samples as long as the true continuation in tokens) and through the "
        "OpenAI completions API (the local server miaudit.testing.openai_server in the same "
        "process over 127.0.0.1, the openai client; one request per text with n=K, a seed "
        "per text, max_tokens = UTF-8 bytes + 2 of the true continuation; the prompt is "
        "the first half of the text's words and each sample is cut to the true "
        "continuation's word count). The two splits give the same true continuation for "
        f"{100 * agree:.0f}% of the texts. The server decodes with the key-value cache "
        "while a sequence fits the model's context (past it, the window is recomputed at "
        "every step), in Python, and generates up to max_tokens, so its texts/s is a "
        "floor, not an inference server's speed. AUC with DeLong 95% interval; TPR at 1% "
        f"FPR with its 95% interval. Whole run {elapsed:.0f} s.\n\n" + table(rows, list(rows[0])))
    write_section("SaMIA through an OpenAI-compatible API vs in-process: AG News", body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1000, help="texts in the game")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--few", default="100:100",
                    help="RECORDS:EPOCHS of a second setting with few members trained for "
                         "many epochs, where the tiny model memorises ('' to skip)")
    ap.add_argument("--samples", type=int, default=10, help="K continuations per text")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--tokenizer-texts", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (tiny models run fastest on one, and far faster "
                         "on a shared machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--api", action="store_true",
                    help="only the --few setting, SaMIA in-process and through the API")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} not found (shared benchmark data absent)")
        sys.exit(0)
    import torch

    from miaudit.data import load_texts, set_aside_texts
    from miaudit.training.lm import train_tokenizer

    torch.set_num_threads(args.threads)
    settings = [(args.records, args.epochs)]
    if args.api:
        settings = [tuple(int(x) for x in (args.few or "100:100").split(":"))]
    elif args.few:
        settings.append(tuple(int(x) for x in args.few.split(":")))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_texts(DATA, text_column="1,2",
                        n_records=max(n for n, _ in settings) + args.tokenizer_texts,
                        seed=args.seed)
    aside = set_aside_texts(ds, args.tokenizer_texts, seed=args.seed)
    tokenizer = train_tokenizer(list(ds.subset(aside).texts), vocab_size=512)
    texts = list(ds.subset(~aside).texts)
    if args.api:
        api_main(args, texts, tokenizer, start)
        return
    rows = []
    for n, epochs in settings:
        r, recipe = _setting(texts, tokenizer, n, epochs, args)
        rows += r
    elapsed = time.perf_counter() - start
    body = (
        "AG News texts (title. description): in each setting a seeded random half of the "
        "game's texts are the members, the other half the non-members; byte-level BPE "
        f"tokenizer ({len(tokenizer)} tokens) trained on {args.tokenizer_texts} further "
        "texts set aside (neither members nor non-members); "
        f"{recipe.replace(f'{settings[-1][1]} epochs', 'epochs as listed')}; torch on "
        f"{args.threads} thread(s). SaMIA prompts with the first half of each text's tokens "
        f"and samples {args.samples} continuations as long as the true one (temperature "
        f"{args.temperature:g}, whole vocabulary, stopped at EOS). AUC with DeLong 95% "
        f"interval; TPR at 1% FPR with its 95% interval. Whole run {elapsed:.0f} s.\n\n"
        + table(rows, list(rows[0]))
    )
    write_section("SaMIA (sampled text only) vs LOSS: AG News", body)


if __name__ == "__main__":
    main()
