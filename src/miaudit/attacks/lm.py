"""Membership-inference attacks on causal language models, over per-token statistics.

Every attack is a pure function ``score(inputs: LMAttackInput, **params) -> ndarray (N,)``
whose output is "higher means more likely a member" (a training text). The attacks read
:class:`~miaudit.signals.tokens.TokenScores`: ``lp_t = log p(x_t | x_<t)`` for every
predicted token of each document and, for Min-K%++, the mean and standard deviation of
``log p(v | x_<t)`` over the vocabulary.

Document-level aggregation: a ``TokenScores`` already holds every predicted token of a
document (the model adapter stitches the sliding windows of a long document together), so
each document's score aggregates over all of its tokens at once; nothing is averaged per
chunk.

The language-model attacks have their own registry, :data:`LM_ATTACKS`, apart from the
classification one (:data:`miaudit.attacks.ATTACKS`): they read token statistics, not an
exposure of class outputs. :func:`lira_text` is the LiRA test on the per-document
statistic ``-NLL`` for reference language models fine-tuned on random halves of the data.
"""

from __future__ import annotations

import difflib
import numbers
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from miaudit.attacks.lira import gaussian_log_ratio
from miaudit.attacks.reference_signals import gaussian_fit
from miaudit.attacks.samia import samia_scores
from miaudit.errors import ConfigError, DataError
from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores

__all__ = [
    "LM_ATTACKS",
    "MIN_STD",
    "NEEDS",
    "LMAttack",
    "LMAttackInput",
    "dc_pdd",
    "lira_text",
    "lm_loss",
    "lowercase_attack",
    "min_k",
    "min_k_plus_plus",
    "neighbour",
    "recall",
    "reference_attack",
    "resolve_lm_attacks",
    "samia",
    "samia_zlib",
    "zlib_attack",
    "zlib_bits",
]

#: What an attack may need beyond the target's token log-probs, and how to provide it.
NEEDS: dict[str, str] = {
    "lowercase": "the target model's token scores on the lowercased texts (extract them "
                 "as well: TokenScores of the model on text.lower())",
    "reference": "a second (reference) language model's token scores on the texts "
                 "(give --reference-model DIR)",
    "distribution": "the mean and standard deviation of log p(v | x_<t) over the "
                    "vocabulary at every token (extract them with the token scores: "
                    "TokenScores.mean and .std)",
    "prefix": "the target's token scores on each text after a prefix of non-member texts "
              "(an audit that trains the target uses texts set aside for its tokenizer; "
              "CausalLMTarget.token_scores(texts, prefix=...) gives them)",
    "sampling": "continuations sampled from the target after each text's first half (a "
                "local model, or an OpenAI-compatible API: "
                "miaudit.targets.sampling.sample_continuations); costly, so it runs only "
                "when asked for (--attacks samia)",
    "neighbours": "the target's NLL on neighbours of each text (one-token swaps proposed by "
                  "a language model: miaudit.targets.neighbours.neighbour_texts)",
    "frequency": "token frequencies over a reference corpus, with the target's tokenizer, "
                 "and the ids of the scored tokens (an audit that trains the target uses "
                 "the texts set aside for its tokenizer; miaudit.targets.lm."
                 "corpus_token_frequency computes them)",
}

