"""What a causal language model reveals about a text: per-token log-probabilities.

Language-model attacks (``miaudit.attacks.lm``) read a :class:`TokenScores` per model:
for every document, the log-probability the model gives each token after the ones before
it, and, for Min-K%++, the mean and standard deviation of ``log p(v | x_<t)`` over the
vocabulary ``v`` under the model's own next-token distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
