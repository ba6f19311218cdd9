"""The network of a recipe: an MLP (or logistic regression) here, the small CNN in
:mod:`miaudit.training.cnn`."""

from __future__ import annotations

from miaudit.training.recipes import Recipe, _torch, seeded_dropout

__all__ = ["build_module"]


def build_module(recipe: Recipe, n_features: int, n_classes: int):
    """The ``torch.nn.Module`` of a recipe (initialised from torch's global RNG).

    With ``dropout``, each hidden activation is ``Sequential(activation, SeededDropout)``,
    so the state-dict keys (``"0.weight"``, ``"2.weight"``, ...) stay those of the plain
    network and saved weights load into either.
    """
    if recipe.name == "cnn":
        from miaudit.training.cnn import build_cnn

        return build_cnn(n_classes, hidden=recipe.hidden, activation=recipe.activation,
                         n_features=n_features)
    torch = _torch()
    nn = torch.nn
    layers: list = []
    width = n_features
    act = nn.Tanh if recipe.activation == "tanh" else nn.ReLU
    for h in recipe.hidden:
        block = nn.Sequential(act(), seeded_dropout()(recipe.dropout)) if recipe.dropout \
            else act()
        layers += [nn.Linear(width, h), block]
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)