#: Floor on the standard deviation of ``log p(v | x_<t)`` in Min-K%++ (see there).
MIN_STD = 1e-6
#: Floor on the NLL of the lowercased text in the lowercase attack (a zero denominator).
_MIN_NLL = 1e-12
@dataclass(frozen=True, eq=False)
class LMAttackInput:
    """Everything a language-model attack may use, checked once on construction.

    Attributes
    ----------
    texts : list of str
        The ``N`` documents.
    target : TokenScores
        The audited model on the texts.
    lowercase : TokenScores or None
        The audited model on ``text.lower()`` (the lowercase attack).
    reference : TokenScores or None
        A second (reference) model on the texts (the reference attack); it may use another
        tokenizer, so its token counts may differ from the target's.
    token_frequency : ndarray (V,) or None
        Each token's frequency in a reference corpus, smoothed so that none is 0 (DC-PDD;
        :func:`miaudit.targets.lm.corpus_token_frequency`); it needs ``target.token_ids``.
    conditioned : TokenScores or None
        The target on each text after a prefix of non-member texts (ReCaLL).
    neighbours : ndarray (N, M) or None
        The target's NLL (mean per token) on up to ``M`` neighbours of each text, NaN where
        a text has fewer (the neighbourhood attack).
    samples : Samples or None
        Continuations sampled from the target after each text's first half, with the true
        continuations (:class:`miaudit.targets.sampling.Samples`; SaMIA).

    Raises
    ------
    DataError
        Lengths differ between the texts and a ``TokenScores``, or a document has no
        predicted token (a one-token text).
    OutputError
        NaN, infinite or positive log-probabilities; a ``mean``/``std`` that does not match
        ``logprobs``, or a negative ``std``.

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores
    >>> x = LMAttackInput(["a cat", "a dog"],
    ...                   TokenScores([np.array([-1.0, -2.0]), np.array([-3.0])]))
    >>> sorted(x.available)
    []
    """

    texts: list[str]
    target: TokenScores
    lowercase: TokenScores | None = None
    reference: TokenScores | None = None
    token_frequency: np.ndarray | None = None
    conditioned: TokenScores | None = None
    neighbours: np.ndarray | None = None
    samples: object | None = None

    def __post_init__(self) -> None:
        texts = self.texts
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise DataError("texts must be a list of strings (one per document).")
        if len(texts) == 0:
            raise DataError("texts is empty: give at least one document.")
        n = len(texts)
        check_token_scores(self.target, n, "target", distribution=True)
        for role in ("lowercase", "reference", "conditioned"):
            scores = getattr(self, role)
            if scores is not None:
                check_token_scores(scores, n, role, distribution=False)
        if self.token_frequency is not None:
            check_token_frequency(self.token_frequency, self.target)
        if self.neighbours is not None:
            _check_neighbours(self.neighbours, n)
        if self.samples is not None and len(self.samples.true_text) != n:
            raise DataError(f"samples holds {len(self.samples.true_text)} texts, expected {n}.")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def available(self) -> frozenset[str]:
        """The :data:`NEEDS` this input provides (pass as ``have`` to
        :func:`resolve_lm_attacks`)."""
        have = {role for role in ("lowercase", "reference") if getattr(self, role) is not None}
        if self.target.mean is not None:
            have.add("distribution")
        if self.token_frequency is not None:
            have.add("frequency")
        if self.conditioned is not None:
            have.add("prefix")
        if self.neighbours is not None:
            have.add("neighbours")
        if self.samples is not None:
            have.add("sampling")
        return frozenset(have)


def _check_neighbours(nll: np.ndarray, n: int) -> None:
    """Neighbour NLLs: (n, M) floats, non-negative or NaN, at least one per text."""
    arr = np.asarray(nll)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1 or arr.dtype.kind != "f":
        raise DataError(f"neighbours must be a float array of shape ({n}, M >= 1), got "
                        f"shape {arr.shape} and dtype {arr.dtype}.")
    if np.isinf(arr).any() or (arr < 0).any():
        raise DataError("neighbours holds NLLs: non-negative numbers (NaN where a text has "
                        "fewer neighbours), not infinite or negative ones.")
    if np.isnan(arr).all(axis=1).any():
        raise DataError("Every text needs at least one neighbour NLL; row "
                        f"{int(np.flatnonzero(np.isnan(arr).all(axis=1))[0])} has none.")


def _require(inputs: LMAttackInput, need: str, attack: str) -> None:
    if need not in inputs.available:
        raise ConfigError(f"The attack {attack!r} needs {NEEDS[need]}.")


