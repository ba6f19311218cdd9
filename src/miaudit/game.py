"""The privacy game: which records each model is trained on.

A membership *design* is a boolean matrix of shape (models, records): ``design[m, i]``
says whether record ``i`` is in model ``m``'s training set ("IN"). With one model it is a
seeded random half; with an even number ``M`` of models every record is IN for exactly
``M / 2`` of them (Carlini et al., S&P 2022), so any model can be the target and the
others its references, and every model trains on half of the pool (the models come in
complementary pairs).
"""

from __future__ import annotations

import numpy as np

from miaudit.errors import ConfigError


def membership_design(n_records: int, n_models: int = 1, *, seed: int = 0) -> np.ndarray:
    """Seeded membership design, shape ``(n_models, n_records)``, dtype bool.

    Parameters
    ----------
    n_records : int
        Records in the pool.
    n_models : int, default 1
        1, or an even number of models.
    seed : int, default 0

    Returns
    -------
    ndarray (n_models, n_records) of bool
        With one model, exactly ``n_records // 2`` records are IN. With ``M`` models
        (even), each record is IN for exactly ``M / 2`` models, and each model has
        ``n_records // 2`` records IN (models ``2j`` and ``2j + 1``, complementary).

    Examples
    --------
    >>> d = membership_design(10, 4, seed=1)
    >>> d.shape, d.sum(axis=0).tolist() == [2] * 10
    ((4, 10), True)
    """
    if n_records < 2:
        raise ConfigError(f"The privacy game needs at least 2 records, got {n_records}.")
    if n_models < 1 or (n_models > 1 and n_models % 2):
        raise ConfigError(
            f"The number of models must be 1 or even (each record IN for half of them), "
            f"got {n_models}."
        )
    rng = np.random.default_rng(seed)
    if n_models == 1:
        design = np.zeros((1, n_records), dtype=bool)
        design[0, rng.permutation(n_records)[: n_records // 2]] = True
        return design
    # Complementary pairs: models 2j and 2j+1 split the pool into a random half and its
    # complement, so each record is IN for exactly M/2 models and each model trains on
    # n_records // 2 or (n_records + 1) // 2 records (exactly half when n_records is even).
    design = np.zeros((n_models, n_records), dtype=bool)
    for j in range(n_models // 2):
        half = rng.permutation(n_records)[: n_records // 2]
        design[2 * j, half] = True
        design[2 * j + 1] = ~design[2 * j]
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
    if n_records < 2:
        raise ConfigError(f"The privacy game needs at least 2 records, got {n_records}.")
    order = np.random.default_rng(seed).permutation(n_records)
    half = n_records // 2
    return np.sort(order[:half]), np.sort(order[half : 2 * half])
