"""The privacy game: who trains on what (:mod:`~miaudit.game.design`), and the builders
that turn a recipe, an existing model or precomputed outputs into the models of one game
(:mod:`~miaudit.game.builders`: trained, released and ready to attack)."""

from miaudit.game.design import membership_design, split_members

__all__ = ["membership_design", "split_members"]
