"""Forgetting check: does a model that claims to have forgotten records still remember them?

A model retrained without a set F of records, or "unlearned" to forget them, should treat F
like records it never saw. The check plays the membership game with F as the "members" and
fresh records the model never trained on as the non-members: if the attacks tell F apart
from the fresh records (AUC interval above 0.5), F still looks like members. Run on the
original model too, the same game shows how much the forgetting changed.

Checked against the truth: the retrained model
----------------------------------------------
With ``retrained`` (a model retrained from scratch without F: the "oracle" of exact
unlearning), the same game is played on it too and the two games are compared, two-sided
(:class:`RetrainedComparison`): per attack, the difference of AUCs (after forgetting minus
retrained) with a paired DeLong interval over the records (DeLong et al. 1988; both models
score the same records), and MUSE's PrivLeak ``(AUC_unlearned - AUC_retrained) /
AUC_retrained`` (Shi et al. 2024) with a delta-method interval
(:func:`miaudit.metrics.compare_aucs`). F may look *more* member-like than on the retrained
model (under-unlearning) or *less* (over-unlearning, such as gradient ascent that
overshoots: the records then stand out by being forgotten "too well", which leaks too). This
comparison also holds when F is not a random sample of the data (the retrained model then
shows how F differs from the fresh records anyway).

The intervals count the sampling of records, not the randomness of training: with F and
the fresh records drawn from the same distribution, a model retrained without F scores
both alike whatever its seed, so a retrained model passes at the stated rate. When F is a
chosen group (a class, one user's records), retrains with different seeds differ on it by
more than the records explain, and the comparison can flag them.

U-LiRA: per-record check with shadow models
-------------------------------------------
With ``shadows`` (outputs of shadow models on the records of F, see the format below) as
well, U-LiRA (Hayes et al. 2024, :mod:`miaudit.governance.ulira`) asks for each record of F
whether the model's output on it looks like that of a model that *unlearned* it or of one
that *never trained on it* (a log-likelihood ratio of Gaussians fitted to the shadows'
logit-scaled confidences; higher = looks unlearned, a trace of the record remains).
Reported (:class:`~miaudit.governance.ulira.ULiraFigures`): per record the ratio, its
p-value under "never trained on" and Benjamini-Hochberg flags at false discovery rate
``alpha``; and Hayes et al.'s balanced game, the model after forgetting against the
retrained model: the AUC of the ratio with a clustered DeLong interval and the accuracy of
the ``ratio > 0`` rule, both 0.5 under exact unlearning.

Precomputed outputs
-------------------
Instead of a model, give an ``.npz`` file (never unpickled) with:

- ``ids``: (N,) record IDs, as strings or integers, matching the data's record IDs
  (``Dataset.ids``: given IDs, or 0-based row numbers);
- exactly one of ``logits`` or ``probs``: (N, C) float, one column per class of the data,
  in the data's class order (encoded labels 0..C-1).

It must hold a row for every record of F and of the fresh set; other rows and other arrays
are ignored.

Shadow models (``shadows``, U-LiRA)
-----------------------------------
An ``.npz`` file (never unpickled) or a mapping with:

- ``ids``: (N,) record IDs, covering every record of F;
- exactly one of ``unlearned_logits`` or ``unlearned_probs``: (K, N, C) float, the outputs
  of K shadow models that were trained with the records and then unlearned them with the
  method under audit;
- exactly one of ``retrained_logits`` or ``retrained_probs``: (J, N, C) float, the outputs
  of J shadow models trained without them;
- optional ``unlearned_mask`` (K, N) and ``retrained_mask`` (J, N), bool: which records
  each shadow unlearned / never trained on (default: all). A shadow that unlearned some
  records and never saw others may appear in both stacks with complementary masks.

Every record of F needs at least one shadow on each side. :func:`miaudit.governance.
unlearning.shadow_outputs` writes such stacks for the recipes of
:mod:`miaudit.governance.unlearning`.

References
----------
DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44(3).
Shi et al. (2024), "MUSE: Machine Unlearning Six-Way Evaluation for Language Models".
Hayes, Shumailov, Triantafillou, Khalifa & Papernot (2024), "Inexact Unlearning Needs More
Careful Evaluations to Avoid a False Sense of Privacy".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from miaudit.data import Dataset, load_dataset
from miaudit.errors import ConfigError, DataError, MembershipError, OutputError
from miaudit.governance.ulira import ULiraFigures, ulira_figures
from miaudit.metrics.roc import compare_aucs
from miaudit.signals.transforms import (
    logit_scaled_confidence,
    logit_scaled_confidence_from_probs,
)
from miaudit.targets import PrecomputedOutputs, check_outputs

__all__ = [
    "DEFAULT_ATTACKS",
    "INDISTINGUISHABLE",
    "LESS_MEMBER_LIKE",
    "LESS_MEMBER_LIKE_THAN_RETRAINED",
    "MATCHES_RETRAINED",
    "MORE_MEMBER_LIKE_THAN_RETRAINED",
    "STILL_MEMBERS",
    "TOLD_APART_BY_ULIRA",
    "ForgetResult",
    "ModelFigures",
    "RetrainedComparison",
    "load_id_list",
    "retrained_verdict",
    "verify_forget",
]

#: Attacks run by default: reference-free, needing only the model's probabilities.
DEFAULT_ATTACKS: tuple[str, ...] = ("loss", "mentr")
#: The verdicts.
STILL_MEMBERS = "still looks like members"
INDISTINGUISHABLE = "indistinguishable from fresh non-members"
LESS_MEMBER_LIKE = "looks less like members than fresh non-members"
#: The verdicts against the model retrained without F (:class:`RetrainedComparison`).
MATCHES_RETRAINED = "indistinguishable from a model retrained without them"
MORE_MEMBER_LIKE_THAN_RETRAINED = "look more like members than on the retrained model"
LESS_MEMBER_LIKE_THAN_RETRAINED = "look less like members than on the retrained model"
TOLD_APART_BY_ULIRA = "told apart from the retrained model by U-LiRA"
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


# ------------------------------------------------- the comparison with the retrained model


def retrained_verdict(attacks: Mapping[str, Mapping], ulira_detected: bool = False
                      ) -> tuple[str, str]:
    """The verdict against the retrained model, and the attack it rests on.

    :data:`MORE_MEMBER_LIKE_THAN_RETRAINED` when an attack's difference interval lies above
    0, else :data:`LESS_MEMBER_LIKE_THAN_RETRAINED` when one lies below 0, else
    :data:`TOLD_APART_BY_ULIRA` when ``ulira_detected``, else :data:`MATCHES_RETRAINED`.
    The attack named is the one with the largest ``|difference| / half-width`` among those
    deciding the verdict (among all when none does).

    Parameters
    ----------
    attacks : mapping of attack name to :func:`~miaudit.metrics.roc.compare_aucs` entries
    ulira_detected : bool, default False
    """
    def strength(name: str) -> float:
        e = attacks[name]
        lo, hi = e["difference_ci"]
        half = (hi - lo) / 2
        return abs(e["difference"]) / half if half > 0 else math.inf

    above = [a for a, e in attacks.items() if e["difference_ci"][0] > 0]
    below = [a for a, e in attacks.items() if e["difference_ci"][1] < 0]
    if above:
        return MORE_MEMBER_LIKE_THAN_RETRAINED, max(above, key=strength)
    if below:
        return LESS_MEMBER_LIKE_THAN_RETRAINED, max(below, key=strength)
    best = max(attacks, key=strength)
    return (TOLD_APART_BY_ULIRA if ulira_detected else MATCHES_RETRAINED), best


@dataclass(frozen=True)
class RetrainedComparison:
    """The model after forgetting against the model retrained without F, in the game "F
    against fresh non-members" (see the module docstring).

    Attributes
    ----------
    verdict : str
        :func:`retrained_verdict`: :data:`MATCHES_RETRAINED`,
        :data:`MORE_MEMBER_LIKE_THAN_RETRAINED`, :data:`LESS_MEMBER_LIKE_THAN_RETRAINED` or
        :data:`TOLD_APART_BY_ULIRA`.
    strongest_attack : str
        The attack the verdict rests on.
    attacks : dict
        Per attack, :func:`~miaudit.metrics.roc.compare_aucs`'s entries.
    retrained : ModelFigures
        The retrained model's own figures in the game.
    ulira : ~miaudit.governance.ulira.ULiraFigures or None
        With shadow models.
    interval_level : float
        Confidence level of every interval: ``1 - alpha / t`` for ``t`` tests (the attacks,
        plus U-LiRA with shadows), so that the verdict's error rate is ``alpha``.
    """

    verdict: str
    strongest_attack: str
    attacks: dict[str, dict]
    retrained: ModelFigures
    ulira: ULiraFigures | None
    interval_level: float

    @property
    def matches(self) -> bool:
        """True when nothing tells the model after forgetting from the retrained one."""
        return self.verdict == MATCHES_RETRAINED

    def headline(self, n_forget: int) -> str:
        """One sentence: the verdict with the deciding attack's figures."""
        a = self.strongest_attack
        e = self.attacks[a]
        lo, hi = e["difference_ci"]
        verb = {MATCHES_RETRAINED: "look as they do on a model retrained without them",
                MORE_MEMBER_LIKE_THAN_RETRAINED: "look more like members than on the model "
                "retrained without them",
                LESS_MEMBER_LIKE_THAN_RETRAINED: "look less like members than on the model "
                "retrained without them",
                TOLD_APART_BY_ULIRA: "match the retrained model's AUC, but U-LiRA tells "
                "the two models apart"}
        leak = "n/a" if e["privleak"] is None else f"{100 * e['privleak']:+.1f}%"
        text = (f"Against the retrained model, the {n_forget} records to forget "
                f"{verb[self.verdict]} (attack {a}: AUC {e['auc_new']:.3f} after forgetting, "
                f"{e['auc_retrained']:.3f} retrained, difference {e['difference']:+.3f} "
                f"[{lo:+.3f}, {hi:+.3f}], PrivLeak {leak}")
        if self.ulira is not None:
            u = self.ulira
            text += (f"; U-LiRA AUC {u.auc:.3f} [{u.auc_ci[0]:.3f}, {u.auc_ci[1]:.3f}], "
                     f"{int(u.flagged.sum())} record(s) flagged")
        return text + ")."

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        attacks = {a: {k: list(v) if isinstance(v, tuple) else v for k, v in e.items()}
                   for a, e in self.attacks.items()}
        return {"verdict": self.verdict, "matches": self.matches,
                "strongest_attack": self.strongest_attack, "attacks": attacks,
                "interval_level": self.interval_level, "retrained": self.retrained.to_dict(),
                "ulira": None if self.ulira is None else self.ulira.to_dict()}


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
    retrained : RetrainedComparison or None
        The comparison with the model retrained without F, when given: its own verdict
        (:data:`MATCHES_RETRAINED`, ...) at error rate ``alpha``.
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
    retrained: RetrainedComparison | None = field(default=None)

    @property
    def still_member_like(self) -> bool:
        """True when F still looks like members of the new model."""
        return self.verdict == STILL_MEMBERS

    @property
    def indistinguishable(self) -> bool:
        """True when the attacks cannot tell F from fresh non-members."""
        return self.verdict == INDISTINGUISHABLE

    def headline(self) -> str:
        """One sentence: the verdict with the strongest attack's AUC on both models (and,
        with a retrained model, a second: :meth:`RetrainedComparison.headline`)."""
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
        text += ")."
        if self.retrained is not None:
            text += " " + self.retrained.headline(self.n_forget)
        return text

    def to_dict(self) -> dict:
        """JSON-ready fields (what ``miaudit verify-forget --format json`` prints)."""
        return {"verdict": self.verdict, "still_member_like": self.still_member_like,
                "indistinguishable": self.indistinguishable,
                "strongest_attack": self.strongest_attack, "n_forget": self.n_forget,
                "n_fresh": self.n_fresh, "exposure": self.exposure, "alpha": self.alpha,
                "interval_level": self.interval_level, "new": self.new.to_dict(),
                "original": None if self.original is None else self.original.to_dict(),
                "auc_drop": self.auc_drop,
                "retrained": None if self.retrained is None else self.retrained.to_dict(),
                "headline": self.headline()}


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


