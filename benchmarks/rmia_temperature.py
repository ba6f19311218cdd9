"""RMIA's softmax temperature: why ``Pr(x | model)`` is taken at temperature 2.

Location30, tanh MLP 446-256-128-30, 16 references, 4 targets (online game). The models
are trained once (a temporary model cache) and RMIA is scored at each temperature; LiRA
online is shown for comparison.

    python benchmarks/rmia_temperature.py
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from _results import table, write_section

import miaudit

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "location30.npz"


def pct(v):
    return "n/a" if v is None else f"{100 * v:.1f}%"


def main() -> None:
    warnings.simplefilter("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for temperature in (1.0, 2.0, 4.0, 8.0):
            result = miaudit.audit(data=DATA, model="mlp", references=16, targets=4,
                                   attacks=["lira-online", "rmia-online", "rmia-offline"],
                                   rmia_temperature=temperature, cache_dir=cache)
            a = result.summary()["attacks"]
            rows.append({
                "temperature": f"{temperature:g}",
                "rmia-online AUC": f"{a['rmia-online']['auc']:.3f}",
                "rmia-online TPR@0.1%": pct(a["rmia-online"]["tpr_at_fpr"]["0.001"]),
                "rmia-offline AUC": f"{a['rmia-offline']['auc']:.3f}",
                "rmia-offline TPR@0.1%": pct(a["rmia-offline"]["tpr_at_fpr"]["0.001"]),
                "lira-online AUC": f"{a['lira-online']['auc']:.3f}",
                "lira-online TPR@0.1%": pct(a["lira-online"]["tpr_at_fpr"]["0.001"]),
            })
    body = ("Location30, 16 references, 4 targets pooled (LiRA does not use the "
            "temperature; it is repeated as the yardstick).\n\n" + table(rows, list(rows[0])))
    write_section("RMIA temperature (Location30)", body)


if __name__ == "__main__":
    main()
