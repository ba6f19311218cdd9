"""miaudit side by side with IBM's Adversarial Robustness Toolbox (ART), same models, same
records.

For each data set (Location30, Adult, a CIFAR-10 (JPEG-q75) subset):

1. One miaudit reference audit (``miaudit.audit(model=recipe, references=K, targets=1)``)
   trains the target (model 0 of the online game) and its K references into a fresh model
   cache. The target's weights are copied from the cache to ``OUT/<data>/target.safetensors``
   and rebuilt as a torch module; its logits are checked against the audit's own
   (``signals["logits"][0]``), so ART attacks exactly the model miaudit audited.
2. The target's records (``signals["record_ids"]``, membership ``signals["membership"][0]``)
   are split, within members and within non-members, into an attack-training half (ART's
   ``fit`` / ``calibrate_distance_threshold`` data: records of known membership, as in ART's
   membership-inference notebook, ``attack_train_ratio = 0.5``) and an evaluation half.
   Every metric of both tools is computed on the evaluation half only, with
   ``miaudit.metrics.evaluate`` (95% intervals).
3. ART, with the target wrapped in its ``PyTorchClassifier`` (``predict`` and
   ``compute_loss`` count the rows they are asked for = queries to the target):
   ``MembershipInferenceBlackBox`` with attack models nn, rf and gb on predictions and on
   losses (the best of the six reported, all six listed), ``MembershipInferenceBlackBoxRuleBased``
   and ``LabelOnlyDecisionBoundary`` (HopSkipJump with ART's defaults, supervised
   calibration, on a small subset because each record costs ~25,000 queries).
4. miaudit's attacks, each in its own audit run on the cached models (so its wall time is
   the attack's, not the training's), scores restricted to the evaluation records.

Writes one section of benchmarks/RESULTS.md per data set, and under ``--out`` the targets,
the record split and every score of both tools (``scores.parquet``).

    .venv/bin/pip install -r benchmarks/peers/requirements.txt
    python benchmarks/peers/compare_art.py [--data location30,adult,cifar10] [--out runs/peers]
        [--references K] [--hsj-calibration N] [--hsj-eval N] [--cifar-records 2000]
        [--adult-records 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_results.py

from _results import table, write_section

import miaudit
from miaudit.data import Dataset, load_dataset
from miaudit.metrics import AttackMetrics, evaluate
from miaudit.training import build_module, make_recipe

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Case:
    title: str
    path: Path
    label_column: str | None
    recipe: str
    references: int
    n_records: int | None
    #: ART's label-only attack (HopSkipJump, ~25,000 queries per record): members (and as
    #: many non-members) to calibrate on, and to score; sized to what each model's speed
    #: allows on 2 CPU cores (about 1.5, 0.4 and 6 s per record).
    hsj_calibration: int
    hsj_eval: int


CASES = {
    "location30": Case("Location30", SHARED / "location30.npz", None, "mlp", 8, None, 20, 50),
    "adult": Case("Adult", SHARED / "adult.csv.gz", "income", "mlp", 8, 10_000, 50, 150),
    "cifar10": Case("CIFAR-10 (JPEG-q75) subset", SHARED / "cifar10_jpg_q75_bytes.npz", None,
                    "cnn", 4, 2_000, 10, 15),
}

#: miaudit attacks on the released logits (reference-free, then with references).
LOGIT_ATTACKS = ["loss", "mentr", "correctness", "class-mentr", "lira-online", "lira-offline",
                 "rmia-online", "rmia-offline", "shokri"]
#: miaudit's label-only attacks (exposure "label": queries on perturbed copies).
LABEL_ATTACKS = ["label-augment", "label-boundary", "label-augment-learned"]
ART_BLACK_BOX = [(i, m) for i in ("prediction", "loss") for m in ("nn", "rf", "gb")]
#: HopSkipJump evaluates candidate points in batches of this many rows. Only the speed
#: depends on it (ART's default is 64), not the points it queries.
HSJ_BATCH = 1024

KNOWS = {
    "art-bb": "target's membership of the attack-training half",
    "art-rule": "nothing (labels and true labels)",
    "art-lobd": "calibration records of known membership",
    "loss": "nothing", "mentr": "nothing", "correctness": "nothing",
    "class-mentr": "K references (per-class thresholds fitted on them)",
    "lira-online": "K references (IN and OUT)", "rmia-online": "K references (IN and OUT)",
    "lira-offline": "K references (OUT only)", "rmia-offline": "K references (OUT only)",
    "shokri": "K references",
    "label-augment": "nothing", "label-boundary": "nothing",
    "label-augment-learned": "K references",
}


# --------------------------------------------------------------------------- the target


def target_from_cache(cache: Path) -> dict[str, np.ndarray]:
    """The state dict of model 0 (the target) of a one-target audit, from its cache."""
    from safetensors.numpy import load_file

    for meta_file in sorted(cache.glob("*/*/meta.json")):
        if json.loads(meta_file.read_text())["model_index"] == 0:
            return load_file(str(meta_file.parent / "weights.safetensors"))
    raise RuntimeError(f"No target model (model_index 0) in the cache {cache}.")


def load_target(path: Path, recipe_name: str, n_features: int, n_classes: int):
    """The target as a torch module, from its saved safetensors file."""
    import torch
    from safetensors.numpy import load_file

    module = build_module(make_recipe(recipe_name), n_features, n_classes)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in load_file(str(path)).items()})
    return module.eval()


def logits_of(module, X: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(X[i:i + 2048])).numpy()
                               for i in range(0, len(X), 2048)])


def counting_classifier(module, n_features: int, n_classes: int,
                        clip: tuple[np.ndarray, np.ndarray]):
    """ART's PyTorchClassifier around ``module``, counting the rows it is queried on."""
    import torch
    from art.estimators.classification import PyTorchClassifier

    class Counting(PyTorchClassifier):
        queries = 0

        def predict(self, x, batch_size=128, training_mode=False, **kwargs):
            self.queries += len(x)
            # HopSkipJump's random starting points come as float64; the model is float32
            return super().predict(np.asarray(x, dtype=np.float32), batch_size=batch_size,
                                   training_mode=training_mode, **kwargs)

        def compute_loss(self, x, y, *args, **kwargs):
            self.queries += len(x)
            return super().compute_loss(np.asarray(x, dtype=np.float32), y, *args, **kwargs)

    return Counting(model=module, loss=torch.nn.CrossEntropyLoss(), input_shape=(n_features,),
                    nb_classes=n_classes, clip_values=clip, device_type="cpu")