def _check_k(k: float, attack: str) -> float:
    number = isinstance(k, numbers.Real) and not isinstance(k, bool)
    if not number or not 0 < k <= 1:
        hint = f" For {k}% write k={k / 100:g}." if number and 1 < k <= 100 else ""
        raise ConfigError(f"The {attack!r} parameter k must be a fraction in (0, 1] (0.2 = "
                          f"the lowest 20% of tokens), got {k!r}.{hint}")
    return float(k)


def _lowest_count(n_tokens: np.ndarray, k: float) -> np.ndarray:
    """How many tokens Min-K% averages: ``max(1, floor(k * T))`` (the ``int(T * k)`` of
    the authors' code, kept to at least one token); the 1e-9 absorbs float rounding so that
    ``0.29 * 100`` counts 29."""
    return np.maximum(1, np.floor(k * n_tokens + 1e-9).astype(np.int64))


def _mean_of_lowest(values: list[np.ndarray], k: float) -> np.ndarray:
    """Mean of the ``max(1, floor(k T_i))`` lowest values of each ragged array, (N,)."""
    lengths = np.array([len(v) for v in values], dtype=np.int64)
    count = _lowest_count(lengths, k)
    flat = np.concatenate(values)
    doc = np.repeat(np.arange(len(values)), lengths)
    order = np.lexsort((flat, doc))  # by document, then ascending value
    rank = np.arange(flat.size) - (np.cumsum(lengths) - lengths)[doc]
    keep = rank < count[doc]
    return np.bincount(doc[keep], weights=flat[order][keep], minlength=len(values)) / count


def zlib_bits(text: str) -> int:
    """Size in bits of the zlib-compressed UTF-8 text (default compression level).

    Examples
    --------
    >>> zlib_bits("") > 0
    True
    """
    return len(zlib.compress(text.encode("utf-8"))) * 8


def lm_loss(inputs: LMAttackInput) -> np.ndarray:
    """LOSS attack on a language model: score = mean token log-prob = ``-NLL``.

    Members (training texts) get a lower NLL. Higher = member.

    Returns
    -------
    score : ndarray (N,)

    References
    ----------
    Yeom et al., "Privacy Risk in Machine Learning", CSF 2018; Carlini et al.,
    "Extracting Training Data from Large Language Models", USENIX Security 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores
    >>> x = LMAttackInput(["a b c", "d e"],
    ...                   TokenScores([np.array([-1.0, -2.0]), np.array([-4.0])]))
    >>> lm_loss(x)
    array([-1.5, -4. ])
    """
    return -inputs.target.nll()


def zlib_attack(inputs: LMAttackInput) -> np.ndarray:
    """zlib attack: score = ``-NLL / zlib_bits(text)``.

    The NLL (mean per predicted token) is divided by the zlib-compressed size of the text
    in bits, so that texts that are simply repetitive (easy for any compressor) are not
    mistaken for memorised ones. Higher = member.

    Returns
    -------
    score : ndarray (N,)

    References
    ----------
    Carlini et al., "Extracting Training Data from Large Language Models", USENIX
    Security 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores
    >>> x = LMAttackInput(["ab", "ab"], TokenScores([np.array([-1.0]), np.array([-2.0])]))
    >>> s = zlib_attack(x)
    >>> bool(s[0] > s[1]), float(s[0]) == -1.0 / zlib_bits("ab")
    (True, True)
    """
    bits = np.array([zlib_bits(t) for t in inputs.texts], dtype=np.float64)
    return -inputs.target.nll() / bits


def lowercase_attack(inputs: LMAttackInput) -> np.ndarray:
    """Lowercase attack: score = ``-NLL(text) / NLL(text.lower())``.

    A memorised text is much easier for the model in its original casing than lowercased.
    Both NLLs are means per predicted token of the same model. The lowercased NLL is
    floored at 1e-12 (a lowercased text predicted with probability 1 everywhere).
    Higher = member. Needs ``inputs.lowercase``.

    Returns
    -------
    score : ndarray (N,)

    References
    ----------
    Carlini et al., "Extracting Training Data from Large Language Models", USENIX
    Security 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores
    >>> x = LMAttackInput(["A B", "C D"], TokenScores([np.array([-1.0]), np.array([-2.0])]),
    ...                   lowercase=TokenScores([np.array([-4.0]), np.array([-2.0])]))
    >>> lowercase_attack(x)
    array([-0.25, -1.  ])
    """
    _require(inputs, "lowercase", "lowercase")
    return -inputs.target.nll() / np.maximum(inputs.lowercase.nll(), _MIN_NLL)


