"""Extraction test on AG News: how much of its training text does a tiny GPT-2 reproduce
from a text's beginning, members against non-members?

A byte-level BPE tokenizer is trained on 200 texts set aside from the games (neither
members nor non-members), then the tiny recipe (:class:`miaudit.training.lm.LMRecipe`,
defaults but the epochs) on a seeded random half of the game's texts (title. description);
the other half are the non-members. Each model is prompted with the first P tokens of every
text long enough, decodes S tokens greedily, and the exact and near-exact (token edit
distance <= 10% of S) extraction fractions of members and non-members are reported with 95%
Clopper-Pearson intervals and the one-sided Fisher p-value (:mod:`miaudit.audits.extraction`).
A last setting trains on a few members for many epochs, where the tiny model does memorise.

    python benchmarks/extraction.py [--records 1000] [--epochs 3 10] [--few 100:100]

Skips (exit 0) when ../shared/data/ag_news_test.csv.gz is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from _results import table, write_section

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news_test.csv.gz"


def _pct(k: int, n: int, ci) -> str:
    if not n:
        return "n/a"
    return f"{k}/{n} = {100 * k / n:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _setting(texts: list[str], tokenizer, n_game: int, epochs: int, lengths,
             seed: int) -> tuple[list[dict], str]:
    """Train on a seeded random half of the first ``n_game`` texts and run the extraction
    test at each (prefix, suffix)."""
    from miaudit.audits.extraction import extraction_test
    from miaudit.data import split_texts
    from miaudit.targets.lm import CausalLMTarget
    from miaudit.training.lm import LMRecipe, finetune_lm

    texts = texts[:n_game]
    member = split_texts(len(texts), seed=seed)
    recipe = LMRecipe(epochs=epochs)
    t = time.perf_counter()
    model = finetune_lm(recipe, tokenizer, [x for x, m in zip(texts, member, strict=True) if m],
                        seed=seed)
    train_s = time.perf_counter() - t
    target = CausalLMTarget(model, tokenizer, batch_size=64)
    rows = []
    for prefix, suffix in lengths:
        t = time.perf_counter()
        d = extraction_test(target, texts, member, prefix_tokens=prefix, suffix_tokens=suffix,
                            seed=seed).to_dict()
        test_s = time.perf_counter() - t
        g, diff = d["groups"], d["difference"]
        m, nm = g["members"], g["non_members"]
        rows.append({
            "members / epochs": f"{int(member.sum())} / {epochs}",
            "P / S": f"{prefix} / {suffix}",
            "tested (m / nm)": f"{m['n_evaluated']} / {nm['n_evaluated']}",
            "exact, members": _pct(m["exact"], m["n_evaluated"], m["exact_ci"]),
            "exact, non-members": _pct(nm["exact"], nm["n_evaluated"], nm["exact_ci"]),
            "near-exact, members": _pct(m["near_exact"], m["n_evaluated"],
                                        m["near_exact_ci"]),
            "near-exact, non-members": _pct(nm["near_exact"], nm["n_evaluated"],
                                            nm["near_exact_ci"]),
            "mean match run (m / nm)": f"{m['mean_match_tokens']:.1f} / "
                                       f"{nm['mean_match_tokens']:.1f}",
            "p exact / near": f"{diff['exact_p_value']:.2g} / "
                              f"{diff['near_exact_p_value']:.2g}",
            "verdict": d["verdict"]["level"],
            "time (train + test)": f"{train_s:.0f} s + {test_s:.1f} s",
        })
    return rows, recipe.describe()


def _lengths(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        p, s = part.split(":")
        out.append((int(p), int(s)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1000, help="texts in the game")
    ap.add_argument("--epochs", type=int, nargs="+", default=[3, 10])
    ap.add_argument("--few", default="100:100",
                    help="RECORDS:EPOCHS of a last setting with few members trained for "
                         "many epochs ('' to skip)")
    ap.add_argument("--lengths", default="32:32,16:16", help="PREFIX:SUFFIX,...")
    ap.add_argument("--tokenizer-texts", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (tiny models run fastest on one, and far faster "
                         "on a shared machine)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} not found (shared benchmark data absent)")
        sys.exit(0)
    import torch

    from miaudit.data import load_texts, set_aside_texts
    from miaudit.training.lm import train_tokenizer

    torch.set_num_threads(args.threads)
    lengths = _lengths(args.lengths)
    settings = [(args.records, e) for e in args.epochs]
    if args.few:
        n, e = (int(x) for x in args.few.split(":"))
        settings.append((n, e))
    n_load = max(n for n, _ in settings) + args.tokenizer_texts
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_texts(DATA, text_column="1,2", n_records=n_load, seed=args.seed)
        aside = set_aside_texts(ds, args.tokenizer_texts, seed=args.seed)
        tokenizer = train_tokenizer(list(ds.subset(aside).texts), vocab_size=512)
        texts = list(ds.subset(~aside).texts)
        rows = []
        for n, epochs in settings:
            r, recipe = _setting(texts, tokenizer, n, epochs, lengths, args.seed)
            rows += r
    elapsed = time.perf_counter() - t
    columns = list(rows[0])
    body = (
        "AG News texts (title. description): in each setting a seeded random half of the "
        "game's texts are the members, the other half the non-members; byte-level BPE "
        f"tokenizer ({len(tokenizer)} tokens) trained on {args.tokenizer_texts} further "
        "texts set aside (neither members nor non-members); "
        f"{recipe.replace(f'{settings[-1][1]} epochs', 'epochs as listed')}; torch on "
        f"{args.threads} thread(s). Each text with at least P + S tokens is prompted with "
        "its first P tokens (after the start token) and S tokens are decoded greedily: "
        "exact = all S match, near-exact = token edit distance <= 10% of S; 95% "
        "Clopper-Pearson intervals; p: one-sided Fisher exact test, members > non-members; "
        "verdict Holm-corrected over the two tests at 0.05. Whole run: "
        f"{elapsed:.0f} s.\n\n"
        + table(rows, columns)
    )
    write_section("Extraction test: AG News", body)


if __name__ == "__main__":
    main()