# --------------------------------------------------------------------------- the split


@dataclass(frozen=True)
class Split:
    """Indices into the audited records (the order of ``signals["record_ids"]``)."""

    is_member: np.ndarray  # (N,) bool, the target's membership
    train_in: np.ndarray  # attack-training members
    train_out: np.ndarray  # attack-training non-members
    eval_idx: np.ndarray  # evaluation records (members and non-members), sorted
    cal_in: np.ndarray  # HopSkipJump calibration members (a subset of train_in)
    cal_out: np.ndarray
    hsj_idx: np.ndarray  # HopSkipJump evaluation subset of eval_idx (members, then not)


def split_records(is_member: np.ndarray, *, n_cal: int, n_hsj: int, seed: int) -> Split:
    rng = np.random.default_rng([seed, 2024])
    halves = {}
    for side, idx in (("in", np.flatnonzero(is_member)), ("out", np.flatnonzero(~is_member))):
        idx = rng.permutation(idx)
        k = len(idx) // 2  # attack training gets the floor, evaluation the ceiling
        halves[side] = (idx[:k], idx[k:])
    eval_idx = np.sort(np.concatenate([halves["in"][1], halves["out"][1]]))
    return Split(
        is_member=is_member,
        train_in=np.sort(halves["in"][0]), train_out=np.sort(halves["out"][0]),
        eval_idx=eval_idx,
        cal_in=halves["in"][0][:n_cal], cal_out=halves["out"][0][:n_cal],
        hsj_idx=np.concatenate([halves["in"][1][:n_hsj], halves["out"][1][:n_hsj]]),
    )


# --------------------------------------------------------------------------- running


@dataclass
class Row:
    attack: str
    tool: str
    knows: str
    scores: np.ndarray  # ART: evaluation records; miaudit: all, then restricted to them
    seconds: float
    queries: int
    note: str = ""


def run_miaudit(ds: Dataset, case: Case, cache: Path, record_ids: np.ndarray, seed: int,
                attacks: list[str], exposure: str) -> list[Row]:
    """Each attack in its own audit on the cached models; scores in ``record_ids`` order."""
    rows = []
    for name in attacks:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = miaudit.audit(data=ds, model=case.recipe, references=case.references,
                              targets=1, attacks=[name], exposure=exposure, cache_dir=cache,
                              seed=seed)
        seconds = time.perf_counter() - t
        frame = r.scores.set_index("record_id")
        scores = frame.loc[record_ids, name].to_numpy(dtype=np.float64)
        rows.append(Row(name, "miaudit", KNOWS[name], scores, seconds,
                        r.summary()["attacks"][name]["queries_to_target"]))
    return rows