def reference_attack(inputs: LMAttackInput) -> np.ndarray:
    """Reference-model attack: score = ``-(NLL_target - NLL_reference)``.

    A text that the audited model finds much easier than a reference model (trained on
    similar data but not on the audited set) is likely a member; the reference removes
    the intrinsic difficulty of the text. The two models may use different tokenizers:
    each NLL is the mean over its own tokens. Higher = member. Needs ``inputs.reference``.

    Returns
    -------
    score : ndarray (N,)

    References
    ----------
    Carlini et al., "Extracting Training Data from Large Language Models", USENIX
    Security 2021; Mireshghallah et al., "Quantifying Privacy Risks of Masked Language
    Models Using Membership Inference Attacks", EMNLP 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores
    >>> x = LMAttackInput(["a b", "c d"], TokenScores([np.array([-1.0]), np.array([-2.0])]),
    ...                   reference=TokenScores([np.array([-3.0]), np.array([-2.0])]))
    >>> reference_attack(x)
    array([2., 0.])
    """
    _require(inputs, "reference", "reference")
    return inputs.reference.nll() - inputs.target.nll()  # = -(NLL_target - NLL_reference)


def min_k(inputs: LMAttackInput, *, k: float = 0.2) -> np.ndarray:
    """Min-K% Prob: score = mean of the lowest ``k`` fraction of the token log-probs.

    Non-members contain a few outlier tokens of very low probability; members rarely do.
    The document's tokens are sorted and the ``max(1, floor(k * T))`` lowest are averaged
    (``int(T * k)`` as in the authors' code, but never fewer than one token, so short
    texts are scored instead of giving NaN). Higher = member.

    Parameters
    ----------
    k : float, default 0.2
        Fraction of the tokens to average, in (0, 1].

    Returns
    -------
    score : ndarray (N,)

    References
    ----------
    Shi et al., "Detecting Pretraining Data from Large Language Models", ICLR 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores
    >>> lp = np.array([-0.1, -5.0, -0.2, -3.0, -0.3])
    >>> min_k(LMAttackInput(["t"], TokenScores([lp])), k=0.4)  # the 2 lowest: -5 and -3
    array([-4.])
    """
    k = _check_k(k, "min-k")
    return _mean_of_lowest(inputs.target.logprobs, k)


def min_k_plus_plus(inputs: LMAttackInput, *, k: float = 0.2) -> np.ndarray:
    """Min-K%++: mean of the lowest ``k`` fraction of ``z_t = (lp_t - mu_t) / sigma_t``.

    ``mu_t`` and ``sigma_t`` are the mean and standard deviation of ``log p(v | x_<t)``
    over the vocabulary under the model's own next-token distribution, so ``z_t`` measures
    how far the actual token sits above the model's typical token (training texts sit at
    local maxima of the likelihood). Tokens are selected as in :func:`min_k`
    (``max(1, floor(k * T))`` lowest ``z_t``). Higher = member.

    ``sigma_t = 0`` means the distribution is uniform on its support (for example fully
    confident), where every possible token has ``lp_t = mu_t``. The standard deviation is
    floored at :data:`MIN_STD` = 1e-6: such a token gets ``z_t`` about 0 (rounding noise
    is divided by 1e-6, not by 0), while a token the confident model did not expect still
    gets a very negative ``z_t``. Needs ``inputs.target.mean`` and ``.std``.

    Parameters
    ----------
    k : float, default 0.2
        Fraction of the tokens to average, in (0, 1].

    Returns
    -------
    score : ndarray (N,)

    References
    ----------
    Zhang et al., "Min-K%++: Improved Baseline for Detecting Pre-Training Data from Large
    Language Models", 2024 (ICLR 2025).

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores
    >>> ts = TokenScores([np.array([-1.0, -3.0])], mean=[np.array([-2.0, -2.0])],
    ...                  std=[np.array([1.0, 0.5])])
    >>> min_k_plus_plus(LMAttackInput(["t"], ts), k=0.5)  # z = [1, -2]: the lowest is -2
    array([-2.])
    """
    k = _check_k(k, "min-k++")
    _require(inputs, "distribution", "min-k++")
    t = inputs.target
    z = [(lp - mu) / np.maximum(sd, MIN_STD)
         for lp, mu, sd in zip(t.logprobs, t.mean, t.std, strict=True)]
    return _mean_of_lowest(z, k)