_OUTPUT_KEYS = ("ids", "logits", "probs")
_SHADOW_KEYS = ("ids", "unlearned_logits", "unlearned_probs", "retrained_logits",
                "retrained_probs", "unlearned_mask", "retrained_mask")


def _read_outputs(source: str | Path | Mapping, keys: tuple[str, ...] = _OUTPUT_KEYS,
                  what: str = "A model given as a path must be an .npz of its outputs (ids "
                  "and logits or probs)", hint: str = "Save the outputs with "
                  "numpy.savez(path, ids=..., logits=...).") -> tuple[dict[str, np.ndarray], str]:
    if isinstance(source, Mapping):
        return {k: np.asarray(v) for k, v in source.items() if k in keys}, "outputs"
    p = Path(source)
    if p.suffix != ".npz":
        raise ConfigError(f"{what}, got {str(source)!r}.")
    if not p.is_file():
        raise DataError(f"Outputs file not found: {p}")
    from miaudit.data._npz import open_npz, read_arrays  # the loaders' one .npz reader

    with open_npz(p, hint) as f:
        arrays = read_arrays(f, p, [k for k in keys if k in f.files])
    return arrays, p.name


def _id_rows(ids: np.ndarray, wanted: np.ndarray, name: str, what: str) -> np.ndarray:
    """Rows of ``wanted`` record IDs in an outputs file's ``ids`` (all present, unique)."""
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{name}: record ID {uniq[counts > 1][0]!r} appears more than once.")
    row = {rid: i for i, rid in enumerate(ids.tolist())}
    missing = [i for i in wanted.tolist() if i not in row]
    if missing:
        raise OutputError(f"{name} has no {what} for {len(missing)} of the records checked "
                          f"(first: record ID {missing[0]!r}).")
    return np.array([row[i] for i in wanted.tolist()], dtype=np.intp)


