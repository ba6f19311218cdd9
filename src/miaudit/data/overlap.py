"""Word n-gram overlap between member and non-member texts: an evaluation-hygiene check
for language-model audits.

A non-member that repeats long passages of member texts (a near-duplicate, a quoted
article, boilerplate) is not a fresh text to the model: it scores like a member, and the
audit under-reports leakage; overlap that differs between the two sides can also make a
model-free classifier look like an attack. Duan et al. ("Do Membership Inference Attacks
Work on Large Language Models?", COLM 2024) measure it as the share of a non-member's
13-grams found in the members; MIMIR's "deduplicated" splits drop non-members with more
than 80% of their 13-grams in the members.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Words per n-gram (Duan et al. 2024 and MIMIR use 13).
DEFAULT_N = 13
#: A non-member with at least this share of its n-grams in the members is counted as a
#: near-duplicate (MIMIR's deduplication threshold).
NEAR_DUPLICATE_SHARE = 0.8

_WORD = re.compile(r"\w+")


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class NgramOverlap:
    """How much of the non-member texts already occurs in the member texts.

    Attributes
    ----------
    n : int
        Words per n-gram (lower-cased, split on non-word characters).
    share : ndarray (M,)
        Per non-member text, the share of its distinct n-grams that occur in some member
        text; NaN for a text shorter than ``n`` words.
    n_scored : int
        Non-members with at least one n-gram.
    mean_share : float or None
        Mean of ``share`` over the scored non-members (None when none is).
    n_any : int
        Non-members sharing at least one n-gram with the members.
    n_near_duplicates : int
        Non-members with ``share >= NEAR_DUPLICATE_SHARE``.
    """

    n: int
    share: np.ndarray
    n_scored: int
    mean_share: float | None
    n_any: int
    n_near_duplicates: int

    def to_dict(self) -> dict:
        """For ``summary.json``."""
        return {"n": self.n, "n_non_members_scored": self.n_scored,
                "mean_share": self.mean_share, "n_non_members_sharing": self.n_any,
                "n_near_duplicates": self.n_near_duplicates,
                "near_duplicate_share": NEAR_DUPLICATE_SHARE}

    def warning(self) -> str | None:
        """A sentence for the audit's warnings when near-duplicates exist, else None."""
        if not self.n_near_duplicates:
            return None
        return (f"{self.n_near_duplicates} of {self.n_scored} non-member texts have at least "
                f"{NEAR_DUPLICATE_SHARE:.0%} of their {self.n}-grams in member texts: they "
                "are near-duplicates of members, score like members, and make every attack "
                "look weaker than it is. Deduplicate the non-members against the members.")


def ngram_overlap(texts: Sequence[str], is_member: np.ndarray, *,
                  n: int = DEFAULT_N) -> NgramOverlap:
    """The word ``n``-gram overlap of the non-member texts with the member texts (see the
    module): per non-member, the share of its distinct ``n``-grams found in any member.

    >>> o = ngram_overlap(["a b c d", "a b c x", "p q r s"], np.array([True, False, False]),
    ...                   n=3)
    >>> o.share.tolist(), o.n_any, o.n_near_duplicates
    ([0.5, 0.0], 1, 0)
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    is_member = np.asarray(is_member, dtype=bool)
    if len(texts) != len(is_member):
        raise ValueError(f"{len(texts)} texts but {len(is_member)} membership labels.")
    seen: set[tuple[str, ...]] = set()
    for text, member in zip(texts, is_member, strict=True):
        if member:
            seen |= _ngrams(text, n)
    share = []
    for text, member in zip(texts, is_member, strict=True):
        if not member:
            grams = _ngrams(text, n)
            share.append(len(grams & seen) / len(grams) if grams else np.nan)
    share_arr = np.asarray(share, dtype=float)
    scored = share_arr[~np.isnan(share_arr)]
    return NgramOverlap(
        n=n, share=share_arr, n_scored=int(scored.size),
        mean_share=float(scored.mean()) if scored.size else None,
        n_any=int((scored > 0).sum()),
        n_near_duplicates=int((scored >= NEAR_DUPLICATE_SHARE).sum()))