def run_art_black_box(clf, X, y, split: Split, seed: int) -> list[Row]:
    import torch
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox

    rows = []
    ev = split.eval_idx
    for input_type, model_type in ART_BLACK_BOX:
        # sklearn's forests and boosting (random_state=None) draw from the global state
        np.random.seed(seed)  # noqa: NPY002
        torch.manual_seed(seed)  # ART's nn attack model
        clf.queries = 0
        t = time.perf_counter()
        attack = MembershipInferenceBlackBox(clf, input_type=input_type,
                                             attack_model_type=model_type)
        attack.fit(X[split.train_in], y[split.train_in], X[split.train_out], y[split.train_out])
        scores = attack.infer(X[ev], y[ev], probabilities=True)
        rows.append(Row(f"MembershipInferenceBlackBox ({model_type}, {input_type})", "ART",
                        KNOWS["art-bb"], np.asarray(scores, dtype=np.float64).ravel(),
                        time.perf_counter() - t, clf.queries))
    return rows


def run_art_rule_based(clf, X, y, n_classes: int, split: Split) -> Row:
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBoxRuleBased

    ev = split.eval_idx
    clf.queries = 0
    t = time.perf_counter()
    attack = MembershipInferenceBlackBoxRuleBased(clf)
    # one-hot labels: with integer labels ART one-hot encodes with as many classes as the
    # records passed happen to hold, which breaks on a subset missing a class
    decided = attack.infer(X[ev], np.eye(n_classes, dtype=np.float32)[y[ev]])
    return Row("MembershipInferenceBlackBoxRuleBased", "ART", KNOWS["art-rule"],
               np.asarray(decided, dtype=np.float64).ravel(), time.perf_counter() - t,
               clf.queries, "binary decision")


@contextlib.contextmanager
def recorded_hop_skip_jump():
    """Let ART's LabelOnlyDecisionBoundary run as it is, and keep the adversarial points
    its HopSkipJump returns (to score by the distance itself, which ART thresholds but
    does not return)."""
    import art.attacks.evasion.hop_skip_jump as hsj_module

    original = hsj_module.HopSkipJump
    outputs: list[tuple[np.ndarray, np.ndarray]] = []

    class Recording(original):
        def generate(self, x, y=None, **kwargs):
            adv = super().generate(x, y=y, **kwargs)
            outputs.append((np.array(x), np.array(adv)))
            return adv

    hsj_module.HopSkipJump = Recording
    try:
        yield outputs
    finally:
        hsj_module.HopSkipJump = original


def run_art_label_only(clf, X, y, n_classes: int, split: Split, seed: int) -> list[Row]:
    from art.attacks.inference.membership_inference import LabelOnlyDecisionBoundary

    onehot = np.eye(n_classes, dtype=np.float32)
    sub = split.hsj_idx
    np.random.seed(seed)  # noqa: NPY002 (HopSkipJump draws from the global state)
    clf.queries = 0
    kwargs = {"batch_size": HSJ_BATCH, "verbose": False}  # ART's defaults otherwise
    with recorded_hop_skip_jump() as outputs:
        t = time.perf_counter()
        attack = LabelOnlyDecisionBoundary(clf)
        attack.calibrate_distance_threshold(
            X[split.cal_in], onehot[y[split.cal_in]], X[split.cal_out], onehot[y[split.cal_out]],
            **kwargs)
        cal_queries, cal_seconds = clf.queries, time.perf_counter() - t
        probs = attack.infer(X[sub], onehot[y[sub]], probabilities=True, **kwargs)
        seconds = time.perf_counter() - t
    queries = clf.queries
    x_in, adv = outputs[-1]
    distance = np.linalg.norm((adv - x_in).reshape(len(x_in), -1), axis=1)
    # as ART does before thresholding: a misclassified record has distance 0
    correct = np.argmax(clf.predict(X[sub]), axis=1) == y[sub]
    distance[~correct] = 0.0
    # HopSkipJump returns the record itself when none of its random starting points
    # (init_size=100) has another label
    no_start = int((correct & (distance == 0)).sum())
    note = (f"calibration on {len(split.cal_in)}+{len(split.cal_out)} records: "
            f"{cal_queries:,} queries, {cal_seconds:.0f} s; threshold "
            f"{attack.distance_threshold_tau:.3g}; HopSkipJump found no starting point (so "
            f"distance 0) for {no_start} of the {int(correct.sum())} correctly labelled "
            "scored records")
    return [
        Row("LabelOnlyDecisionBoundary (ART's membership probability)", "ART",
            KNOWS["art-lobd"], np.asarray(probs)[:, 1].astype(np.float64), seconds,
            queries, note),
        Row("LabelOnlyDecisionBoundary (its HopSkipJump distance as score)", "ART",
            KNOWS["art-lobd"], distance.astype(np.float64), seconds, queries, note),
    ]