def _precomputed(source: str | Path | Mapping, sub: Dataset, is_member: np.ndarray,
                 role: str = "") -> PrecomputedOutputs:
    arrays, name = _read_outputs(source)
    if role:
        name = f"{role} ({name})"
    kinds = [k for k in ("logits", "probs") if k in arrays]
    if "ids" not in arrays or len(kinds) != 1:
        raise DataError(f"{name} must hold an array 'ids' and exactly one of 'logits' or "
                        f"'probs' (it has: {', '.join(sorted(arrays)) or 'none'}).")
    ids = arrays["ids"].astype(str)
    values = arrays[kinds[0]]
    if ids.ndim != 1 or values.ndim != 2 or len(values) != len(ids):
        raise DataError(f"{name}: 'ids' must have shape (N,) and '{kinds[0]}' (N, classes), "
                        f"got {ids.shape} and {values.shape}.")
    rows = _id_rows(ids, sub.ids.astype(str), name, "outputs")
    kind = "logits" if kinds[0] == "logits" else "probs"
    outputs = check_outputs(values[rows], kind, n_records=sub.n_records,
                            n_classes=sub.n_classes, source=name)
    return PrecomputedOutputs(outputs, sub.y, is_member, sub.ids.astype(str),
                              sub.fingerprints, name)