def lira_text(target_nll: np.ndarray, reference_nll: np.ndarray,
              reference_membership: np.ndarray, *, online: bool) -> np.ndarray:
    """LiRA on language models: a likelihood-ratio test on ``phi = -NLL`` per document.

    The reference models are the attacker's own language models fine-tuned on random
    halves of the data, so for each document some were trained on it (IN) and some not
    (OUT). Per document, Gaussians are fitted to the references' ``phi`` on the IN and OUT
    sides, with one *global* standard deviation per side (the within-document variance
    pooled over documents, as Carlini et al. advise for few references).

    * ``online=True``: ``log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)``.
    * ``online=False``: ``log Phi((phi - mu_out) / s_out)``, a one-sided test against the
      OUT references only.

    Fallbacks for a document that lacks one side: with no IN reference the online score
    is the offline one; with no OUT reference (online or offline) it is the one-sided test
    against the IN references, ``log Phi((phi - mu_in) / s_in)`` (a log-probability on the
    same scale). Higher = member.

    Parameters
    ----------
    target_nll : ndarray (N,)
        The audited model's NLL (mean per token) on each document.
    reference_nll : ndarray (K, N)
        Each reference model's NLL on each document.
    reference_membership : ndarray (K, N) bool
        Whether document ``i`` was in reference model ``k``'s training set.
    online : bool
        Use the IN references too (see above).

    Returns
    -------
    score : ndarray (N,)

    Raises
    ------
    DataError
        Mismatched shapes, non-finite NLLs, non-boolean membership, or no reference model.

    References
    ----------
    Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.array([[1.0, 3.0], [2.0, 2.0], [1.2, 2.8], [2.2, 2.2]])
    >>> inside = np.array([[True, False], [False, True], [True, False], [False, True]])
    >>> s = lira_text(np.array([1.1, 2.9]), ref, inside, online=True)
    >>> bool(s[0] > 0 > s[1])  # 0 looks IN (low NLL as the IN refs), 1 looks OUT
    True
    """
    target_nll = np.asarray(target_nll, dtype=np.float64)
    reference_nll = np.asarray(reference_nll, dtype=np.float64)
    membership = np.asarray(reference_membership)
    if target_nll.ndim != 1:
        raise DataError(f"target_nll must be 1-D (N,), got shape {target_nll.shape}.")
    n = target_nll.shape[0]
    for name, arr in (("reference_nll", reference_nll), ("reference_membership", membership)):
        if arr.ndim != 2 or arr.shape[1] != n:
            raise DataError(f"{name} must have shape (K, {n}) (one row per reference model, "
                            f"one column per document), got {arr.shape}.")
    if reference_nll.shape != membership.shape:
        raise DataError(f"reference_nll {reference_nll.shape} and reference_membership "
                        f"{membership.shape} must have the same shape.")
    if membership.dtype != bool:
        raise DataError(f"reference_membership must be boolean, got dtype {membership.dtype}.")
    if not (np.isfinite(target_nll).all() and np.isfinite(reference_nll).all()):
        raise DataError("target_nll and reference_nll must be finite (no NaN or inf).")
    if membership.shape[0] == 0:
        raise DataError("No reference model: reference_nll has K = 0 rows.")
    phi, ref_phi = -target_nll, -reference_nll
    mu_out, s_out, n_out = gaussian_fit(ref_phi, ~membership, per_example=False)
    mu_in, s_in, n_in = gaussian_fit(ref_phi, membership, per_example=False)
    one_sided_in = log_ndtr((phi - mu_in) / s_in)
    offline = np.where(n_out > 0, log_ndtr((phi - mu_out) / s_out), one_sided_in)
    if not online:
        return offline
    ratio = gaussian_log_ratio(phi, mu_in, s_in, mu_out, s_out)
    return np.where((n_in > 0) & (n_out > 0), ratio, offline)


