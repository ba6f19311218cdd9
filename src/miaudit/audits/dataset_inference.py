"""Dataset inference: was this *set* of texts used to train a causal language model?

Membership inference on one text is weak against large language models (near chance on
matched splits, Duan et al. 2024), but a small, consistent signal over many texts adds up.
Dataset inference (Maini et al. 2024) asks about a whole *suspect* set, against a
*validation* set the model surely never saw, drawn from the same distribution:

1. **Features.** Every text gets a vector of membership-inference scores that need only the
   model (and a reference model when one is given): ``lm-loss``, ``zlib``, ``lowercase``,
   Min-K% and Min-K%++ at k in :data:`DEFAULT_KS`, Max-K% (the mean of the *highest* k
   token log-probabilities, as in the paper) and ``reference``. Higher = more member-like
   for each, but the test does not rely on the signs: the classifier learns the direction,
   so a suspect set that differs from the validation set in either direction is told
   apart (hence the distribution-shift check below).
2. **Split.** Suspect and validation are each cut in two halves by the seed (A_train /
   A_test, B_train / B_test).
3. **Learn.** Each feature is clipped to the 2.5% and 97.5% quantiles of the training
   halves (the paper removes outlying scores) and standardised with their mean and
   standard deviation; an L2 logistic regression (``C = 1``, balanced classes;
   scikit-learn's ``LogisticRegression``) learns to tell A_train (1) from B_train (0).
4. **Test.** The fitted model scores the held-out halves; a one-sided Welch t-test
   (``scipy.stats.ttest_ind(equal_var=False, alternative="greater")``) asks whether the
   suspect test scores are higher than the validation ones.

The p-value is valid because the classifier never sees the texts it scores: under the null
(the model treats suspect and validation texts alike, that is, both are non-members from
one distribution), the test halves' scores are two independent samples of one
distribution, whatever the classifier learnt.

**Several splits, one p-value.** The p-value of one split depends on the seed (a "p-value
lottery"). :func:`split_test` repeats steps 2-4 over ``splits`` random splits (default 5)
and combines them with Bonferroni, ``p = min(1, K min_k p_k)``, which is valid whatever
the dependence between the splits' p-values. Chosen by simulation (20 correlated features,
400 null data sets per setting): the Cauchy combination (Liu & Xie 2020) of 10 splits
rejected 6-7% of null data sets at level 5% (the splits' p-values are strongly positively
dependent), twice the median p-value (Meinshausen et al. 2009) was valid but lost most of
the power (12% against 26% for one split at 50 texts per set), while Bonferroni over 5-10
splits was valid (2-4% at level 5%), about as powerful as one split, and gave the same
decision for more seeds on a fixed data set. On AG News with a tiny GPT-2
(``benchmarks/RESULTS.md``) five splits detected 100 member texts in 93% of draws against
88% for one split; with a barely trained model (per-text AUC 0.55) one split was sometimes
ahead (11% against 4% at 50 texts). ``splits=1`` is the paper's single split.

**Distribution shift.** Dataset inference is only as good as its validation set: if the
suspect texts differ from the validation texts in any way (time, source, format), the
classifier learns that difference and the test rejects with no training at all. The same
test is therefore run on model-free features only (:func:`text_statistics`: length,
word and character statistics, compressibility, years and dates), on the same splits; when
it rejects too, the result says so and a :class:`~miaudit.errors.DegenerateResultWarning`
is issued: the rejection may measure the shift, not training. On AG News, 100 Sports
against 100 World texts, neither trained on, gave p = 0.00018 under a tiny GPT-2 trained
for 4 epochs, and the check fired (p = 4e-05). The check sees surface statistics only: a
shift of topic or vocabulary at equal length and style can escape it.

References
----------
Maini, Jia, Papernot & Dziedzic, "LLM Dataset Inference: Did you train on my dataset?",
NeurIPS 2024 (arXiv:2406.06443). Duan et al., "Do Membership Inference Attacks Work on
Large Language Models?", COLM 2024. Das, Zhang & Tramer, "Blind Baselines Beat Membership
Inference Attacks for Foundation Models", 2024.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.attacks.blind import META_FEATURES, meta_features
from miaudit.attacks.lm import (
    LMAttackInput,
    lm_loss,
    lowercase_attack,
    min_k,
    min_k_plus_plus,
    reference_attack,
    zlib_attack,
)
from miaudit.errors import ConfigError, DataError, DataWarning, DegenerateResultWarning
from miaudit.metrics import auc_with_ci
from miaudit.targets.lm import CausalLMTarget, _check_texts

__all__ = [
    "DEFAULT_KS",
    "MIN_TEXTS",
    "NO_EVIDENCE",
    "TEXT_STATISTICS",
    "USED",
    "DatasetInferenceResult",
    "SplitTest",
    "dataset_inference",
    "lm_features",
    "split_test",
    "text_statistics",
]

#: Fractions of tokens of the Min-K%, Min-K%++ and Max-K% features (the paper's grid).
DEFAULT_KS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
#: Fewest texts per set that :func:`dataset_inference` accepts (10 train + 10 test).
MIN_TEXTS = 20
#: The verdicts.
USED = "the suspect set was used in training"
NO_EVIDENCE = "no evidence that the suspect set was used in training"
#: Share of each tail that the features are clipped to (quantiles of the training halves).
CLIP = 0.025
#: Inverse L2 strength of the logistic regression.
C = 1.0


# --------------------------------------------------------------------------- the test


@dataclass(frozen=True, eq=False)
class SplitTest:
    """Result of :func:`split_test`: one Welch t-test per random split, combined.

    Attributes
    ----------
    p_value : float
        Bonferroni combination over the splits, ``min(1, K * min(split_p_values))``.
    split_p_values, t_statistics : ndarray (K,)
        One-sided Welch test of each split (suspect test scores greater).
    mean_differences : ndarray (K,)
        Mean score of the suspect test half minus that of the validation test half
        (log-odds of the classifier).
    effect_sizes : ndarray (K,)
        ``mean_differences`` over ``sqrt((var_suspect + var_validation) / 2)`` (Cohen's d).
    aucs : ndarray (K,), auc_cis : ndarray (K, 2)
        AUC of suspect against validation test scores and its 95% DeLong interval.
    weights : ndarray (K, F)
        Logistic-regression coefficients on the standardised features (log-odds per
        standard deviation; positive = higher in the suspect set).
    scores : list of (ndarray, ndarray)
        Per split, the test scores of the suspect and validation halves.
    n_train, n_test : (int, int)
        Suspect and validation texts in the training and in the test halves.
    """

    p_value: float
    split_p_values: np.ndarray
    t_statistics: np.ndarray
    mean_differences: np.ndarray
    effect_sizes: np.ndarray
    aucs: np.ndarray
    auc_cis: np.ndarray
    weights: np.ndarray
    scores: list[tuple[np.ndarray, np.ndarray]]
    n_train: tuple[int, int]
    n_test: tuple[int, int]

    @property
    def splits(self) -> int:
        return len(self.split_p_values)

    @property
    def median_split(self) -> int:
        """The split whose AUC is the median (the lower middle one for an even count): the
        one whose effect is reported, chosen without looking at the p-values."""
        return int(np.argsort(self.aucs, kind="stable")[(self.splits - 1) // 2])


def _halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    return order[: n // 2], order[n // 2 :]


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """One-sided Welch t-test that ``a`` is greater, ``(t, p)``
    (``scipy.stats.ttest_ind(a, b, equal_var=False, alternative="greater")``). Constant
    scores in both halves give ``(0, 1)``: no evidence."""
    from scipy.stats import ttest_ind

    if not a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b) > 0:
        return 0.0, 1.0
    result = ttest_ind(a, b, equal_var=False, alternative="greater")
    return float(result.statistic), float(result.pvalue)


def _logistic(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """L2 logistic regression with balanced class weights (scikit-learn's
    ``LogisticRegression(C=c, class_weight="balanced")``, Newton-Cholesky solver: a few
    milliseconds for these small problems); its weights and intercept."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced", solver="newton-cholesky",
                               tol=1e-8, max_iter=200).fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


