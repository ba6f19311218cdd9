"""Forgetting check: does a model that claims to have forgotten records still remember them?

A model retrained without a set F of records, or "unlearned" to forget them, should treat F
like records it never saw. The check plays the membership game with F as the "members" and
fresh records the model never trained on as the non-members: if the attacks tell F apart
from the fresh records (AUC interval above 0.5), F still looks like members. Run on the
original model too, the same game shows how much the forgetting changed.

Precomputed outputs
-------------------
Instead of a model, give an ``.npz`` file (never unpickled) with:

- ``ids``: (N,) record IDs, as strings or integers, matching the data's record IDs
  (``Dataset.ids``: given IDs, or 0-based row numbers);
- exactly one of ``logits`` or ``probs``: (N, C) float, one column per class of the data,
  in the data's class order (encoded labels 0..C-1).

It must hold a row for every record of F and of the fresh set; other rows and other arrays
are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miaudit.data import Dataset, load_dataset
from miaudit.errors import ConfigError, DataError, MembershipError, OutputError
from miaudit.targets import PrecomputedOutputs, check_outputs

__all__ = [
    "DEFAULT_ATTACKS",
    "INDISTINGUISHABLE",
    "LESS_MEMBER_LIKE",
    "STILL_MEMBERS",
    "ForgetResult",
    "ModelFigures",
    "load_id_list",
    "verify_forget",
]

#: Attacks run by default: reference-free, needing only the model's probabilities.
DEFAULT_ATTACKS: tuple[str, ...] = ("loss", "mentr")
#: The verdicts.
STILL_MEMBERS = "still looks like members"
INDISTINGUISHABLE = "indistinguishable from fresh non-members"
LESS_MEMBER_LIKE = "looks less like members than fresh non-members"
#: The FPR level at which the TPR is reported.
FPR = 0.01


@dataclass(frozen=True)
class ModelFigures:
    """One model's figures in the game "F (members) against fresh non-members".

    Attributes
    ----------
    attacks : dict
        Per attack: ``auc``, ``auc_ci``, ``tpr_at_1pct_fpr``, ``tpr_at_1pct_fpr_ci``
        (None with ``reason`` when fewer than 100 fresh records make it unmeasurable).
    strongest_attack : str
        The attack with the highest AUC.
    accuracy_forget, accuracy_fresh : float
        The model's accuracy on F and on the fresh records.
    summary : dict
        The full audit summary (as in ``summary.json``).
    """

    attacks: dict[str, dict]
    strongest_attack: str
    accuracy_forget: float
    accuracy_fresh: float
    summary: dict

    @classmethod
    def from_summary(cls, summary: dict) -> ModelFigures:
        key = str(FPR)
        attacks = {}
        for name, e in summary["attacks"].items():
            attacks[name] = {"auc": e["auc"], "auc_ci": e["auc_ci"],
                             "tpr_at_1pct_fpr": e["tpr_at_fpr"].get(key),
                             "tpr_at_1pct_fpr_ci": e["tpr_at_fpr_ci"].get(key)}
            if f"tpr_at_fpr.{key}" in e["undefined"]:
                attacks[name]["reason"] = e["undefined"][f"tpr_at_fpr.{key}"]
        best = max(attacks, key=lambda a: (attacks[a]["auc"], attacks[a]["auc_ci"][0]))
        t = summary["target"]
        return cls(attacks, best, t["train_accuracy"], t["test_accuracy"], summary)

    def to_dict(self) -> dict:
        """JSON-ready fields (without the full summary)."""
        return {"attacks": self.attacks, "strongest_attack": self.strongest_attack,
                "accuracy_forget": self.accuracy_forget, "accuracy_fresh": self.accuracy_fresh}


@dataclass(frozen=True)
class ForgetResult:
    """What :func:`verify_forget` returns.

    Attributes
    ----------
    verdict : str
        :data:`STILL_MEMBERS` when the strongest attack's AUC interval on the new model lies
        above 0.5; :data:`LESS_MEMBER_LIKE` when an attack's interval lies below 0.5 (F is
        scored *below* fresh records: the forgetting itself shows); otherwise
        :data:`INDISTINGUISHABLE`.
    still_member_like : bool
        ``verdict == STILL_MEMBERS``.
    strongest_attack : str
        The attack with the highest AUC on the new model.
    new : ModelFigures
        The model after forgetting.
    original : ModelFigures or None
        The model before, when given.
    auc_drop : dict of str to float, or None
        Per attack, original AUC minus new AUC (a point estimate).
    n_forget, n_fresh : int
    exposure : str
    alpha : float
        Error rate of the verdict.
    interval_level : float
        Confidence level of every interval: ``1 - alpha / k`` for ``k`` attacks
        (Bonferroni), so that picking the strongest attack does not inflate the verdict.
    """

    verdict: str
    strongest_attack: str
    new: ModelFigures
    original: ModelFigures | None
    auc_drop: dict[str, float] | None
    n_forget: int
    n_fresh: int
    exposure: str
    alpha: float
    interval_level: float

    @property
    def still_member_like(self) -> bool:
        """True when F still looks like members of the new model."""
        return self.verdict == STILL_MEMBERS

    @property
    def indistinguishable(self) -> bool:
        """True when the attacks cannot tell F from fresh non-members."""
        return self.verdict == INDISTINGUISHABLE

    def headline(self) -> str:
        """One sentence: the verdict with the strongest attack's AUC on both models."""
        a = self.strongest_attack
        e = self.new.attacks[a]
        lo, hi = e["auc_ci"]
        verb = {STILL_MEMBERS: "still look like members",
                INDISTINGUISHABLE: "are indistinguishable from fresh non-members",
                LESS_MEMBER_LIKE: "look less like members than fresh non-members"}
        text = (f"The {self.n_forget} records to forget {verb[self.verdict]} "
                f"(strongest attack {a}: AUC {e['auc']:.3f} [{lo:.3f}, {hi:.3f}] against "
                f"{self.n_fresh} fresh non-members")
        if self.original is not None:
            o = self.original.attacks[a]
            text += (f"; {o['auc']:.3f} [{o['auc_ci'][0]:.3f}, {o['auc_ci'][1]:.3f}] on the "
                     "original model")
        return text + ")."

    def to_dict(self) -> dict:
        """JSON-ready fields (what ``miaudit verify-forget --format json`` prints)."""
        return {"verdict": self.verdict, "still_member_like": self.still_member_like,
                "indistinguishable": self.indistinguishable,
                "strongest_attack": self.strongest_attack, "n_forget": self.n_forget,
                "n_fresh": self.n_fresh, "exposure": self.exposure, "alpha": self.alpha,
                "interval_level": self.interval_level, "new": self.new.to_dict(),
                "original": None if self.original is None else self.original.to_dict(),
                "auc_drop": self.auc_drop, "headline": self.headline()}


