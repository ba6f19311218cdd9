"""Dataset inference on AG News: was a set of texts used to train a tiny GPT-2?

A byte-level BPE tokenizer is trained on texts set aside; a tiny GPT-2 (built from a
config, nothing downloaded) on ``--members`` seeded random AG News texts (title.
description); the rest are non-members, split into a validation pool and a pool of
"innocent" suspect texts. Every text's features (:func:`~miaudit.audits.dataset_inference.
lm_features`, model-free :func:`~miaudit.audits.dataset_inference.text_statistics`) are
computed once; then, for suspect sets of several sizes drawn ``--draws`` times:

* members vs validation non-members: the share of draws with p < 0.05 (power), the median
  p-value, for the default test (5 splits, Bonferroni) and the paper's single split;
* non-members vs disjoint validation non-members: the false-positive rate, with its 95%
  Clopper-Pearson interval, and how often the distribution-shift check fired;
* a topic shift: Sports non-members as the suspect set against World non-members.

The tests on precomputed features are the same computation as
:func:`~miaudit.audits.dataset_inference.dataset_inference` (checked once on one draw).

    python benchmarks/dataset_inference.py [--members 500] [--epochs 1 4] [--draws 100]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from _results import table, write_section

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news_test.csv.gz"
CLASSES = {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}


def load(seed: int):
    import pandas as pd

    from miaudit.data import load_texts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_texts(DATA, text_column="1,2")
    label = pd.read_csv(DATA, header=None)[0].to_numpy()[ds.ids.astype(int)]
    order = np.random.default_rng(seed).permutation(len(ds.texts))
    return [ds.texts[i] for i in order], label[order]


def rate(hits: int, n: int) -> str:
    from miaudit.metrics import clopper_pearson

    lo, hi = clopper_pearson(hits, n)
    return f"{100 * hits / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def run_regime(epochs, model, texts, label, args, tokenizer, pools, sizes):
    from sklearn.metrics import roc_auc_score

    from miaudit.audits.dataset_inference import (
        dataset_inference,
        lm_features,
        split_test,
        text_statistics,
    )
    from miaudit.targets.lm import CausalLMTarget

    members, validation, innocent = pools
    target = CausalLMTarget(model, tokenizer, batch_size=32)
    every = np.r_[members, validation, innocent]
    t = time.perf_counter()
    names, feats = lm_features(target, [texts[i] for i in every])
    t_feat = time.perf_counter() - t
    _, stats = text_statistics([texts[i] for i in every])
    row_of = {int(i): r for r, i in enumerate(every)}

    def rows(idx):
        return np.array([row_of[int(i)] for i in idx])

    is_member = np.r_[np.ones(len(members)), np.zeros(len(validation) + len(innocent))]
    per_text_auc = roc_auc_score(is_member, feats[:, names.index("lm-loss")])
    best_auc = max(max(roc_auc_score(is_member, f), 1 - roc_auc_score(is_member, f))
                   for f in feats.T)

    # one draw through the whole library function: the same p-value as the array path
    rng = np.random.default_rng(1)
    s, v = rng.choice(members, 100, replace=False), rng.choice(validation, 100, replace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = dataset_inference(target, [texts[i] for i in s], [texts[i] for i in v], seed=5)
    assert np.isclose(full.p_value, split_test(feats[rows(s)], feats[rows(v)], seed=5).p_value,
                      rtol=1e-3, atol=1e-12), "the array path differs from dataset_inference"

    out = []
    t = time.perf_counter()
    for n in sizes:
        rec = {"p5": [], "p1": [], "null5": [], "null1": [], "shift_null": []}
        for d in range(args.draws):
            rng = np.random.default_rng(1000 * n + d)
            s = rng.choice(members, n, replace=False)
            v = rng.choice(validation, n, replace=False)
            x = rng.choice(innocent, n, replace=False)
            rec["p5"].append(split_test(feats[rows(s)], feats[rows(v)], seed=d).p_value)
            rec["p1"].append(split_test(feats[rows(s)], feats[rows(v)], seed=d,
                                        splits=1).p_value)
            null5 = split_test(feats[rows(x)], feats[rows(v)], seed=d).p_value
            rec["null5"].append(null5)
            rec["null1"].append(split_test(feats[rows(x)], feats[rows(v)], seed=d,
                                           splits=1).p_value)
            rec["shift_null"].append(split_test(stats[rows(x)], stats[rows(v)],
                                                seed=d).p_value)
        r = {k: np.array(val) for k, val in rec.items()}
        k = args.draws
        out.append({
            "texts per set": n,
            "power (5 splits)": rate(int((r["p5"] < 0.05).sum()), k),
            "median p (5 splits)": f"{np.median(r['p5']):.2g}",
            "power (1 split)": rate(int((r["p1"] < 0.05).sum()), k),
            "median p (1 split)": f"{np.median(r['p1']):.2g}",
            "FPR (5 splits)": rate(int((r["null5"] < 0.05).sum()), k),
            "FPR (1 split)": rate(int((r["null1"] < 0.05).sum()), k),
            "shift check fired (null)": rate(int((r["shift_null"] < 0.05).sum()), k),
        })
    t_tests = time.perf_counter() - t

    # a topic shift: Sports non-members as the suspect set, World non-members as validation
    sports = [i for i in np.r_[validation, innocent] if label[i] == 2][:100]
    world = [i for i in np.r_[validation, innocent] if label[i] == 1][:100]
    shifted = split_test(feats[rows(sports)], feats[rows(world)], seed=0)
    shift_check = split_test(stats[rows(sports)], stats[rows(world)], seed=0)
    nll = -feats[:, names.index("lm-loss")]
    return {
        "epochs": epochs, "rows": out,
        "per_text_auc": per_text_auc, "best_auc": best_auc,
        "nll_members": nll[: len(members)].mean(), "nll_non": nll[len(members):].mean(),
        "full_p": full.p_value, "t_feat": t_feat, "t_tests": t_tests,
        "n_features": len(names),
        "topic": (len(sports), len(world), shifted.p_value, shift_check.p_value,
                  shifted.aucs[shifted.median_split]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--non-members", type=int, default=1000,
                    help="half validation pool, half innocent suspect pool")
    ap.add_argument("--tokenizer-texts", type=int, default=300)
    ap.add_argument("--epochs", type=int, nargs="+", default=[1, 4],
                    help="audit the model after each of these epoch counts")
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 250])
    ap.add_argument("--draws", type=int, default=100)
    args = ap.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} not found (the shared AG News file is absent).")
        return
    import torch

    from miaudit.training.lm import LMRecipe, finetune_lm, train_tokenizer

    torch.manual_seed(0)
    t0 = time.perf_counter()
    texts, label = load(seed=0)
    n_tok, n_mem, n_non = args.tokenizer_texts, args.members, args.non_members
    tokenizer = train_tokenizer(texts[:n_tok], vocab_size=512)
    members = np.arange(n_tok, n_tok + n_mem)
    non = np.arange(n_tok + n_mem, n_tok + n_mem + n_non)
    pools = (members, non[: n_non // 2], non[n_non // 2 :])
    results, model, done, t_train = [], None, 0, 0.0
    for epochs in sorted(set(args.epochs)):
        recipe = LMRecipe(epochs=epochs - done, n_embd=args.embd, n_head=4)
        t = time.perf_counter()
        model = finetune_lm(recipe, tokenizer, [texts[i] for i in members], seed=epochs,
                            model=model)
        t_train += time.perf_counter() - t
        done = epochs
        results.append({**run_regime(epochs, model, texts, label, args, tokenizer, pools,
                                     args.sizes), "t_train": t_train})
    total = time.perf_counter() - t0

    shape = LMRecipe(n_embd=args.embd, n_head=4).describe().split("(")[1].split(";")[0]
    parts = [
        f"AG News (title. description), seeded shuffle: a byte-level BPE tokenizer "
        f"({len(tokenizer)} tokens) trained on {n_tok} texts set aside; a tiny GPT-2 "
        f"({shape}; AdamW lr 1e-3, batch 16) trained on {n_mem} member texts for "
        f"{min(args.epochs)} epoch(s), then "
        "further (the optimiser restarted) up to each epoch count below, and audited at each; "
        f"{n_non} non-members, half a validation pool and "
        f"half a pool of innocent suspect texts. For each suspect-set size, {args.draws} "
        "draws (the validation set as large as the suspect set): members against "
        "validation non-members (power = share of draws with p < 0.05) and innocent "
        "non-members against disjoint validation non-members (false-positive rate, 95% "
        "Clopper-Pearson interval). Default test: 5 random splits, Bonferroni; '1 split' is "
        "the paper's single split. 'Shift check fired' is the model-free test on the null "
        "draws. Features are computed once per text; the test on them is the computation of "
        "`dataset_inference` (checked on one draw of 100 members: the same p-value)."
    ]
    for r in results:
        n_s, n_w, p_shift, p_check, auc = r["topic"]
        parts.append(
            f"### After {r['epochs']} epoch(s)\n\n{r['n_features']} features; mean "
            f"NLL per token {r['nll_members']:.3f} on members, {r['nll_non']:.3f} on "
            f"non-members; per-text lm-loss AUC {r['per_text_auc']:.3f} (best single "
            f"feature, either direction, {r['best_auc']:.3f}). Training so far "
            f"{r['t_train']:.0f} s, features of "
            f"{n_mem + n_non} texts {r['t_feat']:.0f} s, the {len(args.sizes)} x "
            f"{args.draws} x 5 tests {r['t_tests']:.0f} s.\n\n"
            + table(r["rows"], list(r["rows"][0]))
            + f"\n\nTopic shift ({n_s} Sports vs {n_w} World non-members, none trained on): "
            f"dataset-inference p = {p_shift:.2g} (held-out AUC {auc:.3f}), "
            f"distribution-shift check p = {p_check:.2g}"
            + (" -> the result warns that the sets differ." if p_shift < 0.05 and
               p_check < 0.05 else ".")
        )
    parts.append(f"Whole benchmark: {total:.0f} s.")
    write_section("Dataset inference: AG News", "\n\n".join(parts))


if __name__ == "__main__":
    main()