def _check_matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"'{name}' must be a 2-D array (texts x features), got shape "
                        f"{arr.shape}.")
    if arr.shape[0] < 4:
        raise DataError(f"'{name}' has {arr.shape[0]} rows; the test needs at least 4 (two "
                        "to train on and two to test).")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise DataError(f"'{name}' holds NaN or infinite features (first in row {bad}).")
    return arr


def _check_settings(seed: Any, splits: Any, alpha: Any | None = None) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"'seed' must be an integer, got {seed!r}.")
    if isinstance(splits, bool) or not isinstance(splits, int | np.integer) or splits < 1:
        raise ConfigError(f"'splits' must be an integer >= 1, got {splits!r}.")
    if alpha is not None and not (isinstance(alpha, int | float) and not isinstance(
            alpha, bool) and 0 < alpha < 1):
        raise ConfigError(f"'alpha' must be a number in (0, 1), got {alpha!r}.")


def split_test(
    suspect: np.ndarray,
    validation: np.ndarray,
    *,
    seed: int = 0,
    splits: int = 5,
) -> SplitTest:
    """Dataset-inference test on feature matrices: are the suspect rows "higher"?

    For each of ``splits`` random splits (drawn from ``numpy.random.default_rng(seed)``,
    one permutation of each set per split): halve both sets; clip every feature to the
    2.5% / 97.5% quantiles of the pooled training halves and standardise it with their mean
    and standard deviation (a constant feature becomes 0); fit an L2 logistic regression
    (``C = 1``, ``class_weight="balanced"``) of suspect (1) against validation (0) on the
    training halves; score the test halves with its decision function (log-odds); and run
    a one-sided Welch t-test that the suspect test scores are greater. The splits'
    p-values are combined with Bonferroni (see the module notes for why).

    Under the null (suspect and validation rows independent draws of one distribution)
    the p-value is valid: each split's classifier never sees the rows it scores.

    Parameters
    ----------
    suspect : array (N_s, F)
    validation : array (N_v, F)
        At least 4 rows each, finite, the same F features in the same order.
    seed : int, default 0
    splits : int, default 5

    Returns
    -------
    SplitTest
        ``p_value`` small when the suspect rows score higher.

    References
    ----------
    Maini et al., "LLM Dataset Inference: Did you train on my dataset?", NeurIPS 2024.
    Welch, "The generalization of Student's problem when several different population
    variances are involved", Biometrika 1947.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> same = split_test(rng.normal(size=(100, 3)), rng.normal(size=(100, 3)))
    >>> shifted = split_test(rng.normal(0.5, size=(100, 3)), rng.normal(size=(100, 3)))
    >>> bool(same.p_value > 0.05), bool(shifted.p_value < 1e-4), shifted.splits
    (True, True, 5)
    """
    _check_settings(seed, splits)
    xs, xv = _check_matrix(suspect, "suspect"), _check_matrix(validation, "validation")
    if xs.shape[1] != xv.shape[1] or xs.shape[1] == 0:
        raise DataError(f"'suspect' and 'validation' must have the same number (>= 1) of "
                        f"feature columns, got {xs.shape[1]} and {xv.shape[1]}.")
    rng = np.random.default_rng(int(seed))
    p, t, diff, d, auc, ci, w, scores = [], [], [], [], [], [], [], []
    for _ in range(int(splits)):
        s_train, s_test = _halves(len(xs), rng)
        v_train, v_test = _halves(len(xv), rng)
        train = np.vstack([xs[s_train], xv[v_train]])
        low, high = np.quantile(train, [CLIP, 1 - CLIP], axis=0)
        train = np.clip(train, low, high)
        mean, std = train.mean(axis=0), train.std(axis=0)
        std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, np.inf)

        def standard(x, low=low, high=high, mean=mean, std=std):
            return (np.clip(x, low, high) - mean) / std

        label = np.r_[np.ones(len(s_train)), np.zeros(len(v_train))]
        coef, intercept = _logistic(standard(train), label, C)
        a = standard(xs[s_test]) @ coef + intercept
        b = standard(xv[v_test]) @ coef + intercept
        t_k, p_k = _welch(a, b)
        pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
        auc_k, ci_k = auc_with_ci(np.r_[a, b], np.r_[np.ones(len(a), bool),
                                                    np.zeros(len(b), bool)])
        p.append(p_k)
        t.append(t_k)
        diff.append(a.mean() - b.mean())
        d.append((a.mean() - b.mean()) / pooled if pooled > 0 else 0.0)
        auc.append(auc_k)
        ci.append(ci_k)
        w.append(coef)
        scores.append((a, b))
    p_arr = np.asarray(p)
    return SplitTest(
        p_value=float(min(1.0, len(p_arr) * p_arr.min())), split_p_values=p_arr,
        t_statistics=np.asarray(t), mean_differences=np.asarray(diff),
        effect_sizes=np.asarray(d), aucs=np.asarray(auc), auc_cis=np.asarray(ci),
        weights=np.asarray(w), scores=scores,
        n_train=(len(xs) // 2, len(xv) // 2),
        n_test=(len(xs) - len(xs) // 2, len(xv) - len(xv) // 2))


# --------------------------------------------------------------------------- features


def _max_k(logprobs: list[np.ndarray], k: float) -> np.ndarray:
    """Mean of the ``max(1, floor(k T))`` highest token log-probabilities (Max-K%)."""
    out = np.empty(len(logprobs))
    for i, lp in enumerate(logprobs):
        n = max(1, int(np.floor(k * len(lp) + 1e-9)))
        out[i] = np.sort(lp)[len(lp) - n :].mean()
    return out


def lm_features(
    target,
    texts: list[str],
    *,
    reference=None,
    ks: tuple[float, ...] = DEFAULT_KS,
) -> tuple[list[str], np.ndarray]:
    """Membership-inference features of each text under a causal LM (Maini et al. 2024).

    Queries ``target.token_scores`` on the texts and on the lowercased texts (and
    ``reference.token_scores`` on the texts when given) once each, then computes, per text:
    ``lm-loss``, ``zlib``, ``lowercase``, ``min-k@k`` and ``max-k@k`` for every ``k`` in
    ``ks``, ``min-k++@k`` when the target gives the vocabulary statistics
    (:class:`~miaudit.signals.tokens.TokenScores` ``mean``/``std``), and ``reference``.
    Each comes from :mod:`miaudit.attacks.lm` (higher = more member-like), except Max-K%,
    the mean of the highest ``k`` share of token log-probabilities.

    Parameters
    ----------
    target : object with ``token_scores(texts) -> TokenScores``
    texts : list of str
    reference : object with ``token_scores``, optional
    ks : tuple of float, default :data:`DEFAULT_KS`

    Returns
    -------
    names : list of str, F
    features : ndarray (N, F)
    """
    scores = target.token_scores(texts)
    lower = target.token_scores([t.lower() for t in texts])
    ref = None if reference is None else reference.token_scores(texts)
    inputs = LMAttackInput(texts, scores, lowercase=lower, reference=ref)
    columns: dict[str, np.ndarray] = {
        "lm-loss": lm_loss(inputs), "zlib": zlib_attack(inputs),
        "lowercase": lowercase_attack(inputs)}
    for k in ks:
        columns[f"min-k@{k:g}"] = min_k(inputs, k=k)
    if scores.mean is not None:
        for k in ks:
            columns[f"min-k++@{k:g}"] = min_k_plus_plus(inputs, k=k)
    for k in ks:
        columns[f"max-k@{k:g}"] = _max_k(scores.logprobs, k)
    if ref is not None:
        columns["reference"] = reference_attack(inputs)
    return list(columns), np.column_stack(list(columns.values()))


#: Names of :func:`text_statistics`'s columns, in order.
TEXT_STATISTICS: tuple[str, ...] = (*META_FEATURES, "zlib_bits_per_char", "punctuation_share",
                                    "space_share", "non_ascii_share", "unique_word_share",
                                    "capitalised_word_share", "log_sentences")


def text_statistics(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Model-free features of each text, for the distribution-shift check.

    The blind baseline's meta features (:data:`miaudit.attacks.blind.META_FEATURES`: log
    length in characters and words, mean word length, digit and upper-case shares, years,
    dates and month names) and: zlib-compressed bits per character, the shares of
    punctuation, white space and non-ASCII characters, of distinct (lower-cased) words and
    of capitalised words, and the log number of sentences (``.``, ``!``, ``?``).

    Returns
    -------
    names : list of str, :data:`TEXT_STATISTICS`
    features : ndarray (N, 17)

    Examples
    --------
    >>> names, x = text_statistics(["Stocks rose 3% in 2021.", "hello world"])
    >>> x.shape, names[0]
    ((2, 17), 'log_chars')
    """
    rows = []
    for text in texts:
        n = max(len(text), 1)
        words = text.split()
        n_words = max(len(words), 1)
        rows.append((
            len(zlib.compress(text.encode("utf-8"))) * 8 / n,
            sum(not c.isalnum() and not c.isspace() for c in text) / n,
            sum(c.isspace() for c in text) / n,
            sum(ord(c) > 127 for c in text) / n,
            len({w.lower() for w in words}) / n_words,
            sum(w[:1].isupper() for w in words) / n_words,
            np.log1p(sum(text.count(c) for c in ".!?")),
        ))
    extra = np.asarray(rows, dtype=np.float64).reshape(len(texts), 7)
    return list(TEXT_STATISTICS), np.hstack([meta_features(texts), extra])


# --------------------------------------------------------------------------- texts


def _clean_texts(texts: Any, name: str) -> list[str]:
    """``texts`` as a list of non-empty strings (:func:`miaudit.targets.lm._check_texts`
    checks the list), or a one-line error."""
    out = _check_texts(texts, name)
    for i, t in enumerate(out):
        if not t.strip():
            raise DataError(f"'{name}' text {i} is empty (or only white space); remove "
                            "empty texts: they give the model nothing to score.")
    return out


def _key(text: str) -> str:
    return " ".join(text.split())


def _deduplicate(suspect: list[str], validation: list[str], overlap: str
                 ) -> tuple[list[str], list[str], dict[str, int]]:
    """Drop repeated texts within each set (keep the first) and, from the validation set,
    texts also in the suspect set; texts are compared with white space collapsed."""
    if overlap not in ("drop", "error"):
        raise ConfigError(f"'overlap' must be 'drop' or 'error', got {overlap!r}.")
    counts: dict[str, int] = {}
    kept: dict[str, list[str]] = {}
    for name, texts in (("suspect", suspect), ("validation", validation)):
        seen: set[str] = set()
        kept[name] = []
        for t in texts:
            if _key(t) not in seen:
                seen.add(_key(t))
                kept[name].append(t)
        counts[f"n_{name}_duplicates_dropped"] = len(texts) - len(kept[name])
    in_suspect = {_key(t) for t in kept["suspect"]}
    shared = [t for t in kept["validation"] if _key(t) in in_suspect]
    counts["n_overlap_dropped"] = len(shared)
    if shared and overlap == "error":
        raise DataError(f"{len(shared)} validation text(s) also appear in the suspect set "
                        f"(the first: {shared[0][:60]!r}); the validation set must hold "
                        "texts the model never trained on. Remove them, or pass "
                        "overlap='drop'.")
    for name in ("suspect", "validation"):
        n = counts[f"n_{name}_duplicates_dropped"]
        if n:
            warnings.warn(f"Dropped {n} repeated text(s) from the {name} set (kept the first "
                          "of each): a text in both halves of a split would leak its score.",
                          DataWarning, stacklevel=3)
    if shared:
        warnings.warn(f"Dropped {len(shared)} validation text(s) that also appear in the "
                      "suspect set: the validation set must hold texts the model never "
                      "trained on.", DataWarning, stacklevel=3)
        kept["validation"] = [t for t in kept["validation"] if _key(t) not in in_suspect]
    return kept["suspect"], kept["validation"], counts


def _as_target(model, role: str, *, device: str, batch_size: int, progress: bool):
    if isinstance(model, str | Path):
        return CausalLMTarget.load(model, device=device, batch_size=batch_size,
                                   progress=progress)
    if callable(getattr(model, "token_scores", None)):
        return model
    raise ConfigError(f"The {role} must be a local model folder or an object with "
                      f"token_scores(texts) -> TokenScores, got {type(model).__name__}.")


# --------------------------------------------------------------------------- result


def _split_dict(test: SplitTest, names: list[str]) -> dict:
    m = test.median_split
    return {
        "p_value": test.p_value,
        "combination": f"Bonferroni over {test.splits} split(s): min(1, K * min p)",
        "split_p_values": test.split_p_values.tolist(),
        "t_statistics": test.t_statistics.tolist(),
        "median_split": m,
        "auc": float(test.aucs[m]),
        "auc_ci": [float(v) for v in test.auc_cis[m]],
        "mean_difference": float(test.mean_differences[m]),
        "effect_size": float(test.effect_sizes[m]),
        "aucs": test.aucs.tolist(),
        "feature_weights": dict(zip(names, test.weights.mean(axis=0).tolist(), strict=True)),
    }


@dataclass(frozen=True, eq=False)
class DatasetInferenceResult:
    """Result of :func:`dataset_inference`.

    Attributes
    ----------
    p_value : float
        Of the test that the suspect texts look more like training texts than the
        validation texts (Bonferroni over the splits).
    alpha : float
    verdict : str
        :data:`USED` when ``p_value < alpha``, else :data:`NO_EVIDENCE`.
    test : SplitTest
        The test on the model's features.
    feature_names : list of str
    shift : SplitTest
        The same test, on the same splits, on model-free features (:func:`text_statistics`).
    shift_names : list of str
    shift_detected : bool
        The model-free test rejects too (``shift.p_value < alpha``).
    counts : dict
        Texts given, kept, dropped, and in each half.
    settings : dict
        Seed, splits, ks, model and reference folders.
    warnings : list of str
    """

    p_value: float
    alpha: float
    verdict: str
    test: SplitTest
    feature_names: list[str]
    shift: SplitTest
    shift_names: list[str]
    counts: dict[str, int]
    settings: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def used_in_training(self) -> bool:
        return self.verdict == USED

    @property
    def shift_detected(self) -> bool:
        return self.shift.p_value < self.alpha

    @property
    def auc(self) -> float:
        """AUC of suspect against validation test scores (the median split)."""
        return float(self.test.aucs[self.test.median_split])

    @property
    def auc_ci(self) -> tuple[float, float]:
        lo, hi = self.test.auc_cis[self.test.median_split]
        return float(lo), float(hi)

    def headline(self) -> str:
        lo, hi = self.auc_ci
        text = (f"{self.verdict} (p = {self.p_value:.3g} at alpha {self.alpha:g}; AUC of "
                f"the held-out suspect vs validation texts {self.auc:.3f} [{lo:.3f}, "
                f"{hi:.3f}])")
        if self.shift_detected and self.used_in_training:
            text += ("; UNRELIABLE: the texts alone tell the sets apart (distribution-shift "
                     f"check p = {self.shift.p_value:.3g})")
        elif self.shift_detected:
            text += (f"; note: the texts alone tell the sets apart (distribution-shift check "
                     f"p = {self.shift.p_value:.3g})")
        return text

    def to_dict(self) -> dict:
        """Everything as JSON-ready values (no raw texts)."""
        main = _split_dict(self.test, self.feature_names)
        shift = _split_dict(self.shift, self.shift_names)
        return {
            "method": "dataset inference (Maini et al. 2024)",
            "verdict": self.verdict,
            "used_in_training": self.used_in_training,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "test": "one-sided Welch t-test of held-out classifier scores, suspect > "
                    "validation",
            **{k: v for k, v in main.items() if k != "p_value"},
            "distribution_shift": {
                "detected": self.shift_detected,
                "features": "model-free text statistics",
                **shift,
            },
            "counts": dict(self.counts),
            "settings": dict(self.settings),
            "warnings": list(self.warnings),
            "headline": self.headline(),
        }


# --------------------------------------------------------------------------- entry point


def dataset_inference(
    model,
    suspect: list[str],
    validation: list[str],
    *,
    reference_model=None,
    seed: int = 0,
    alpha: float = 0.05,
    splits: int = 5,
    ks: tuple[float, ...] = DEFAULT_KS,
    overlap: str = "drop",
    min_texts: int = MIN_TEXTS,
    device: str = "cpu",
    batch_size: int = 8,
    progress: bool = False,
) -> DatasetInferenceResult:
    """Was the ``suspect`` set of texts used to train ``model``? (Maini et al. 2024)

    Computes membership-inference features of every text (:func:`lm_features`), runs
    :func:`split_test` of suspect against validation texts on them, and the same test on
    model-free text statistics to check that the two sets come from one distribution
    (see the module notes).

    Parameters
    ----------
    model : str, Path or object
        A local model folder (``save_pretrained``, safetensors) or an object with
        ``token_scores(texts) -> TokenScores`` (for example a
        :class:`~miaudit.targets.lm.CausalLMTarget`).
    suspect : list of str
        The texts that may have been trained on.
    validation : list of str
        Texts of the same distribution that the model surely did not train on (for
        example a held-out split of the same corpus, or texts written after the model).
    reference_model : str, Path or object, optional
        A model of the same family not trained on the suspect set: adds the ``reference``
        feature.
    seed : int, default 0
        Seed of the splits.
    alpha : float, default 0.05
        Level of the verdict and of the distribution-shift check.
    splits : int, default 5
        Random splits, combined with Bonferroni (1 = the paper's single split).
    ks : tuple of float, default :data:`DEFAULT_KS`
        Token fractions of the Min-K%, Min-K%++ and Max-K% features.
    overlap : {"drop", "error"}, default "drop"
        What to do with validation texts that also appear in the suspect set (compared
        with white space collapsed): drop them with a :class:`~miaudit.errors.DataWarning`,
        or refuse. Repeated texts within a set are always dropped (with a warning).
    min_texts : int, default :data:`MIN_TEXTS`
        Fewest texts per set, after dropping.
    device, batch_size, progress
        How a model folder is queried (:class:`~miaudit.targets.lm.CausalLMTarget`).

    Returns
    -------
    DatasetInferenceResult
        ``verdict`` is :data:`USED` iff ``p_value < alpha``; ``shift_detected`` says
        whether the texts alone tell the sets apart.

    Raises
    ------
    DataError
        Not a list of strings, an empty text, fewer than ``min_texts`` texts in a set, or
        (with ``overlap="error"``) texts in both sets.
    ConfigError
        Bad ``alpha``, ``seed``, ``splits``, ``ks``, ``overlap`` or ``min_texts``.

    Warns
    -----
    DataWarning
        Repeated or overlapping texts were dropped (the counts are in ``counts``).
    DegenerateResultWarning
        The test rejects and so does the model-free test: the sets differ in distribution.

    References
    ----------
    Maini, Jia, Papernot & Dziedzic, "LLM Dataset Inference: Did you train on my
    dataset?", NeurIPS 2024.

    Examples
    --------
    >>> result = dataset_inference("./my-gpt2", mine, held_out)  # doctest: +SKIP
    >>> result.p_value, result.verdict, result.shift_detected  # doctest: +SKIP
    (3.1e-08, 'the suspect set was used in training', False)
    """
    _check_settings(seed, splits, alpha)
    if isinstance(min_texts, bool) or not isinstance(min_texts, int) or min_texts < 4:
        raise ConfigError(f"'min_texts' must be an integer >= 4, got {min_texts!r}.")
    if not ks or any(isinstance(k, bool) or not isinstance(k, int | float) or not 0 < k <= 1
                     for k in ks):
        raise ConfigError(f"'ks' must be fractions in (0, 1] (0.2 = the lowest 20% of "
                          f"tokens), got {ks!r}.")
    given = {"suspect": _clean_texts(suspect, "suspect"),
             "validation": _clean_texts(validation, "validation")}
    s_texts, v_texts, counts = _deduplicate(given["suspect"], given["validation"], overlap)
    for name, texts in (("suspect", s_texts), ("validation", v_texts)):
        if len(texts) < min_texts:
            dropped = len(given[name]) - len(texts)
            note = f" after dropping {dropped} repeated or overlapping" if dropped else ""
            raise DataError(f"The {name} set has {len(texts)} text(s){note}; dataset "
                            f"inference needs at least {min_texts} per set (half to train "
                            "the classifier, half to test), and hundreds when the model "
                            "memorises little.")
    target = _as_target(model, "model", device=device, batch_size=batch_size,
                        progress=progress)
    reference = None if reference_model is None else _as_target(
        reference_model, "reference model", device=device, batch_size=batch_size,
        progress=progress)
    names, features = lm_features(target, s_texts + v_texts, reference=reference, ks=ks)
    ns = len(s_texts)
    test = split_test(features[:ns], features[ns:], seed=seed, splits=splits)
    shift_names, stats = text_statistics(s_texts + v_texts)
    shift = split_test(stats[:ns], stats[ns:], seed=seed, splits=splits)
    verdict = USED if test.p_value < alpha else NO_EVIDENCE
    notes = []
    if verdict == USED and shift.p_value < alpha:
        notes.append(
            f"The suspect and validation texts differ in distribution: model-free text "
            f"statistics alone tell them apart (p = {shift.p_value:.3g}, AUC "
            f"{shift.aucs[shift.median_split]:.3f}), so the rejection (p = "
            f"{test.p_value:.3g}) may measure that shift, not training. Dataset inference "
            "needs a validation set drawn from the suspect set's distribution (Maini et al. "
            "2024; Duan et al. 2024).")
        warnings.warn(notes[-1], DegenerateResultWarning, stacklevel=2)
    counts = {
        "n_suspect_given": len(given["suspect"]),
        "n_validation_given": len(given["validation"]),
        **counts,
        "n_suspect": ns,
        "n_validation": len(v_texts),
        "n_suspect_train": test.n_train[0], "n_suspect_test": test.n_test[0],
        "n_validation_train": test.n_train[1], "n_validation_test": test.n_test[1],
    }
    settings = {
        "seed": int(seed), "splits": int(splits), "ks": [float(k) for k in ks],
        "model": str(model) if isinstance(model, str | Path) else type(model).__name__,
        "reference_model": None if reference_model is None else (
            str(reference_model) if isinstance(reference_model, str | Path)
            else type(reference_model).__name__),
        "classifier": f"L2 logistic regression, C={C:g}, balanced class weights (the optimum "
                      f"of scikit-learn's LogisticRegression(C={C:g}, class_weight='balanced'))",
        "clip_quantiles": [CLIP, 1 - CLIP],
    }
    return DatasetInferenceResult(
        p_value=test.p_value, alpha=float(alpha), verdict=verdict, test=test,
        feature_names=names, shift=shift, shift_names=shift_names, counts=counts,
        settings=settings, warnings=notes)
