"""Token scores through an OpenAI-compatible completions API vs in-process, on AG News.

The lm_audit benchmark's GPT-2 (n_embd 128, 4 heads, 2 layers, 128 positions; built from a
config with a byte-level BPE tokenizer trained on 100 other texts; its weights do not
change the speed, so it is not trained) scores 200 AG News texts (title. description):
in-process (:class:`~miaudit.targets.lm.CausalLMTarget`, batches of 16, no distribution
statistics) and through the local server (:mod:`miaudit.testing.openai_server`, same
process, 127.0.0.1) with the ``openai`` client (:class:`~miaudit.targets.openai.
OpenAICompletionsTarget`), 16 prompts per request and 1. Best of ``--repeats`` wall times
(the machine is shared). Also checks that both give the same log-probabilities.

    python benchmarks/openai_target.py [--texts 200] [--repeats 3] [--threads 1]

Skips (exit 0) when ../shared/data/ag_news_test.csv.gz is absent.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _results import table, write_section

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news_test.csv.gz"


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (shared machine)")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} not found (the shared AG News file is absent).")
        return
    import torch

    from miaudit.data import load_texts
    from miaudit.targets.lm import CausalLMTarget
    from miaudit.targets.openai import OpenAICompletionsTarget
    from miaudit.testing.openai_server import OpenAICompletionsServer
    from miaudit.training import lm

    torch.set_num_threads(args.threads)
    texts = list(load_texts(DATA, text_column="1,2", n_records=args.texts + 100, seed=0).texts)
    aside, texts = texts[:100], texts[100:]
    tokenizer = lm.train_tokenizer(aside, vocab_size=512)
    recipe = lm.LMRecipe(n_embd=128, n_head=4)
    model = lm.build_lm(recipe, tokenizer, seed=0)
    model.eval()
    local = CausalLMTarget(model, tokenizer, batch_size=16, distribution=False)
    n_tokens = int(local.token_scores(texts).n_tokens.sum())
    rows = []
    t_local, want = best_time(lambda: local.token_scores(texts), args.repeats)
    rows.append({"route": "in-process (batches of 16)", "seconds": f"{t_local:.2f}",
                 "texts/s": f"{len(texts) / t_local:.0f}", "requests": 0,
                 "max abs diff": "-"})
    with OpenAICompletionsServer({"gpt2-tiny": (model, tokenizer)}) as server:
        for batch in (16, 1):
            def run(batch=batch):
                return OpenAICompletionsTarget(server.base_url, "gpt2-tiny",
                                               batch_size=batch).token_scores(texts)
            before = server.stats.requests
            t_api, got = best_time(run, args.repeats)
            diff = max(float(np.abs(g - w).max()) for g, w in
                       zip(got.logprobs, want.logprobs, strict=True))
            rows.append({"route": f"OpenAI API, {batch} prompt(s) per request",
                         "seconds": f"{t_api:.2f}", "texts/s": f"{len(texts) / t_api:.0f}",
                         "requests": (server.stats.requests - before) // args.repeats,
                         "max abs diff": f"{diff:.1e}"})
    body = (f"{len(texts)} AG News texts ({n_tokens} tokens, mean "
            f"{n_tokens / len(texts):.0f} per text); GPT-2 {recipe.n_layer} layers, "
            f"n_embd {recipe.n_embd}, {len(tokenizer)}-token BPE; {args.threads} torch "
            f"thread(s); best of {args.repeats}. The server runs in the same process over "
            "127.0.0.1 (no network latency): the difference is the protocol's cost (JSON, "
            "HTTP, the client), a floor for a real endpoint. 'max abs diff': largest "
            "difference of a token log-probability from the in-process one.\n\n"
            + table(rows, list(rows[0])))
    write_section("LM target through an OpenAI-compatible API", body)


if __name__ == "__main__":
    main()
