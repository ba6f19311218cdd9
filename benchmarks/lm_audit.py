"""Language-model audit on AG News: a tiny GPT-2 trained on half the texts, every attack,
the blind baseline and canary exposures.

A byte-level BPE tokenizer is trained on texts set aside from the audit (a tenth as many
as the game holds; neither members nor non-members), then a small GPT-2 (built from a
config, nothing downloaded) on a seeded random half of the game's texts (title +
description) with canaries inserted 1, 2, 4, 8 and 16 times; the other half are the
non-members. Reports AUC and TPR at 1% FPR (95% intervals) of each attack, the blind
baseline's AUC, each canary's exposure, and the wall time: of a first run (an empty model
cache: everything trained and scored) and of a re-run of the same audit (the trained LMs
and token scores read back from the cache), with the figures checked equal.

    python benchmarks/lm_audit.py [--records 4000] [--epochs 10] [--references 4]

``--records`` counts the texts in the game; ``--tokenizer-texts`` (default a tenth of it)
more are loaded for the tokenizer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from _results import table, write_section

from miaudit.audits.lm import audit_lm

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news_test.csv.gz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=4000, help="texts in the game")
    ap.add_argument("--tokenizer-texts", type=int, default=None,
                    help="texts set aside to train the tokenizer (default: records // 10)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--embd", type=int, default=128)
    ap.add_argument("--references", type=int, default=4)
    ap.add_argument("--canaries", type=int, default=5)
    args = ap.parse_args()
    n_tok = args.records // 10 if args.tokenizer_texts is None else args.tokenizer_texts
    recipe = {"epochs": args.epochs, "n_embd": args.embd, "n_head": 4,
              "tokenizer_texts": n_tok}
    settings = {"data": DATA, "text_column": "1,2", "n_records": args.records + n_tok,
                "recipe": recipe, "references": args.references, "canaries": args.canaries,
                "seed": 0}
    times = []
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as cache:
        warnings.simplefilter("ignore")
        for _ in range(2):  # an empty cache, then a re-run that finds everything stored
            t = time.perf_counter()
            result = audit_lm(**settings, cache_dir=cache)
            times.append(time.perf_counter() - t)
            if len(times) == 1:
                first = result
    elapsed, rerun = times
    s = result.summary()
    if not (result.scores.equals(first.scores) and s["attacks"] == first.summary()["attacks"]):
        raise SystemExit("the re-run from the cache gave other scores or figures")
    rows = []
    for name, m in s["attacks"].items():
        lo, hi = m["auc_ci"]
        tpr, ci = m["tpr_at_fpr"]["0.01"], m["tpr_at_fpr_ci"]["0.01"]
        rows.append({"attack": name, "AUC": f"{m['auc']:.3f} [{lo:.3f}, {hi:.3f}]",
                     "TPR@1%FPR": "n/a" if tpr is None
                     else f"{100 * tpr:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"})
    blind = s["blind_baseline"]
    rows.append({"attack": "blind baseline (texts only)",
                 "AUC": f"{blind['auc']:.3f} [{blind['auc_ci'][0]:.3f}, "
                        f"{blind['auc_ci'][1]:.3f}]", "TPR@1%FPR": "-"})
    canaries = [{"copies in training": c["repetitions"], "secret": c["secret"],
                 "exposure (bits)": f"{c['exposure']:.1f}",
                 "sampled estimate": f"{c['exposure_sampled']:.1f}",
                 "max": f"{c['max_exposure']:.1f}"} for c in s["canaries"]]
    tgt = s["target"]
    tok = tgt["tokenizer"]
    overlap = s["data"]["ngram_overlap"]
    body = (
        f"{s['data']['n_records_in_game']} AG News texts (title. description) in the game, "
        f"half members; byte-level BPE tokenizer ({tok['vocab_size']} tokens) trained on "
        f"{tok['n_texts']} further texts set aside from the audit (neither members nor "
        f"non-members); {tgt['description']}; mean NLL per token "
        f"{tgt['member_mean_nll']:.3f} on members, "
        f"{tgt['non_member_mean_nll']:.3f} on non-members; {args.references} reference LMs "
        "(text LiRA), each trained on a random half, in complementary pairs; "
        f"{args.canaries} canaries "
        f"(\"my PIN is d d d d d d\"). Whole audit: {elapsed:.0f} s with an empty model "
        f"cache; the same audit re-run, its trained LMs and token scores read from the "
        f"cache: {rerun:.0f} s ({elapsed / rerun:.1f}x faster; the same figures).\n\n"
        + table(rows, list(rows[0]))
        + "\n\nCanary exposure (log2 of 10^6 candidates minus log2 of the estimated rank; "
        "rank estimated from 2,000 sampled secrets with a fitted skew-normal):\n\n"
        + table(canaries, list(canaries[0]))
        + "\n\nBlind-baseline warning: " + (blind["warning"] or "none (the split is random, "
                                              "so the texts do not differ in distribution).")
        + f"\n\nWord {overlap['n']}-gram overlap: {overlap['n_non_members_sharing']} of "
        f"{overlap['n_non_members_scored']} non-members share a {overlap['n']}-gram with a "
        f"member (mean share of their {overlap['n']}-grams "
        f"{100 * (overlap['mean_share'] or 0):.2f}%), {overlap['n_near_duplicates']} "
        f"near-duplicates (>= {100 * overlap['near_duplicate_share']:.0f}%). DC-PDD at the "
        f"published cap {s['settings']['dc_pdd_cap']:g} (for large models), its reference "
        "corpus the tokenizer's texts."
    )
    write_section("Language-model audit: AG News", body)


if __name__ == "__main__":
    main()
