"""SaMIA: membership inference from sampled text alone (Kaneko et al. 2024).

A model that trained on a text tends to continue the text's beginning with the text's own
words. SaMIA prompts the target with the first half of each text, samples ``K``
continuations (:func:`miaudit.targets.sampling.sample_continuations`) and scores the text
by how much of its true continuation the samples reproduce: the mean over the samples of
the ROUGE-1 recall of the true continuation's words, a "sampling-based pseudo-likelihood"
that needs no log-probability, so it applies to an API that returns text only.
Higher = member.

Choices (the paper's, from its released evaluation script unless said)
----------------------------------------------------------------------
* Words are whitespace-separated, **lowercased** (``lowercase=True``, a choice of this
  package: a capitalised sentence start generated mid-text should still match; the
  authors compare case-sensitively, ``lowercase=False``).
* ROUGE-1 **recall**: matched unigrams (clipped counts) over the reference's unigrams; 0
  when the candidate or the reference has no word.
* **SaMIA*zlib**: each sample's recall times the zlib-compressed size of the sample's
  words (joined by single spaces), then averaged, so that a short or repetitive sample,
  which a compressor shrinks, counts less. The size is in bits (8 x the authors' bytes;
  no ranking changes).

References
----------
Kaneko, Ma, Wata & Okazaki (2024), "Sampling-based Pseudo-Likelihood for Membership
Inference Attacks", arXiv:2404.11262 (code: github.com/nlp-titech/samia).
Lin (2004), "ROUGE: A Package for Automatic Evaluation of Summaries", ACL Workshop.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from miaudit.errors import DataError

__all__ = ["rouge1", "samia_from_texts", "samia_scores", "words"]


def words(text: str, *, lowercase: bool = True) -> list[str]:
    """The whitespace-separated words of ``text`` (lowercased by default).

    Examples
    --------
    >>> words("The  cat\\nsat.")
    ['the', 'cat', 'sat.']
    """
    return (text.lower() if lowercase else text).split()


def rouge1(candidate_tokens: Sequence[Hashable], reference_tokens: Sequence[Hashable]) -> float:
    """ROUGE-1 recall of a candidate against a reference: matched unigrams over the
    reference's unigrams.

    A unigram matches as many times as it occurs in both (the smaller count, so a word
    repeated in the candidate is not counted more often than the reference has it).

    Parameters
    ----------
    candidate_tokens, reference_tokens : sequence of hashable
        Words (:func:`words`) or any tokens.

    Returns
    -------
    float
        In [0, 1]; 1 when every reference unigram is matched; 0 when either is empty.
        Higher = the candidate reproduces more of the reference.

    Examples
    --------
    >>> rouge1("the cat the".split(), "the cat sat on the mat".split())
    0.5
    """
    if not candidate_tokens or not reference_tokens:
        return 0.0
    matched = Counter(candidate_tokens) & Counter(reference_tokens)
    return sum(matched.values()) / len(reference_tokens)


def _zlib_bits(text: str) -> int:
    return len(zlib.compress(text.encode("utf-8"))) * 8


def samia_from_texts(true_text: Sequence[str], sample_text: Sequence[Sequence[str]], *,
                     zlib: bool = False, lowercase: bool = True) -> np.ndarray:
    """SaMIA scores from each text's true continuation and its sampled continuations.

    For text ``i`` with reference words ``r`` and samples ``c_1 .. c_K``: ``mean_k
    ROUGE-1(c_k, r)``, or with ``zlib`` ``mean_k ROUGE-1(c_k, r) * zlib_bits(c_k)``.

    Parameters
    ----------
    true_text : sequence of str (N,)
        Each text's true continuation (the part after the prompt).
    sample_text : sequence of sequences of str (N, K_i)
        Each text's sampled continuations (``K_i >= 1``; K may differ between texts).
    zlib : bool, default False
        SaMIA*zlib (see the module notes).
    lowercase : bool, default True
        Compare lowercased words (``False``: as the authors' script).

    Returns
    -------
    ndarray (N,)
        Higher = member.

    Raises
    ------
    DataError
        Lengths differ, or a text has no sample.

    Examples
    --------
    >>> samia_from_texts([" c d"], [[" c d", " c x", " y z"]]).round(3).tolist()
    [0.5]
    """
    true_text, sample_text = list(true_text), list(sample_text)
    if len(true_text) != len(sample_text):
        raise DataError(f"SaMIA needs one list of samples per text: {len(true_text)} true "
                        f"continuations but {len(sample_text)} lists of samples.")
    out = np.empty(len(true_text))
    for i, (ref, samples) in enumerate(zip(true_text, sample_text, strict=True)):
        if isinstance(samples, str) or len(samples) == 0:
            raise DataError(f"Text {i} has no sampled continuation (got {samples!r:.40}); "
                            "SaMIA averages over at least one sample per text.")
        reference = words(ref, lowercase=lowercase)
        values = []
        for sample in samples:
            candidate = words(sample, lowercase=lowercase)
            value = rouge1(candidate, reference)
            if zlib:
                value *= _zlib_bits(" ".join(candidate))
            values.append(value)
        out[i] = float(np.mean(values))
    return out


def samia_scores(samples, *, zlib: bool = False, lowercase: bool = True) -> np.ndarray:
    """SaMIA (or SaMIA*zlib) score of every text, from its sampled continuations.

    Parameters
    ----------
    samples : Samples
        :func:`miaudit.targets.sampling.sample_continuations`'s result, or anything with
        ``true_text`` (N,) and ``sample_text`` (N, K) (text from an API, for instance).
    zlib : bool, default False
        Weight each sample's ROUGE-1 recall by its zlib-compressed size (SaMIA*zlib).
    lowercase : bool, default True

    Returns
    -------
    ndarray (N,)
        Mean ROUGE-1 recall of the true continuation over the samples (times the samples'
        zlib bits with ``zlib``). Higher = member.

    References
    ----------
    Kaneko, Ma, Wata & Okazaki (2024), "Sampling-based Pseudo-Likelihood for Membership
    Inference Attacks", arXiv:2404.11262.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> s = SimpleNamespace(true_text=[" c d", " e f"], sample_text=[[" c d"], [" x y"]])
    >>> samia_scores(s).tolist()
    [1.0, 0.0]
    """
    return samia_from_texts(samples.true_text, samples.sample_text, zlib=zlib,
                            lowercase=lowercase)