def _read_shadows(source: str | Path | Mapping, forget: Dataset
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shadows' logit-scaled confidences and masks on the records of F (in F's order):
    ``(phi_unlearned, unlearned_mask, phi_retrained, retrained_mask)``."""
    arrays, name = _read_outputs(
        source, _SHADOW_KEYS, "Shadow models must be an .npz of their outputs (see the "
        "format in miaudit.governance.forget)", "Save them with numpy.savez(path, ids=..., "
        "unlearned_logits=..., retrained_logits=...).")
    name = f"shadows ({name})"
    if "ids" not in arrays:
        raise DataError(f"{name} must hold an array 'ids' (record IDs).")
    ids = arrays["ids"].astype(str)
    if ids.ndim != 1:
        raise DataError(f"{name}: 'ids' must have shape (N,), got {ids.shape}.")
    rows = _id_rows(ids, forget.ids.astype(str), name, "shadow outputs")
    out = []
    for side in ("unlearned", "retrained"):
        kinds = [k for k in (f"{side}_logits", f"{side}_probs") if k in arrays]
        if len(kinds) != 1:
            raise DataError(f"{name} must hold exactly one of '{side}_logits' or "
                            f"'{side}_probs' (it has: {', '.join(sorted(arrays))}).")
        values = arrays[kinds[0]]
        if values.ndim != 3 or values.shape[1] != len(ids) or values.shape[0] < 1:
            raise DataError(f"{name}: '{kinds[0]}' must have shape (models, {len(ids)}, "
                            f"classes), got {values.shape}.")
        kind = "logits" if kinds[0].endswith("logits") else "probs"
        phi = np.empty((values.shape[0], len(rows)))
        for k in range(values.shape[0]):
            o = check_outputs(values[k, rows], kind, n_records=len(rows),
                              n_classes=forget.n_classes, source=f"{name}, {side} model {k}")
            phi[k] = _phi(o.values, kind, forget.y)
        key = f"{side}_mask"
        mask = arrays.get(key, np.ones((values.shape[0], len(ids)), dtype=bool))
        if mask.dtype != bool or mask.shape != values.shape[:2]:
            raise DataError(f"{name}: '{key}' must be a bool array of shape "
                            f"{values.shape[:2]}, got {mask.dtype} {mask.shape}.")
        mask = mask[:, rows]
        empty = np.flatnonzero(~mask.any(axis=0))
        if empty.size:
            raise DataError(f"{name}: {empty.size} record(s) of F have no {side} shadow "
                            f"(first: record ID {str(forget.ids[empty[0]])!r}); U-LiRA needs "
                            "at least one on each side.")
        out += [phi, mask]
    return out[0], out[1], out[2], out[3]


def _phi(values: np.ndarray, kind: str, labels: np.ndarray) -> np.ndarray:
    """Logit-scaled confidence from logits (or log-probabilities) or probabilities; a
    probability of exactly 0 or 1 maps to +-log(1e-300), as from probabilities."""
    phi = (logit_scaled_confidence(values, labels) if kind == "logits" else
           logit_scaled_confidence_from_probs(values, labels))
    cap = -math.log(1e-300)
    return np.nan_to_num(phi, posinf=cap, neginf=-cap)


class _Played(NamedTuple):
    figures: ModelFigures
    scores: dict[str, np.ndarray]  # per attack, in the order of the records checked
    logits: np.ndarray  # full outputs (log-probabilities for a model giving probabilities)


def _play(model: object, sub: Dataset, forget_ids: np.ndarray, is_member: np.ndarray,
          exposure: str, attacks: list[str], seed: int, alpha: float,
          role: str = "") -> _Played:
    from miaudit.audits import audit

    common = {"exposure": exposure, "attacks": attacks, "seed": seed, "alpha": alpha,
              "fprs": (FPR,)}
    if isinstance(model, str | Path | Mapping):
        result = audit(outputs=_precomputed(model, sub, is_member, role), **common)
    else:
        result = audit(data=sub, model=model, members=forget_ids, **common)
    table = result.scores
    pos = {rid: i for i, rid in enumerate(table["record_id"].astype(str).tolist())}
    order = np.array([pos[i] for i in sub.ids.astype(str).tolist()])
    scores = {a: table[a].to_numpy(dtype=np.float64)[order] for a in attacks}
    sig = result.signals
    spos = {rid: i for i, rid in enumerate(np.asarray(sig["record_ids"]).astype(str).tolist())}
    logits = np.asarray(sig["logits"][0], dtype=np.float64)[
        [spos[i] for i in sub.ids.astype(str).tolist()]]
    return _Played(ModelFigures.from_summary(result.summary()), scores, logits)


def _figures(model: object, sub: Dataset, forget_ids: np.ndarray, is_member: np.ndarray,
             exposure: str, attacks: list[str], seed: int, alpha: float) -> ModelFigures:
    return _play(model, sub, forget_ids, is_member, exposure, attacks, seed, alpha).figures


def verify_forget(
    *,
    data: Dataset | str | Path,
    forget: Sequence,
    fresh: Sequence,
    model: object,
    original: object | None = None,
    retrained: object | None = None,
    shadows: str | Path | Mapping | None = None,
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
    model after forgetting and, when given, on the original model and on a model retrained
    without F (then compared with the model after forgetting, two-sided).

    Parameters
    ----------
    data : Dataset, str or Path
        The data holding both sets (a built-in name, a file, or a loaded Dataset).
    forget : sequence of record IDs
        The records the model should have forgotten (F).
    fresh : sequence of record IDs
        Records that no model trained on, from the same distribution as F.
    model : object
        The model after forgetting: a scikit-learn estimator with ``predict_proba``, a torch
        module, a callable returning probabilities, or precomputed outputs (an ``.npz``
        path or a mapping with ``ids`` and ``logits`` or ``probs``; see the module docs).
    original : object, optional
        The model before forgetting, in the same forms.
    retrained : object, optional
        A model retrained from scratch without F (the oracle), in the same forms; gives
        :attr:`ForgetResult.retrained`.
    shadows : str, Path or mapping, optional
        Shadow models' outputs for U-LiRA (an ``.npz`` or a mapping, format in the module
        docstring); needs ``retrained``.
    attacks : sequence of str, default ("loss", "mentr")
        Reference-free attacks the exposure allows.
    exposure : str, default "probabilities"
        What the attacker sees (U-LiRA reads the full outputs, as the model owner does).
    seed : int, default 0
    alpha : float, default 0.05
        Error rate of each verdict. Against fresh records, each attack's interval has
        level ``1 - alpha / k`` for ``k`` attacks, so that choosing the strongest does not
        inflate it; against the retrained model, ``1 - alpha / t`` for ``t = k`` tests, or
        ``k + 1`` with U-LiRA.
    label_column, id_column : str, optional
        For CSV / Parquet data.

    Returns
    -------
    ForgetResult
        The verdict (F :data:`STILL_MEMBERS` when an attack's AUC interval lies above
        0.5, reported with the strongest such attack; :data:`LESS_MEMBER_LIKE` when none
        does and an attack's interval lies below 0.5; else :data:`INDISTINGUISHABLE`),
        both models' AUCs and TPR at 1% FPR with intervals, the AUC drop from original
        to new, and with ``retrained`` the comparison with it
        (:class:`RetrainedComparison`, verdict :data:`MATCHES_RETRAINED` or another).
    """
    names = list(attacks)
    if not names:
        raise ConfigError("verify_forget needs at least one attack.")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie strictly between 0 and 1, got {alpha}.")
    for role, value in (("model", model), ("retrained", retrained)):
        if isinstance(value, str) and not value.endswith(".npz"):
            raise ConfigError(f"{role} {value!r}: give a fitted model (or an .npz of its "
                              "outputs), not a recipe name.")
    if shadows is not None and retrained is None:
        raise ConfigError("'shadows' (U-LiRA) needs 'retrained' too: U-LiRA's balanced "
                          "game sets the model after forgetting against the retrained one.")
    ds = data if isinstance(data, Dataset) else load_dataset(
        data, label_column=label_column, id_column=id_column)
    pos_f = _positions(ds, forget, "forget")
    pos_n = _positions(ds, fresh, "fresh")
    shared = np.intersect1d(pos_f, pos_n)
    if len(shared):
        raise MembershipError(f"{len(shared)} record(s) are in both 'forget' and 'fresh' "
                              f"(first: {str(ds.ids[shared[0]])!r}); fresh records must be others.")
    if retrained is not None and min(len(pos_f), len(pos_n)) < 2:
        raise MembershipError(f"The comparison with the retrained model needs at least 2 "
                              f"records in 'forget' and in 'fresh', got {len(pos_f)} and "
                              f"{len(pos_n)}.")
    sub = ds.subset(np.concatenate([pos_f, pos_n]))
    is_member = np.arange(sub.n_records) < len(pos_f)
    forget_ids = sub.ids[is_member]
    level = alpha / len(names)
    new = _play(model, sub, forget_ids, is_member, exposure, names, seed, level,
                "the model after forgetting" if retrained is not None else "")
    old = None if original is None else _figures(original, sub, forget_ids, is_member,
                                                 exposure, names, seed, level)
    best = new.figures.strongest_attack
    # each interval has level 1 - alpha/k, so any one of them above 0.5 is evidence at
    # level alpha (union bound), not only the highest AUC's
    attacks_new = new.figures.attacks
    above = [a for a, e in attacks_new.items() if e["auc_ci"][0] > 0.5]
    if above:
        if best not in above:
            best = max(above, key=lambda a: (attacks_new[a]["auc"], attacks_new[a]["auc_ci"][0]))
        verdict = STILL_MEMBERS
    elif any(e["auc_ci"][1] < 0.5 for e in attacks_new.values()):
        verdict = LESS_MEMBER_LIKE
    else:
        verdict = INDISTINGUISHABLE
    drop = None if old is None else {a: old.attacks[a]["auc"] - attacks_new[a]["auc"]
                                     for a in attacks_new}
    comparison = None
    if retrained is not None:
        comparison = _against_retrained(new, retrained, shadows, sub, forget_ids, is_member,
                                        exposure, names, seed, alpha, level)
    return ForgetResult(verdict, best, new.figures, old, drop, len(pos_f), len(pos_n),
                        new.figures.summary["exposure"], alpha, 1 - level, comparison)


def _against_retrained(new: _Played, retrained: object, shadows, sub: Dataset,
                       forget_ids: np.ndarray, is_member: np.ndarray, exposure: str,
                       names: list[str], seed: int, alpha: float,
                       level: float) -> RetrainedComparison:
    # the shadows are read first: a bad file fails before the retrained model is queried
    f_sub = sub.subset(np.flatnonzero(is_member))
    shadow = None if shadows is None else _read_shadows(shadows, f_sub)
    tests = len(names) + (shadow is not None)
    a_level = alpha / tests
    ret = _play(retrained, sub, forget_ids, is_member, exposure, names, seed, level,
                "the retrained model")
    attacks = {a: compare_aucs(new.scores[a], ret.scores[a], is_member, a_level)
               for a in names}
    ulira = None
    if shadow is not None:
        phi_new = _phi(new.logits[is_member], "logits", f_sub.y)
        phi_ret = _phi(ret.logits[is_member], "logits", f_sub.y)
        ulira = ulira_figures(forget_ids, phi_new, phi_ret, shadow, alpha=a_level)
    verdict, best = retrained_verdict(attacks, ulira is not None and ulira.detected)
    return RetrainedComparison(verdict, best, attacks, ret.figures, ulira, 1 - a_level)