def dc_pdd(inputs: LMAttackInput, *, a: float = 0.01) -> np.ndarray:
    """DC-PDD: the model's probability of each
    token, weighted by how rare the token is in a reference corpus, ``p(x_t | x_<t) *
    log(1 / f(x_t))``, capped at ``a`` and averaged over the first occurrence of each
    distinct token of the text. A member's tokens, rare ones included, are likely under
    the model; a non-member's rare tokens are not. Higher = member.

    ``a`` (default 0.01, the authors' and MIMIR's value for billion-parameter models)
    caps any one token's weight; it is not tuned here (tuning it on the audited texts
    would read their membership). Where the model's probabilities are high (the tests'
    18-word corpus), 0.01 caps nearly every token and the score says little (AUC 0.55
    there, 0.91 with 0.1); on AG News with the tiny recipe 0.01 gives AUC 0.892
    (benchmarks/RESULTS.md, "Language-model audit: AG News").

    References
    ----------
    Zhang et al., "Pretraining Data Detection for Large Language Models: A
    Divergence-based Calibration Method", EMNLP 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores
    >>> scores = TokenScores([np.log([0.5, 0.001, 0.5])], token_ids=[np.array([1, 2, 1])])
    >>> x = LMAttackInput(["a b a"], scores, token_frequency=np.array([0.5, 0.25, 0.25]))
    >>> round(float(dc_pdd(x, a=1.0)[0]), 6)  # tokens 1, 2 (f = 1/4): (0.5 + 0.001) log 4 / 2
    0.347267
    """
    _require(inputs, "frequency", "dc-pdd")
    if not (isinstance(a, numbers.Real) and not isinstance(a, bool) and a > 0):
        raise ConfigError(f"The 'dc-pdd' cap a must be a number > 0, got {a!r}.")
    rarity = -np.log(np.asarray(inputs.token_frequency, dtype=float))
    out = np.empty(len(inputs))
    for i, (ids, lp) in enumerate(zip(inputs.target.token_ids, inputs.target.logprobs,
                                      strict=True)):
        _, first = np.unique(ids, return_index=True)
        out[i] = np.minimum(np.exp(lp[first]) * rarity[ids[first]], a).mean()
    return out


def recall(inputs: LMAttackInput) -> np.ndarray:
    """ReCaLL: the relative drop of a text's mean token log-likelihood when a prefix of
    non-member texts comes before it, ``(LL(x) - LL(x | P)) / |LL(x)|`` (the authors'
    ratio ``LL(x | P) / LL(x)`` minus 1). A non-member prefix pulls the model away from
    what it memorised, so a member's likelihood drops more. Higher = member.

    References
    ----------
    Xie et al., "ReCaLL: Membership Inference via Relative Conditional Log-Likelihoods",
    EMNLP 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from miaudit.signals.tokens import TokenScores, check_token_frequency, check_token_scores
    >>> x = LMAttackInput(["a b", "c d"], TokenScores([np.array([-1.0]), np.array([-2.0])]),
    ...                   conditioned=TokenScores([np.array([-1.5]), np.array([-2.2])]))
    >>> recall(x).round(2).tolist()
    [0.5, 0.1]
    """
    _require(inputs, "prefix", "recall")
    ll, ll_prefixed = -inputs.target.nll(), -inputs.conditioned.nll()
    return (ll - ll_prefixed) / np.maximum(np.abs(ll), _MIN_NLL)