def load_id_list(path: str | Path) -> list[str]:
    """Read record IDs from a text file: one per line; blank lines and ``#`` comments are
    skipped.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "ids.txt")
    ...     _ = open(p, "w").write("# forget\\n3\\n 7 \\n\\n")
    ...     load_id_list(p)
    ['3', '7']
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"ID list not found: {p}")
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()  # a BOM is no ID
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read the ID list {p}: {exc}") from None
    ids = [line.split("#", 1)[0].strip() for line in lines]
    return [i for i in ids if i]


def _positions(ds: Dataset, ids: Sequence, name: str) -> np.ndarray:
    wanted = np.asarray(list(ids)).astype(str)
    if wanted.ndim != 1 or len(wanted) == 0:
        raise MembershipError(f"'{name}' must be a non-empty list of record IDs.")
    uniq, counts = np.unique(wanted, return_counts=True)
    if (counts > 1).any():
        raise MembershipError(f"'{name}' lists record ID {uniq[counts > 1][0]!r} more than "
                              "once.")
    index = {rid: i for i, rid in enumerate(ds.ids.astype(str).tolist())}
    missing = [i for i in wanted.tolist() if i not in index]
    if missing:
        raise MembershipError(f"{len(missing)} record ID(s) of '{name}' are not in the data "
                              f"{ds.name} (first: {str(missing[0])!r}).")
    return np.array([index[i] for i in wanted.tolist()], dtype=np.intp)


def _read_outputs(source: str | Path | Mapping) -> tuple[dict[str, np.ndarray], str]:
    if isinstance(source, Mapping):
        return {k: np.asarray(v) for k, v in source.items()}, "outputs"
    p = Path(source)
    if p.suffix != ".npz":
        raise ConfigError(f"A model given as a path must be an .npz of its outputs (ids and "
                          f"logits or probs), got {str(source)!r}.")
    if not p.is_file():
        raise DataError(f"Outputs file not found: {p}")
    from miaudit.data._npz import open_npz, read_arrays  # the loaders' one .npz reader

    with open_npz(p, "Save the outputs with numpy.savez(path, ids=..., logits=...).") as f:
        arrays = read_arrays(f, p, [k for k in ("ids", "logits", "probs") if k in f.files])
    return arrays, p.name


def _precomputed(source: str | Path | Mapping, sub: Dataset,
                 is_member: np.ndarray) -> PrecomputedOutputs:
    arrays, name = _read_outputs(source)
    kinds = [k for k in ("logits", "probs") if k in arrays]
    if "ids" not in arrays or len(kinds) != 1:
        raise DataError(f"{name} must hold an array 'ids' and exactly one of 'logits' or "
                        f"'probs' (it has: {', '.join(sorted(arrays)) or 'none'}).")
    ids = arrays["ids"].astype(str)
    values = arrays[kinds[0]]
    if ids.ndim != 1 or values.ndim != 2 or len(values) != len(ids):
        raise DataError(f"{name}: 'ids' must have shape (N,) and '{kinds[0]}' (N, classes), "
                        f"got {ids.shape} and {values.shape}.")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{name}: record ID {uniq[counts > 1][0]!r} appears more than once.")
    row = {rid: i for i, rid in enumerate(ids.tolist())}
    missing = [i for i in sub.ids.astype(str).tolist() if i not in row]
    if missing:
        raise OutputError(f"{name} has no outputs for {len(missing)} of the records checked "
                          f"(first: record ID {missing[0]!r}).")
    rows = np.array([row[i] for i in sub.ids.astype(str).tolist()])
    kind = "logits" if kinds[0] == "logits" else "probs"
    outputs = check_outputs(values[rows], kind, n_records=sub.n_records,
                            n_classes=sub.n_classes, source=name)
    return PrecomputedOutputs(outputs, sub.y, is_member, sub.ids.astype(str),
                              sub.fingerprints, name)


def _figures(model: object, sub: Dataset, forget_ids: np.ndarray, is_member: np.ndarray,
             exposure: str, attacks: list[str], seed: int, alpha: float) -> ModelFigures:
    from miaudit.audits import audit

    common = {"exposure": exposure, "attacks": attacks, "seed": seed, "alpha": alpha,
              "fprs": (FPR,)}
    if isinstance(model, str | Path | Mapping):
        result = audit(outputs=_precomputed(model, sub, is_member), **common)
    else:
        result = audit(data=sub, model=model, members=forget_ids, **common)
    return ModelFigures.from_summary(result.summary())


def verify_forget(
    *,
    data: Dataset | str | Path,
    forget: Sequence,
    fresh: Sequence,
    model: object,
    original: object | None = None,
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    exposure: str = "probabilities",
    seed: int = 0,
    alpha: float = 0.05,
    label_column: str | None = None,
    id_column: str | None = None,
) -> ForgetResult:
    """Check whether records a model claims to have forgotten still look like members.

    Plays the membership game on the records of ``forget`` (as members) and ``fresh`` (as
    non-members; records neither model ever trained on) with :func:`miaudit.audit`, on the
    model after forgetting and, when given, on the original model.

    Parameters
    ----------
    data : Dataset, str or Path
        The data holding both sets (a built-in name, a file, or a loaded Dataset).
    forget : sequence of record IDs
        The records the model should have forgotten (F).
    fresh : sequence of record IDs
        Records that neither model trained on, from the same distribution as F.
    model : object
        The model after forgetting: a scikit-learn estimator with ``predict_proba``, a torch
        module, a callable returning probabilities, or precomputed outputs (an ``.npz``
        path or a mapping with ``ids`` and ``logits`` or ``probs``; see the module docs).
    original : object, optional
        The model before forgetting, in the same forms.
    attacks : sequence of str, default ("loss", "mentr")
        Reference-free attacks the exposure allows.
    exposure : str, default "probabilities"
        What the attacker sees.
    seed : int, default 0
    alpha : float, default 0.05
        Error rate of the verdict; each attack's interval has level ``1 - alpha / k`` for
        ``k`` attacks, so that choosing the strongest does not inflate it.
    label_column, id_column : str, optional
        For CSV / Parquet data.

    Returns
    -------
    ForgetResult
        The verdict (F :data:`STILL_MEMBERS` when an attack's AUC interval lies above
        0.5, reported with the strongest such attack; :data:`LESS_MEMBER_LIKE` when none
        does and an attack's interval lies below 0.5; else :data:`INDISTINGUISHABLE`),
        both models' AUCs and TPR at 1% FPR with intervals, and the AUC drop from original
        to new.
    """
    names = list(attacks)
    if not names:
        raise ConfigError("verify_forget needs at least one attack.")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie strictly between 0 and 1, got {alpha}.")
    if isinstance(model, str) and not model.endswith(".npz"):
        raise ConfigError(f"model {model!r}: give the fitted model after forgetting (or an "
                          ".npz of its outputs), not a recipe name.")
    ds = data if isinstance(data, Dataset) else load_dataset(
        data, label_column=label_column, id_column=id_column)
    pos_f = _positions(ds, forget, "forget")
    pos_n = _positions(ds, fresh, "fresh")
    shared = np.intersect1d(pos_f, pos_n)
    if len(shared):
        raise MembershipError(f"{len(shared)} record(s) are in both 'forget' and 'fresh' "
                              f"(first: {str(ds.ids[shared[0]])!r}); fresh records must be others.")
    sub = ds.subset(np.concatenate([pos_f, pos_n]))
    is_member = np.arange(sub.n_records) < len(pos_f)
    forget_ids = sub.ids[is_member]
    level = alpha / len(names)
    new = _figures(model, sub, forget_ids, is_member, exposure, names, seed, level)
    old = None if original is None else _figures(original, sub, forget_ids, is_member,
                                                 exposure, names, seed, level)
    best = new.strongest_attack
    # each interval has level 1 - alpha/k, so any one of them above 0.5 is evidence at
    # level alpha (union bound), not only the highest AUC's
    above = [a for a, e in new.attacks.items() if e["auc_ci"][0] > 0.5]
    if above:
        if best not in above:
            best = max(above, key=lambda a: (new.attacks[a]["auc"], new.attacks[a]["auc_ci"][0]))
        verdict = STILL_MEMBERS
    elif any(e["auc_ci"][1] < 0.5 for e in new.attacks.values()):
        verdict = LESS_MEMBER_LIKE
    else:
        verdict = INDISTINGUISHABLE
    drop = None if old is None else {a: old.attacks[a]["auc"] - new.attacks[a]["auc"]
                                     for a in new.attacks}
    return ForgetResult(verdict, best, new, old, drop, len(pos_f), len(pos_n),
                        new.summary["exposure"], alpha, 1 - level)
