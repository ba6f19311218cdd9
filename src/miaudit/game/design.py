"""The privacy game: which records each model is trained on.

A membership *design* is a boolean matrix of shape (models, records): ``design[m, i]``
says whether record ``i`` is in model ``m``'s training set ("IN"). Every model trains on a
random half of the pool and every record is IN for half of the models (Carlini et al.,
S&P 2022), so any model can be the target and the others its references.

For an epsilon lower bound from one target (the one-run method of Steinke et al. 2023,
:func:`miaudit.metrics.privacy.audit_epsilon_lower_bound`) the target's membership must be
drawn independently per record with probability 1/2: ``membership_design(...,
bernoulli=1)`` draws model 0 that way and makes model 1 its complement, while the other
pairs stay complementary exact halves, so every record is still IN for exactly half of
the models of any set of whole pairs.
"""

from __future__ import annotations

import numpy as np

from miaudit.errors import ConfigError


def membership_design(n_records: int, n_models: int = 1, *, seed: int = 0,
                      bernoulli: int = 0) -> np.ndarray:
    """Seeded membership design, shape ``(n_models, n_records)``, dtype bool.

    Models come in complementary pairs: models ``2j`` and ``2j + 1`` split the pool into
    a random half and its complement. So with an even number ``M`` of models every record
    is IN for exactly ``M / 2`` of them; with an odd ``M`` the last model takes a random
    half of its own, and each record is IN for ``(M - 1) / 2`` or ``(M + 1) / 2`` models.
    Every model trains on ``n_records // 2`` records (its complement on the rest, which is
    one more when ``n_records`` is odd).

    With ``bernoulli = b``, the first ``b`` pairs (a lone last model counting as a pair of
    one) instead include each record in model ``2j`` independently with probability 1/2,
    model ``2j + 1`` taking the rest: their sizes vary (Binomial(n, 1/2)), each pair is
    still complementary, and the draw comes from its own stream, so the exact-half pairs
    are the same whatever ``b`` (and independent of the Bernoulli rows). Model 0 is then a
    target whose membership supports the one-run epsilon bound; in the online game its
    references (every model but 0 and 1) still have each record IN exactly half the time.

    Parameters
    ----------
    n_records : int
        Records in the pool (at least 2).
    n_models : int, default 1
    seed : int, default 0
    bernoulli : int, default 0
        Leading pairs drawn per record (0 <= bernoulli <= ceil(n_models / 2)).

    Returns
    -------
    ndarray (n_models, n_records) of bool

    Examples
    --------
    >>> d = membership_design(10, 4, seed=1)
    >>> d.shape, d.sum(axis=0).tolist() == [2] * 10, d.sum(axis=1).tolist()
    ((4, 10), True, [5, 5, 5, 5])
    >>> b = membership_design(10, 4, seed=1, bernoulli=1)
    >>> bool((b[2:] == d[2:]).all()), bool((b[0] != b[1]).all()), b.sum(axis=0).tolist() == [2] * 10
    (True, True, True)
    """
    if n_records < 2:
        raise ConfigError(f"The privacy game needs at least 2 records, got {n_records}.")
    if n_models < 1:
        raise ConfigError(f"The number of models must be >= 1, got {n_models}.")
    groups = -(-n_models // 2)
    if not 0 <= bernoulli <= groups:
        raise ConfigError(f"bernoulli must lie between 0 and {groups} (the pairs of "
                          f"{n_models} models), got {bernoulli}.")
    rng = np.random.default_rng(seed)
    design = np.zeros((n_models, n_records), dtype=bool)
    if n_models % 2:
        design[-1, rng.permutation(n_records)[: n_records // 2]] = True
    for j in range(n_models // 2):
        design[2 * j, rng.permutation(n_records)[: n_records // 2]] = True
        design[2 * j + 1] = ~design[2 * j]
    for j in range(bernoulli):  # drawn after, from streams of their own
        row = np.random.default_rng([seed, 17, j]).random(n_records) < 0.5
        design[2 * j] = row
        if 2 * j + 1 < n_models:
            design[2 * j + 1] = ~row
    return design


def split_members(n_records: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of a pool into members and non-members of equal size.

    Returns
    -------
    members, non_members : ndarray of int
        Sorted record indices, ``n_records // 2`` each. With an odd pool, one record
        (chosen at random) takes no part in the game.

    Examples
    --------
    >>> m, n = split_members(7, seed=0)
    >>> len(m), len(n), len(set(m) & set(n))
    (3, 3, 0)
    """
    members = membership_design(n_records, 1, seed=seed)[0]
    non_members = np.flatnonzero(~members)
    if len(non_members) > members.sum():  # odd pool: one record sits out
        left_out = np.random.default_rng([seed, 1]).integers(len(non_members))
        non_members = np.delete(non_members, left_out)
    return np.flatnonzero(members), non_members