def neighbour(inputs: LMAttackInput) -> np.ndarray:
    """Neighbourhood comparison: the mean NLL of a text's neighbours (one-token swaps a
    language model finds likely) minus the text's own NLL. A model that generalises gives
    a text and its fluent neighbours about the same loss; one that memorised the text
    finds it much likelier than its neighbours. Higher = member.

    References
    ----------
    Mattern et al., "Membership Inference Attacks against Language Models via
    Neighbourhood Comparison", Findings of ACL 2023.

    Examples
    --------
    >>> import numpy as np
    >>> x = LMAttackInput(["a b", "c d"], TokenScores([np.array([-1.0]), np.array([-2.0])]),
    ...                   neighbours=np.array([[3.0, 1.0], [2.5, np.nan]]))
    >>> neighbour(x).tolist()
    [1.0, 0.5]
    """
    _require(inputs, "neighbours", "neighbour")
    return np.nanmean(inputs.neighbours, axis=1) - inputs.target.nll()


def samia(inputs: LMAttackInput) -> np.ndarray:
    """SaMIA: the mean ROUGE-1 recall of a text's true second half by continuations
    sampled from the target after its first half (no log-probabilities needed; see
    :mod:`miaudit.attacks.samia`). Higher = member.

    References
    ----------
    Kaneko et al., "Sampling-based Pseudo-Likelihood for Membership Inference Attacks",
    2024.
    """
    _require(inputs, "sampling", "samia")
    return samia_scores(inputs.samples)


def samia_zlib(inputs: LMAttackInput) -> np.ndarray:
    """SaMIA*zlib: each sample's ROUGE-1 recall times its zlib-compressed size, averaged,
    so short or repetitive samples count less. Higher = member.

    References
    ----------
    Kaneko et al., "Sampling-based Pseudo-Likelihood for Membership Inference Attacks",
    2024.
    """
    _require(inputs, "sampling", "samia-zlib")
    return samia_scores(inputs.samples, zlib=True)


@dataclass(frozen=True)
class LMAttack:
    """A registered language-model attack.

    Attributes
    ----------
    name : str
        The name used on the command line and in reports.
    score : callable
        ``score(inputs: LMAttackInput, **params) -> ndarray (N,)``, higher = member.
    needs : frozenset of str
        What it reads beyond the target's token log-probs, a subset of :data:`NEEDS`
        (``lowercase``, ``reference``, ``distribution``).
    description : str
        One line for listings.
    reference : str
        The paper.
    knowledge : frozenset of str
        What the attacker knows besides the target's token scores on the texts, keys of
        :data:`miaudit.attacks.base.KNOWLEDGE`: ``queries`` (the target on other inputs,
        the lowercased texts) and ``references`` (a reference language model).
    """

    name: str
    score: Callable[..., np.ndarray]
    needs: frozenset[str]
    description: str
    reference: str
    knowledge: frozenset[str] = frozenset()


