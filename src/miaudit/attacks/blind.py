"""Blind baseline: can members be told from non-members without any model?

A membership-inference attack on a language model is only evidence of memorisation when the
member and non-member texts come from the same distribution. When they do not (a temporal
shift, a different source or format), a classifier that reads the texts alone separates them,
and a "successful" attack may be measuring that shift. :func:`blind_baseline` fits such a
model-free classifier with cross-fitting, and :func:`blind_warning` says when its AUC
undermines the attacks' AUCs.

References
----------
Duan et al. (2024), "Do Membership Inference Attacks Work on Large Language Models?", COLM.
Das, Zhang & Tramèr (2024), "Blind Baselines Beat Membership Inference Attacks for
Foundation Models", arXiv:2406.16201.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.errors import ConfigError, MembershipError
from miaudit.metrics import auc_with_ci

__all__ = ["META_FEATURES", "BlindResult", "blind_baseline", "blind_warning", "meta_features"]

_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
_DATE = re.compile(r"(?<!\d)(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})(?!\d)")
_MONTH = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\b",
                    re.IGNORECASE)

META_FEATURES: tuple[str, ...] = (
    "log_chars", "log_words", "mean_word_length", "digit_share", "uppercase_share",
    "log_years", "has_year", "latest_year", "log_dates", "log_months",
)
"""Names of the meta features, in column order (see :func:`blind_baseline`)."""

_C = 1.0


@dataclass(frozen=True, eq=False)
class BlindResult:
    """Result of :func:`blind_baseline`.

    Attributes
    ----------
    scores : ndarray of float64 of shape (N,)
        Cross-fitted log-odds of membership from the text alone; higher = predicted member.
    auc : float
        AUC of ``scores`` (0.5 = members and non-members look alike).
    auc_ci : (float, float)
        95% DeLong interval of the AUC (:func:`miaudit.metrics.auc_with_ci`).
    features : dict
        What the classifier reads and how it was fitted (JSON-ready).
    top_member_terms, top_non_member_terms : tuple of (str, float)
        The ten features pushing hardest towards member / non-member in a classifier fitted
        on all texts (for diagnosis only; the scores never use it), with their weights.
    """

    scores: np.ndarray
    auc: float
    auc_ci: tuple[float, float]
    features: dict[str, Any]
    top_member_terms: tuple[tuple[str, float], ...] = field(default=())
    top_non_member_terms: tuple[tuple[str, float], ...] = field(default=())


def meta_features(texts: Sequence[str]) -> np.ndarray:
    """The :data:`META_FEATURES` of each text (lengths, digits, case, years, dates): an
    ``(N, len(META_FEATURES))`` array, computed from the text alone."""
    rows = []
    for text in texts:
        n_chars = len(text)
        words = text.split()
        letters = sum(c.isalpha() for c in text)
        years = [int(y) for y in _YEAR.findall(text)]
        rows.append((
            np.log1p(n_chars),
            np.log1p(len(words)),
            (sum(len(w) for w in words) / len(words)) if words else 0.0,
            sum(c.isdigit() for c in text) / max(n_chars, 1),
            sum(c.isupper() for c in text) / max(letters, 1),
            np.log1p(len(years)),
            float(bool(years)),
            (max(years) - 2000) / 10 if years else 0.0,
            np.log1p(len(_DATE.findall(text))),
            np.log1p(len(_MONTH.findall(text))),
        ))
    return np.asarray(rows, dtype=np.float64).reshape(len(texts), len(META_FEATURES))


class _Featurizer:
    """TF-IDF word 1-2-grams + char 3-5-grams + standardised meta features, fitted once."""

    def __init__(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import StandardScaler

        self.vectorizers = {
            "word": TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                    min_df=2, lowercase=True, dtype=np.float64),
            "char": TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                    min_df=2, lowercase=True, dtype=np.float64),
        }
        self.used: list[str] = []
        self.scaler = StandardScaler()

    def fit_transform(self, texts: Sequence[str], meta: np.ndarray):
        from scipy import sparse

        blocks = []
        self.used = []
        for name, vec in self.vectorizers.items():
            try:
                blocks.append(vec.fit_transform(texts))
            except ValueError:  # empty vocabulary: no term occurs in two training texts
                continue
            self.used.append(name)
        blocks.append(sparse.csr_matrix(self.scaler.fit_transform(meta)))
        return sparse.hstack(blocks, format="csr")

    def transform(self, texts: Sequence[str], meta: np.ndarray):
        from scipy import sparse

        blocks = [self.vectorizers[name].transform(texts) for name in self.used]
        blocks.append(sparse.csr_matrix(self.scaler.transform(meta)))
        return sparse.hstack(blocks, format="csr")

    def names(self) -> list[str]:
        out = []
        for name in self.used:
            out.extend(f"{name}:{t!r}" for t in self.vectorizers[name].get_feature_names_out())
        out.extend(f"meta:{m}" for m in META_FEATURES)
        return out


def _classifier():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=_C, class_weight="balanced", solver="liblinear",
                              max_iter=1000, random_state=0)


def _check_inputs(texts: Sequence[str], is_member: Any, folds: int) -> tuple[list[str],
                                                                              np.ndarray]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string.")
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"texts[{bad}] is a {type(texts[bad]).__name__}, not a str.")
    member = np.asarray(is_member)
    if member.ndim != 1 or len(member) != len(texts):
        raise MembershipError(f"is_member must be a 1-D array with one entry per text "
                              f"({len(texts)}), got shape {member.shape}.")
    if member.dtype != bool:
        if member.dtype.kind not in "iuf" or not np.isin(member, (0, 1)).all():
            raise MembershipError(f"is_member must hold booleans (or 0/1), got dtype "
                                  f"{member.dtype}.")
        member = member.astype(bool)
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {folds!r}.")
    n_in, n_out = int(member.sum()), int((~member).sum())
    if min(n_in, n_out) < 2:
        raise MembershipError(f"The blind baseline needs at least 2 members and 2 "
                              f"non-members, got {n_in} and {n_out}.")
    if folds > len(texts):
        raise ConfigError(f"folds={folds} exceeds the number of texts ({len(texts)}).")
    return texts, member


def _fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    """Seeded random partition into ``folds`` near-equal parts, independent of the labels."""
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return fold


def blind_baseline(
    texts: Sequence[str],
    is_member: Sequence[bool] | np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
) -> BlindResult:
    """Score membership from the text alone, with a cross-fitted model-free classifier.

    Each text is scored by a classifier fitted on the texts of the other folds, so its own
    label is never used for its score. Folds are a seeded random partition into ``folds``
    near-equal parts that does not look at the labels (a stratified split would move a text
    to another fold when its own label changed); membership is therefore balanced across
    folds in expectation, and ``class_weight="balanced"`` corrects what is left in each
    training set.

    Features, fitted on the training folds only: TF-IDF of word 1-2-grams and of character
    3-5-grams within word boundaries (scikit-learn ``analyzer="char_wb"``; lower-cased,
    sublinear tf, ``min_df=2``), and the standardised :data:`META_FEATURES`: log length in
    characters and words, mean word length, share of digits, share of upper-case letters
    among letters, log count of years 19xx / 20xx, whether one occurs and the latest
    ((year - 2000) / 10), log count of numeric dates (2021-03-04, 4/3/21) and of month
    names. Classifier: L2 logistic regression, ``C = 1.0`` (liblinear).

    Parameters
    ----------
    texts : sequence of str of length N
    is_member : array-like of bool of shape (N,)
        At least 2 members and 2 non-members.
    folds : int, default 5
    seed : int, default 0
        Seed of the fold partition.

    Returns
    -------
    result : BlindResult
        ``scores`` of shape (N,), higher = predicted member; ``auc`` and its 95% DeLong
        ``auc_ci``.

    Raises
    ------
    MembershipError
        Wrong length, non-boolean labels, fewer than 2 members or non-members, or a fold
        whose training texts hold one class only.
    ConfigError
        ``folds`` < 2 or larger than N.

    References
    ----------
    Das, Zhang & Tramèr (2024), "Blind Baselines Beat Membership Inference Attacks for
    Foundation Models". Duan et al. (2024), "Do Membership Inference Attacks Work on Large
    Language Models?".

    Examples
    --------
    >>> texts = [f"report {i} from {2019 + i % 2}" for i in range(20)]
    >>> texts += [f"report {i} from {2023 + i % 2}" for i in range(20)]
    >>> res = blind_baseline(texts, [True] * 20 + [False] * 20, folds=4)
    >>> res.scores.shape, res.auc > 0.9
    ((40,), True)
    """
    texts, member = _check_inputs(texts, is_member, folds)
    n = len(texts)
    meta = meta_features(texts)
    fold = _fold_of(n, int(folds), int(seed))
    scores = np.empty(n, dtype=np.float64)
    for k in range(int(folds)):
        test = fold == k
        train = ~test
        if member[train].all() or not member[train].any():
            raise MembershipError(f"Fold {k} of the blind baseline (seed {seed}) leaves only "
                                  f"one class to train on; give more members and "
                                  f"non-members, fewer folds or another seed.")
        featurizer = _Featurizer()
        train_texts = [t for t, m in zip(texts, train, strict=True) if m]
        test_texts = [t for t, m in zip(texts, test, strict=True) if m]
        X_train = featurizer.fit_transform(train_texts, meta[train])
        model = _classifier().fit(X_train, member[train])
        scores[test] = model.decision_function(featurizer.transform(test_texts, meta[test]))
    auc, ci = auc_with_ci(scores, member)

    full = _Featurizer()
    model = _classifier().fit(full.fit_transform(texts, meta), member)
    names = np.array(full.names(), dtype=object)
    weights = model.coef_.ravel()
    order = np.argsort(weights, kind="stable")
    top_in = tuple((str(names[j]), float(weights[j])) for j in order[::-1][:10]
                   if weights[j] > 0)
    top_out = tuple((str(names[j]), float(weights[j])) for j in order[:10] if weights[j] < 0)
    features = {
        "word_ngrams": [1, 2],
        "char_ngrams": [3, 5],
        "char_analyzer": "char_wb",
        "tfidf": {"sublinear_tf": True, "min_df": 2, "lowercase": True},
        "meta": list(META_FEATURES),
        "classifier": f"LogisticRegression(C={_C}, penalty='l2', class_weight='balanced', "
                      f"solver='liblinear')",
        "folds": int(folds),
        "fold_assignment": "seeded random partition, independent of the labels",
        "seed": int(seed),
        "n_members": int(member.sum()),
        "n_non_members": int((~member).sum()),
    }
    return BlindResult(scores=scores, auc=float(auc), auc_ci=(float(ci[0]), float(ci[1])),
                       features=features, top_member_terms=top_in, top_non_member_terms=top_out)


def blind_warning(
    blind_auc: float,
    best_attack_auc: float | None,
    *,
    margin: float = 0.05,
    blind_auc_ci: tuple[float, float] | None = None,
    ci_floor: float = 0.55,
) -> str | None:
    """A warning when a model-free classifier does about as well as the attacks.

    Fires when the blind AUC is within ``margin`` of the best attack's AUC or above it, or
    when the blind AUC's interval lies clearly above chance (lower bound > ``ci_floor``).

    Parameters
    ----------
    blind_auc : float
        :attr:`BlindResult.auc`.
    best_attack_auc : float or None
        Highest AUC among the attacks on the same texts; None checks the interval only.
    margin : float, default 0.05
    blind_auc_ci : (float, float), optional
        :attr:`BlindResult.auc_ci`; without it only the AUC comparison is made.
    ci_floor : float, default 0.55

    Returns
    -------
    message : str or None
        One paragraph for the report, or None when the blind baseline is harmless.

    References
    ----------
    Duan et al. (2024); Das, Zhang & Tramèr (2024).

    Examples
    --------
    >>> blind_warning(0.51, 0.80, blind_auc_ci=(0.45, 0.57)) is None
    True
    >>> print(blind_warning(0.96, 0.93, blind_auc_ci=(0.93, 0.99)))  # doctest: +ELLIPSIS
    WARNING: a model-free classifier that reads only the texts separates members from ...
    """
    for label, value in (("blind_auc", blind_auc), ("best_attack_auc", best_attack_auc)):
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"{label} must lie in [0, 1], got {value!r}.")
    if not margin >= 0:
        raise ConfigError(f"margin must be >= 0, got {margin!r}.")
    shifted = blind_auc_ci is not None and float(blind_auc_ci[0]) > ci_floor
    close = best_attack_auc is not None and blind_auc >= float(best_attack_auc) - margin
    if not (shifted or close):
        return None
    cite = ("(Duan et al. 2024, \"Do Membership Inference Attacks Work on Large Language "
            "Models?\"; Das et al. 2024, \"Blind Baselines Beat Membership Inference Attacks "
            "for Foundation Models\")")
    ci_text = ("" if blind_auc_ci is None
               else f", 95% CI [{blind_auc_ci[0]:.3f}, {blind_auc_ci[1]:.3f}]")
    parts = []
    if shifted or blind_auc > ci_floor:
        parts.append(f"WARNING: a model-free classifier that reads only the texts separates "
                     f"members from non-members with AUC {blind_auc:.3f}{ci_text}. The member "
                     f"and non-member texts differ in distribution (time, source or format), "
                     f"so the attacks may measure that shift, not memorisation.")
    else:
        parts.append(f"WARNING: a model-free classifier that reads only the texts reaches AUC "
                     f"{blind_auc:.3f}{ci_text}.")
    if close:
        parts.append(f"The best attack's AUC ({float(best_attack_auc):.3f}) is not more than "
                     f"{margin:.2f} above it, so it shows no membership signal beyond what the "
                     f"texts alone give.")
    parts.append(f"Use members and non-members drawn from one distribution (for example a "
                 f"random split of one corpus) before reading the attack results {cite}.")
    return " ".join(parts)
