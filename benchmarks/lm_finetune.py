"""Fine-tuned language models on AG News: a base pretrained on public texts, then fine-tuned
on the members in full or through a LoRA adapter, audited end to end.

The texts set aside from the audit (``--public`` of them; neither members nor non-members)
train the byte-level BPE tokenizer and pretrain a small GPT-2 (the base, built from a
config, nothing downloaded). The target is the base fine-tuned on a seeded random half of
the game's texts, every weight (``finetune=full``) or a LoRA adapter on every linear layer
(``finetune=lora``); the base is the reference model of the ``reference`` attack and the
reference LMs of text LiRA are fine-tuned from it the same way. Reports, per fine-tuning
method, AUC and TPR at 1% FPR (95% intervals) of each attack, the blind baseline and the
wall time.

    python benchmarks/lm_finetune.py [--records 1000] [--public 1000] [--references 2]
        [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from _results import table, write_section

from miaudit.audits.lm import audit_lm

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news_test.csv.gz"


def _row(name: str, m: dict) -> dict:
    lo, hi = m["auc_ci"]
    tpr, ci = m["tpr_at_fpr"]["0.01"], m["tpr_at_fpr_ci"]["0.01"]
    return {"attack": name, "AUC": f"{m['auc']:.3f} [{lo:.3f}, {hi:.3f}]",
            "TPR@1%FPR": "n/a" if tpr is None
            else f"{100 * tpr:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1000, help="texts in the game")
    ap.add_argument("--public", type=int, default=1000,
                    help="texts set aside for the tokenizer and the base model")
    ap.add_argument("--base-epochs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs")
    ap.add_argument("--references", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's own choice)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not DATA.exists():
        raise SystemExit(f"AG News is not at {DATA} (../shared/data): nothing to measure.")
    common = {"n_embd": 128, "n_head": 4, "tokenizer_texts": args.public,
              "base_epochs": args.base_epochs, "epochs": args.epochs}
    # LoRA's lr: the one of 1e-3, 3e-3, 1e-2 with the lowest training loss on the members
    # (what the team fine-tuning would look at; no attack figure was read)
    methods = {"full": {"finetune": "full", "lr": 1e-3},
               "lora": {"finetune": "lora", "lr": 3e-3, "lora_rank": 8, "lora_alpha": 16}}
    sections, times, description = [], {}, ""
    for name, extra in methods.items():
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = audit_lm(data=DATA, text_column="1,2", n_records=args.records + args.public,
                         recipe={**common, **extra}, references=args.references,
                         seed=0).summary()
        times[name] = time.perf_counter() - t
        tgt = s["target"]
        description = tgt["base_model"]
        rows = [_row(a, m) for a, m in s["attacks"].items()]
        blind = s["blind_baseline"]
        rows.append({"attack": "blind baseline (texts only)",
                     "AUC": f"{blind['auc']:.3f} [{blind['auc_ci'][0]:.3f}, "
                            f"{blind['auc_ci'][1]:.3f}]", "TPR@1%FPR": "-"})
        sections.append(
            f"**{name}**: {tgt['description']}; mean NLL per token "
            f"{tgt['member_mean_nll']:.3f} on members, {tgt['non_member_mean_nll']:.3f} on "
            f"non-members; reference model: {tgt['reference_model']}; "
            f"{args.references} reference LMs fine-tuned from the base the same way. "
            f"Whole audit (base, target, references, attacks): {times[name]:.0f} s.\n\n"
            + table(rows, list(rows[0])))
    body = (
        f"{args.records} AG News texts (title. description) in the game, half members; "
        f"{args.public} further texts set aside (neither members nor non-members) train the "
        f"tokenizer and the base ({description}).\n\n" + "\n\n".join(sections)
        + f"\n\nLoRA / full wall time in this run: {times['lora'] / times['full']:.2f}.")
    write_section("Language-model audit: fine-tuned targets (AG News)", body)


if __name__ == "__main__":
    main()
