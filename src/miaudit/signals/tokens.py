"""What a causal language model reveals about a text: per-token log-probabilities.

Language-model attacks (``miaudit.attacks.lm``) read a :class:`TokenScores` per model:
for every document, the log-probability the model gives each token after the ones before
it, and, for Min-K%++, the mean and standard deviation of ``log p(v | x_<t)`` over the
vocabulary ``v`` under the model's own next-token distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import DataError, OutputError


@dataclass(frozen=True, eq=False)
class TokenScores:
    """Token statistics of one model on ``N`` documents (ragged: one array per document).

    Attributes
    ----------
    logprobs : list of ndarray (T_i,) float64
        ``log p(x_t | x_<t)`` for every predicted token of document ``i`` (every token of
        the text when the tokenizer has a BOS token, which the adapter puts in front; long
        documents are scored with a sliding window, so every token is predicted once, from
        up to a context window of earlier tokens).
    mean, std : list of ndarray (T_i,) float64, or None
        ``E_{v~p}[log p(v | x_<t)]`` and its standard deviation over the vocabulary, per
        predicted token (Min-K%++); ``None`` when not extracted.
    token_ids : list of ndarray (T_i,) int64, or None
        The id of every predicted token (DC-PDD looks up its corpus frequency); ``None``
        when the model's tokens are not known (an API, precomputed scores).
    """

    logprobs: list[np.ndarray]
    mean: list[np.ndarray] | None = None
    std: list[np.ndarray] | None = None
    token_ids: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.logprobs)

    @property
    def n_tokens(self) -> np.ndarray:
        """Predicted tokens per document, ``(N,)``."""
        return np.array([len(lp) for lp in self.logprobs], dtype=np.int64)

    def nll(self) -> np.ndarray:
        """Mean negative log-likelihood per predicted token of each document, ``(N,)``
        (``nan`` for a document with no predicted token)."""
        return np.array([-lp.mean() if len(lp) else np.nan for lp in self.logprobs])


#: Log-probabilities above this are refused as not log-probabilities (float rounding of a
#: log-softmax can give a tiny positive value; an NLL passed by mistake is positive).
_LOGPROB_TOLERANCE = 1e-4


def _fail_if_any(bad: np.ndarray, error: type[Exception], message: str) -> None:
    """Raise ``error(message.format(n=..., first=...))`` when ``bad`` (N,) has a True."""
    if bad.any():
        raise error(message.format(n=int(bad.sum()), first=int(np.flatnonzero(bad)[0])))


def check_token_scores(scores: TokenScores, n: int, role: str, *, distribution: bool) -> None:
    """Refuse token scores that cannot be read as ``n`` documents' log-probabilities, in
    one line naming ``role`` (``target``, ``reference``, ...) and the first bad document;
    with ``distribution``, also a ``mean``/``std`` that does not match them."""
    if not isinstance(scores, TokenScores):
        raise DataError(f"The {role} token scores must be a TokenScores, got "
                        f"{type(scores).__name__}.")
    if len(scores) != n:
        raise DataError(f"The {role} token scores cover {len(scores)} document(s) but there "
                        f"are {n} text(s): give one array per text, in the same order.")
    for i, lp in enumerate(scores.logprobs):
        if not isinstance(lp, np.ndarray) or lp.ndim != 1:
            raise OutputError(f"The {role} log-probabilities of document {i} must be a 1-D "
                              f"array, got {type(lp).__name__} of shape {np.shape(lp)}.")
    lengths = scores.n_tokens
    _fail_if_any(lengths == 0, DataError,
                 f"{{n}} document(s) have no predicted token in the {role} token scores "
                 "(the first is index {first}): a one-token text gives the model nothing to "
                 "predict. Drop texts shorter than two tokens.")
    flat = np.concatenate(scores.logprobs)
    doc = np.repeat(np.arange(n), lengths)
    _fail_if_any(np.bincount(doc, ~np.isfinite(flat), minlength=n) > 0, OutputError,
                 f"{{n}} document(s) have NaN or infinite {role} log-probabilities (the "
                 "first is index {first}).")
    _fail_if_any(np.bincount(doc, flat > _LOGPROB_TOLERANCE, minlength=n) > 0, OutputError,
                 f"{{n}} document(s) have positive {role} 'log-probabilities' (the first is "
                 "index {first}): give log p(x_t | x_<t) <= 0, not the NLL.")
    if not distribution:
        return
    if (scores.mean is None) != (scores.std is None):
        raise OutputError(f"The {role} token scores have only one of mean and std: give "
                          "both (Min-K%++ needs them) or neither.")
    if scores.mean is None:
        return
    for name, values in (("mean", scores.mean), ("std", scores.std)):
        if len(values) != n or any(np.shape(v) != np.shape(lp)
                                   for v, lp in zip(values, scores.logprobs, strict=False)):
            raise OutputError(f"The {role} token scores' {name} must have one array per "
                              "document with one value per predicted token, like logprobs.")
        flat_v = np.concatenate(values)
        bad = ~np.isfinite(flat_v) | ((flat_v < 0) if name == "std" else False)
        _fail_if_any(np.bincount(doc, bad, minlength=n) > 0, OutputError,
                     f"{{n}} document(s) have a NaN, infinite{' or negative' * (name == 'std')}"
                     f" {role} {name} (the first is index {{first}}).")


def check_token_frequency(frequency: np.ndarray, target: TokenScores) -> None:
    """Refuse corpus frequencies that are not in (0, 1], or token scores without ids
    inside the vocabulary they index (DC-PDD)."""
    f = np.asarray(frequency)
    if f.ndim != 1 or not np.isfinite(f).all() or (f <= 0).any() or (f > 1).any():
        raise OutputError("token_frequency must be a 1-D array of frequencies in (0, 1], "
                          "one per vocabulary entry (smooth them so that none is 0).")
    if target.token_ids is None:
        raise DataError("token_frequency needs the ids of the target's scored tokens "
                        "(TokenScores.token_ids), which these token scores do not have.")
    for i, (ids, lp) in enumerate(zip(target.token_ids, target.logprobs, strict=False)):
        ids = np.asarray(ids)
        if ids.shape != lp.shape or (ids.size and (ids.min() < 0 or ids.max() >= f.size)):
            raise DataError(f"The target's token ids of document {i} must hold one id per "
                            f"predicted token, each below the vocabulary size {f.size}.")