#: The language-model attacks by name, in listing order (cheapest first).
LM_ATTACKS: dict[str, LMAttack] = {
    a.name: a for a in (
        LMAttack("lm-loss", lm_loss, frozenset(), "mean token log-probability (minus the NLL)",
                 "Yeom et al., CSF 2018; Carlini et al., USENIX Security 2021"),
        LMAttack("zlib", zlib_attack, frozenset(),
                 "minus the NLL divided by the zlib-compressed bits of the text",
                 "Carlini et al., USENIX Security 2021"),
        LMAttack("min-k", min_k, frozenset(),
                 "mean of the lowest k (default 20%) token log-probabilities",
                 "Shi et al., ICLR 2024"),
        LMAttack("min-k++", min_k_plus_plus, frozenset({"distribution"}),
                 "mean of the lowest k (default 20%) standardised token log-probabilities",
                 "Zhang et al., 2024 (Min-K%++)"),
        LMAttack("lowercase", lowercase_attack, frozenset({"lowercase"}),
                 "minus NLL(text) / NLL(lowercased text)",
                 "Carlini et al., USENIX Security 2021", knowledge=frozenset({"queries"})),
        LMAttack("recall", recall, frozenset({"prefix"}),
                 "relative drop of the log-likelihood after a prefix of non-member texts",
                 "Xie et al., EMNLP 2024 (ReCaLL)",
                 knowledge=frozenset({"population", "queries"})),
        LMAttack("neighbour", neighbour, frozenset({"neighbours"}),
                 "mean NLL of one-token neighbours minus the text's NLL",
                 "Mattern et al., Findings of ACL 2023", knowledge=frozenset({"queries"})),
        LMAttack("samia", samia, frozenset({"sampling"}),
                 "mean ROUGE-1 recall of the second half by 10 continuations sampled after "
                 "the first half", "Kaneko et al., 2024 (SaMIA)",
                 knowledge=frozenset({"queries"})),
        LMAttack("samia-zlib", samia_zlib, frozenset({"sampling"}),
                 "SaMIA with each sample's recall weighted by its zlib-compressed size",
                 "Kaneko et al., 2024 (SaMIA*zlib)", knowledge=frozenset({"queries"})),
        LMAttack("dc-pdd", dc_pdd, frozenset({"frequency"}),
                 "mean capped probability x corpus rarity of each distinct token",
                 "Zhang et al., EMNLP 2024 (DC-PDD)", knowledge=frozenset({"population"})),
        LMAttack("reference", reference_attack, frozenset({"reference"}),
                 "NLL of a reference model minus NLL of the target",
                 "Carlini et al., USENIX Security 2021; Mireshghallah et al., EMNLP 2022",
                 knowledge=frozenset({"references"})),
    )
}


def _get_lm_attack(name: str) -> LMAttack:
    key = str(name).strip().lower()
    if key in LM_ATTACKS:
        return LM_ATTACKS[key]
    close = difflib.get_close_matches(key, list(LM_ATTACKS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"Unknown language-model attack {name!r}.{hint} Known language-model "
                      f"attacks: {', '.join(LM_ATTACKS)}.")


def resolve_lm_attacks(names: list[str] | None, *, have: set[str]) -> list[LMAttack]:
    """Turn requested names into language-model attacks.

    Parameters
    ----------
    names : list of str or None
        Attack names; ``None`` = every attack whose needs are in ``have``, in registry order.
    have : set of str
        What was extracted, a subset of :data:`NEEDS`: ``"lowercase"`` (scores on the
        lowercased texts), ``"distribution"`` (mean/std over the vocabulary),
        ``"reference"`` (a reference model). :attr:`LMAttackInput.available` gives it.

    Returns
    -------
    attacks : list of LMAttack
        Without duplicates, in the requested order.

    Raises
    ------
    ConfigError
        An unknown name (with the closest known one), an empty list, an unknown entry in
        ``have``, or an attack whose needs are not available (saying what to provide).

    Examples
    --------
    >>> [a.name for a in resolve_lm_attacks(None, have={"distribution"})]
    ['lm-loss', 'zlib', 'min-k', 'min-k++']
    >>> [a.name for a in resolve_lm_attacks(["min-k", "zlib"], have=set())]
    ['min-k', 'zlib']
    """
    have = set(have)
    unknown = sorted(have - set(NEEDS))
    if unknown:
        raise ConfigError(f"Unknown entries {unknown} in have: use a subset of "
                          f"{sorted(NEEDS)}.")
    if names is None:
        return [a for a in LM_ATTACKS.values() if a.needs <= have]
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ConfigError("No language-model attack requested: give at least one of "
                          f"{', '.join(LM_ATTACKS)}.")
    resolved: list[LMAttack] = []
    for name in names:
        attack = _get_lm_attack(name)
        missing = sorted(attack.needs - have)
        if missing:
            what = "; and ".join(NEEDS[m] for m in missing)
            runnable = ", ".join(a.name for a in LM_ATTACKS.values() if a.needs <= have)
            raise ConfigError(f"The attack {attack.name!r} needs {what}. Attacks runnable "
                              f"with what was given: {runnable}.")
        if attack not in resolved:
            resolved.append(attack)
    return resolved

