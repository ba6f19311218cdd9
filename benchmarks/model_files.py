"""Querying a model file: rows per second through OnnxTarget against the estimator in memory.

A logistic regression and an MLP (64-128-10) are fitted on scikit-learn's digits
(standardised, as miaudit loads them), exported with skl2onnx (ZipMap on, the default, and
off) and saved with skops. N rows (digits resampled with Gaussian noise) are scored by the
estimator in memory (SklearnTarget, predict_proba), by OnnxTarget (onnxruntime, CPU
provider, batches of 4096) and by the skops file's estimator; each runs ``--repeats`` times
and the best is kept. Every answer is checked against the in-memory probabilities.

    python benchmarks/model_files.py [--rows 16384] [--repeats 20]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import skops.io as sio
from _results import best_of, table, write_section
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from miaudit.data import load_dataset
from miaudit.targets import SklearnTarget
from miaudit.targets.files import load_model_file


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    ds = load_dataset("digits")
    rng = np.random.default_rng(0)
    X = (ds.X[rng.integers(0, ds.n_records, args.rows)]
         + rng.normal(scale=0.1, size=(args.rows, ds.n_features))).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP convergence
        models = {
            "logistic regression": LogisticRegression(max_iter=500).fit(ds.X, ds.y),
            "MLP 64-128-10": MLPClassifier((128,), max_iter=100, random_state=0).fit(ds.X,
                                                                                      ds.y),
        }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, est in models.items():
            local_s, local = best_of(args.repeats,
                                     lambda e=est: SklearnTarget(e, ds.classes).outputs(X))
            targets = {}
            for zipmap in (False, True):
                path = Path(tmp) / f"m{zipmap}.onnx"
                onx = to_onnx(est, X[:1], options={id(est): {"zipmap": zipmap}})
                path.write_bytes(onx.SerializeToString())
                targets[f"ONNX, ZipMap {'on' if zipmap else 'off'}"] = load_model_file(
                    path, classes=ds.classes)
            sio.dump(est, Path(tmp) / "m.skops")
            targets["skops"] = load_model_file(Path(tmp) / "m.skops", classes=ds.classes)
            rows.append({"model": label, "target": "in memory (predict_proba)",
                         "rows/s": f"{args.rows / local_s:,.0f}",
                         "ms": f"{local_s * 1000:.1f}", "x in-memory time": "1.00"})
            for name, target in targets.items():
                seconds, out = best_of(args.repeats, lambda t=target: t.outputs(X))
                np.testing.assert_allclose(out.values, local.values, rtol=0, atol=1e-5)
                rows.append({"model": label, "target": name,
                             "rows/s": f"{args.rows / seconds:,.0f}",
                             "ms": f"{seconds * 1000:.1f}",
                             "x in-memory time": f"{seconds / local_s:.2f}"})
                print(rows[-1], flush=True)
    body = (
        f"{args.rows:,} rows of {ds.n_features} features (digits resampled with noise), "
        "models fitted on digits; best of "
        f"{args.repeats}. OnnxTarget runs onnxruntime's CPU provider on float32 batches of "
        "4096 (default threads); the in-memory estimator runs predict_proba on the same "
        "float32 rows. Every answer equals the in-memory probabilities within 1e-5.\n\n"
        + table(rows, ["model", "target", "rows/s", "ms", "x in-memory time"])
        + "\n\nZipMap (skl2onnx's default) returns one Python dict per row, which the "
        "target turns back into a matrix: export with `options={id(model): {'zipmap': "
        "False}}` for speed. The machine is shared with other work, so single runs vary."
    )
    write_section("Model files: rows per second through ONNX and skops", body)


if __name__ == "__main__":
    main()