# --------------------------------------------------------------------------- reporting


def pct(m: AttackMetrics, key: str) -> str:
    op = m.tpr_at_fpr[key]
    if op.value is None:
        return "n/a"
    return f"{100 * op.value:.1f}% [{100 * op.ci[0]:.1f}, {100 * op.ci[1]:.1f}]"


def describe(row: Row, m: AttackMetrics, references: int) -> dict:
    return {
        "attack (tool)": f"{row.attack} ({row.tool})",
        "AUC": f"{m.auc:.3f} [{m.auc_ci[0]:.3f}, {m.auc_ci[1]:.3f}]",
        "TPR@1%FPR": pct(m, "0.01"),
        "TPR@0.1%FPR": pct(m, "0.001"),
        "wall s": f"{row.seconds:.1f}",
        "queries": f"{row.queries:,}",
        "attacker knows": row.knows.replace("K references", f"{references} references"),
    }


def strength(m: AttackMetrics) -> tuple:
    """Order attacks by TPR at 1% FPR, then at 0.1%, then AUC."""
    tprs = [m.tpr_at_fpr[k].value for k in ("0.01", "0.001")]
    return (*(-1.0 if v is None else v for v in tprs), m.auc)


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def compare(key: str, case: Case, args: argparse.Namespace) -> None:
    out = Path(args.out) / key
    out.mkdir(parents=True, exist_ok=True)
    case = dataclasses.replace(
        case,
        n_records={"adult": args.adult_records, "cifar10": args.cifar_records}.get(
            key, case.n_records),
        references=args.references or case.references,
        hsj_calibration=_default(args.hsj_calibration, case.hsj_calibration),
        hsj_eval=_default(args.hsj_eval, case.hsj_eval))
    references, n_records = case.references, case.n_records
    started = time.perf_counter()
    ds = load_dataset(case.path, label_column=case.label_column, n_records=n_records,
                      seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="miaudit-art-") as tmp:
        cache = Path(tmp) / "cache"
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = miaudit.audit(data=ds, model=case.recipe, references=references, targets=1,
                                  attacks=["loss"], cache_dir=cache, seed=args.seed)
        train_seconds = time.perf_counter() - t
        signals = first.signals
        record_ids = signals["record_ids"].astype(str)
        rows_of_ids = {rid: i for i, rid in enumerate(ds.ids.astype(str))}
        pool = np.array([rows_of_ids[r] for r in record_ids])
        X, y = ds.X[pool], ds.y[pool].astype(np.int64)
        is_member = signals["membership"][0].astype(bool)

        # the target, saved once; ART loads it from the file
        from safetensors.numpy import save_file

        target_file = out / "target.safetensors"
        save_file({k: np.ascontiguousarray(v) for k, v in target_from_cache(cache).items()},
                  str(target_file), metadata={"recipe": json.dumps(make_recipe(
                      case.recipe).to_dict()), "data": ds.name, "seed": str(args.seed)})
        module = load_target(target_file, case.recipe, ds.n_features, ds.n_classes)
        logit_gap = float(np.abs(logits_of(module, X) - signals["logits"][0]).max())
        if logit_gap > 1e-3:
            raise RuntimeError(f"The rebuilt target differs from miaudit's: {logit_gap}")

        split = split_records(is_member, n_cal=case.hsj_calibration, n_hsj=case.hsj_eval,
                              seed=args.seed)
        np.savez_compressed(out / "split.npz", record_ids=record_ids, is_member=is_member,
                            train_in=split.train_in, train_out=split.train_out,
                            eval_idx=split.eval_idx, cal_in=split.cal_in,
                            cal_out=split.cal_out, hsj_idx=split.hsj_idx)

        ev = split.eval_idx
        mi_logit = run_miaudit(ds, case, cache, record_ids, args.seed, LOGIT_ATTACKS, "logits")
        mi_label = run_miaudit(ds, case, cache, record_ids, args.seed, LABEL_ATTACKS, "label")
        # ART's array form of clip_values: each feature's range over the data set (a single
        # global range left HopSkipJump without a starting point for 5 of 12 Adult records
        # in a probe)
        low = ds.X.min(axis=0)
        clip = (low, np.maximum(ds.X.max(axis=0), low + 1e-6))  # constant columns
        clf = counting_classifier(module, ds.n_features, ds.n_classes, clip)
        bb = run_art_black_box(clf, X, y, split, args.seed)
        rule = run_art_rule_based(clf, X, y, ds.n_classes, split)
        lobd = run_art_label_only(clf, X, y, ds.n_classes, split, args.seed) \
            if case.hsj_eval > 0 else []

    truth = is_member[ev]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bb_metrics = [(r, evaluate(r.scores, truth)) for r in bb]
        best_bb = max(bb_metrics, key=lambda rm: strength(rm[1]))
        main = [best_bb, (rule, evaluate(rule.scores, truth))]
        for r in mi_logit + mi_label:
            r.scores = r.scores[ev]
            main.append((r, evaluate(r.scores, truth)))
        # the label-only subset: ART's HopSkipJump records, and miaudit's scores on them
        sub_pos = np.searchsorted(ev, split.hsj_idx)
        sub_truth = is_member[split.hsj_idx]
        label_rows = [(r, evaluate(r.scores, sub_truth)) for r in lobd]
        label_rows += [(r, evaluate(r.scores[sub_pos], sub_truth)) for r in mi_label]

    save_scores(out, record_ids, is_member, ev, split.hsj_idx,
                [*bb, rule, *mi_logit, *mi_label], lobd)
    n_pool = len(record_ids)
    cols = ["attack (tool)", "AUC", "TPR@1%FPR", "TPR@0.1%FPR", "wall s", "queries",
            "attacker knows"]
    main_table = table([describe(r, m, references) for r, m in main], cols)
    lrows = []
    for r, m in label_rows:
        n = len(split.hsj_idx) + len(split.cal_in) + len(split.cal_out) \
            if r.tool == "ART" else n_pool
        lrows.append({
            "attack (tool)": f"{r.attack} ({r.tool})",
            "AUC": f"{m.auc:.3f} [{m.auc_ci[0]:.3f}, {m.auc_ci[1]:.3f}]",
            "best balanced accuracy": f"{m.balanced_accuracy:.3f}",
            "queries/record": f"{r.queries / n:,.0f}",
            "s/record": f"{r.seconds / n:.3f}",
        })
    label_table = table(lrows, list(lrows[0])) if lrows else ""
    variants = "; ".join(
        f"{r.attack.split('(')[1].rstrip(')')}: AUC {m.auc:.3f}, TPR@1% "
        f"{pct(m, '0.01').split(' ')[0]}, {r.seconds:.0f} s" for r, m in bb_metrics)
    tgt = first.summary()["target"]
    best_mi = max(((r, m) for r, m in main if r.tool == "miaudit"), key=lambda rm: strength(
        rm[1]))
    body = (
        f"{len(record_ids)} records in the game ({int(is_member.sum())} members); "
        f"{tgt['description']}; train accuracy {tgt['train_accuracy']:.3f}, test accuracy "
        f"{tgt['test_accuracy']:.3f}. Target and {references} references trained once by "
        f"miaudit ({train_seconds:.0f} s, online game, seed {args.seed}); ART gets the same "
        f"target from `target.safetensors` (largest difference from miaudit's logits: "
        f"{logit_gap:.1g}). "
        f"Attack training (ART's `fit`): {len(split.train_in)} members + "
        f"{len(split.train_out)} non-members; **all metrics on the other {len(ev)} records** "
        f"({int(truth.sum())} members), the same for both tools (95% intervals; "
        "TPR at 0.1% FPR needs >= 1000 non-members). Wall time: the attack alone (miaudit: "
        "an audit run on the cached models; references not included); queries: rows sent "
        "to the target, over all records the attack touched. Choices that could favour "
        "either tool: benchmarks/peers/README.md.\n\n"
        + main_table
        + f"\n\nART MembershipInferenceBlackBox, all six configurations (the best by TPR at "
        f"1% FPR, then AUC, on the evaluation records is in the table): {variants}.\n\n"
        f"Best of each tool by TPR at 1% FPR: ART {best_bb[0].attack} "
        f"{pct(best_bb[1], '0.01').split(' ')[0]} (AUC {best_bb[1].auc:.3f}); miaudit "
        f"{best_mi[0].attack} {pct(best_mi[1], '0.01').split(' ')[0]} "
        f"(AUC {best_mi[1].auc:.3f}).\n\n"
    )
    if lobd:
        body += (
            f"**Label-only, on the HopSkipJump subset** ({len(split.hsj_idx)} evaluation "
            f"records, {int(sub_truth.sum())} members; ART calibrated on "
            f"{len(split.cal_in)} + {len(split.cal_out)} attack-training records; "
            f"HopSkipJump with ART's defaults, batch {HSJ_BATCH}): {lobd[0].note}. "
            "miaudit's label-only attacks queried every record; their scores are restricted "
            "to the same records. Per record: queries and seconds (ART: calibration and "
            "inference records together).\n\n" + label_table + "\n"
        )
    write_section(f"miaudit vs ART: {case.title}", body)
    lobd_distance = next((m for r, m in label_rows if "distance" in r.attack), None)
    boundary = next(m for r, m in label_rows if r.attack == "label-boundary")
    overview = {
        "data set": case.title,
        "best ART (by TPR@1%FPR)": headline(best_bb),
        "best miaudit": headline(best_mi),
        "label-only AUC on the HopSkipJump subset, ART (distance) / miaudit label-boundary":
            "-" if lobd_distance is None else
            f"{lobd_distance.auc:.3f} / {boundary.auc:.3f} (n = {len(split.hsj_idx)})",
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    (out / "overview.json").write_text(json.dumps(overview, indent=2) + "\n")


def headline(rm: tuple[Row, AttackMetrics]) -> str:
    r, m = rm
    return (f"{r.attack}: AUC {m.auc:.3f}, TPR@1% {pct(m, '0.01').split(' ')[0]}, "
            f"TPR@0.1% {pct(m, '0.001').split(' ')[0]}")


def save_scores(out: Path, record_ids, is_member, ev, hsj_idx, rows: list[Row],
                lobd: list[Row]) -> None:
    frame = pd.DataFrame({"record_id": record_ids[ev], "is_member": is_member[ev]})
    for r in rows:
        frame[f"{r.tool}: {r.attack}"] = r.scores
    frame.to_parquet(out / "scores.parquet", index=False)
    if lobd:
        sub = pd.DataFrame({"record_id": record_ids[hsj_idx], "is_member": is_member[hsj_idx]})
        for r in lobd:
            sub[f"{r.tool}: {r.attack}"] = r.scores
        sub.to_parquet(out / "scores_label_only_subset.parquet", index=False)


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    with contextlib.suppress(ValueError):
        return path.resolve().relative_to(ROOT).as_posix()
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="location30,adult,cifar10",
                    help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--references", type=int, default=None,
                    help="reference models (default: 8 for the tables, 4 for CIFAR-10)")
    ap.add_argument("--adult-records", type=int, default=10_000)
    ap.add_argument("--cifar-records", type=int, default=2_000)
    ap.add_argument("--hsj-calibration", type=int, default=None,
                    help="members (and as many non-members) to calibrate ART's label-only "
                         "attack on (default: 20, 50, 10 for Location30, Adult, CIFAR-10)")
    ap.add_argument("--hsj-eval", type=int, default=None,
                    help="members (and as many non-members) ART's label-only attack scores; "
                         "0 skips it (default: 50, 150, 15)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "runs" / "peers"))
    args = ap.parse_args()
    keys = [k.strip() for k in args.data.split(",")]
    for key in keys:
        if key not in CASES:
            ap.error(f"unknown data set {key!r}; choose from {', '.join(CASES)}")
    for key in keys:
        compare(key, CASES[key], args)
    # the overview, once every data set has a run under --out (the latest of each)
    files = [Path(args.out) / key / "overview.json" for key in CASES]
    if all(f.exists() for f in files):
        rows = [json.loads(f.read_text()) for f in files]
        write_section("miaudit vs ART: overview", (
            "The strongest attack of each tool on the same targets and evaluation records "
            "(full tables in the sections of each data set; the latest run of each under "
            f"`{shown(Path(args.out))}`). Minutes: the whole comparison of that data set on "
            "this machine.\n\n" + table(rows, list(rows[0]))))


if __name__ == "__main__":
    main()
