"""Common properties of every registered attack (the pattern of scikit-learn's
``test_common.py``), driven by what each attack declares it knows (``Attack.knowledge``).

On one synthetic game where members have a lower loss, every attack must

* run with nothing but its declared knowledge, every other input absent;
* never touch the audited records' membership or label-only query answers unless it
  declares ``known-members`` or ``queries`` (they are poisoned: any use raises
  :class:`UndeclaredInput`), and give exactly the same scores when they hold garbage;
* rank the records the same when undeclared references or population data hold garbage
  or are absent (an attack may read them when present to rescale its score: RMIA);
* fail when one piece of its declared knowledge is taken away (a declaration it does not
  use is wrong too);
* score members higher;
* be deterministic under a seed, and equivariant to the order of the records (audited
  records permuted together with the references' columns and the label-only answers;
  population records permuted on their own).

The language-model attacks read another input type (:class:`LMAttackInput`) and are
checked the same way below, by what they need.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

import miaudit.attacks  # noqa: F401  (registers every attack)
from miaudit.attacks.base import (
    ATTACKS,
    KNOWLEDGE,
    AttackInput,
    Calibration,
    LabelQueries,
    Population,
    References,
)
from miaudit.attacks.lm import LM_ATTACKS, NEEDS, LMAttackInput
from miaudit.errors import ConfigError
from miaudit.signals import observe
from miaudit.signals.tokens import TokenScores
from miaudit.targets import check_outputs

N, C, K, Z, A = 240, 4, 8, 120, 12  # records, classes, references, population, copies


NAMES = list(ATTACKS)


class UndeclaredInput(AssertionError):
    """An attack used an input its knowledge does not declare."""


class Poison:
    """Stands for an input the attack does not declare: any use of it raises."""

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def _fail(self, *args, **kwargs):
        raise UndeclaredInput(f"the attack used {object.__getattribute__(self, '_what')}, "
                              "which its knowledge does not declare")

    def __getattr__(self, name):
        raise UndeclaredInput(f"the attack read {object.__getattribute__(self, '_what')}"
                              f".{name}, which its knowledge does not declare")

    __getitem__ = __len__ = __iter__ = __bool__ = __array__ = __index__ = _fail
    __invert__ = __and__ = __rand__ = __float__ = __int__ = __call__ = _fail


def _leaky(y: np.ndarray, inside: np.ndarray, difficulty: np.ndarray,
           noise: np.ndarray) -> np.ndarray:
    """Members get a sharper, more often correct output; each record has its own
    difficulty, shared by all models (what reference models calibrate away)."""
    z = noise[:, :C].copy()
    z[np.arange(len(y)), y] += np.where(inside, 3.0, 0.5) + difficulty + 0.5 * noise[:, C]
    return z


def _robustness(inside: np.ndarray, levels: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Members keep their label under strong perturbations more often."""
    strength = levels / levels.max()
    keep = 0.95 - strength * np.where(inside, 0.2, 0.6)[..., None]
    return u < keep


@dataclass(frozen=True)
class World:
    """One synthetic game: every per-record quantity is indexed by record, so that
    permuting the records permutes each of them."""

    y: np.ndarray            # (N,)
    is_member: np.ndarray    # (N,) the target's membership
    folds: np.ndarray        # (N,)
    logits: np.ndarray       # (N, C) target
    ref_logits: np.ndarray   # (K, N, C)
    ref_member: np.ndarray   # (K, N)
    correct: np.ndarray      # (N, A) label-only answers of the target
    ref_correct: np.ndarray  # (K, N, A) of the references on the same records
    distance: np.ndarray     # (N,)
    pop_y: np.ndarray        # (Z,)
    pop_logits: np.ndarray   # (Z, C) target on the population (never trained on)
    pop_ref_logits: np.ndarray  # (K, Z, C)
    x: np.ndarray            # (N, D) the records' features (their difficulty shows in them)
    pop_x: np.ndarray        # (Z, D)

    def permuted(self, perm: np.ndarray, pop_perm: np.ndarray) -> World:
        return World(self.y[perm], self.is_member[perm], self.folds[perm], self.logits[perm],
                     self.ref_logits[:, perm], self.ref_member[:, perm], self.correct[perm],
                     self.ref_correct[:, perm], self.distance[perm], self.pop_y[pop_perm],
                     self.pop_logits[pop_perm], self.pop_ref_logits[:, pop_perm],
                     self.x[perm], self.pop_x[pop_perm])


LEVELS = np.repeat(np.arange(3), A // 3)


def make_world(seed: int = 0) -> World:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, N)
    is_member = rng.random(N) < 0.5
    difficulty = rng.normal(0, 1.5, N)
    ref_member = np.zeros((K, N), dtype=bool)
    for j in range(0, K, 2):  # every record IN for half of the references
        ref_member[j] = rng.random(N) < 0.5
        ref_member[j + 1] = ~ref_member[j]
    logits = _leaky(y, is_member, difficulty, rng.normal(0, 1, (N, C + 1)))
    ref_logits = np.stack([_leaky(y, m, difficulty, rng.normal(0, 1, (N, C + 1)))
                           for m in ref_member])
    correct = _robustness(is_member, LEVELS, rng.random((N, A)))
    ref_correct = _robustness(ref_member, LEVELS, rng.random((K, N, A)))
    distance = np.where(is_member, 1.0, 0.5) + rng.normal(0, 0.3, N)
    pop_y = rng.integers(0, C, Z)
    pop_difficulty = rng.normal(0, 1.5, Z)
    out = np.zeros(Z, dtype=bool)
    pop_logits = _leaky(pop_y, out, pop_difficulty, rng.normal(0, 1, (Z, C + 1)))
    pop_ref_logits = np.stack([_leaky(pop_y, out, pop_difficulty,
                                      rng.normal(0, 1, (Z, C + 1))) for _ in range(K)])
    x = np.column_stack([difficulty + rng.normal(0, 0.2, N), rng.normal(0, 1, (N, 2))])
    pop_x = np.column_stack([pop_difficulty + rng.normal(0, 0.2, Z), rng.normal(0, 1, (Z, 2))])
    return World(y, is_member, np.arange(N) % 5, logits, ref_logits, ref_member, correct,
                 ref_correct, distance, pop_y, pop_logits, pop_ref_logits, x, pop_x)


def _observe(z: np.ndarray, y: np.ndarray):
    return observe(check_outputs(z, "logits"), y, "logits")


def _garbage_world(w: World) -> World:
    """Same shapes, unrelated values: what an attack that ignores an input cannot tell."""
    g = make_world(seed=12345)
    rng = np.random.default_rng(54321)
    return replace(g, y=w.y, is_member=rng.random(N) < 0.5)


def build(w: World, have: frozenset[str], other: str = "poison",
          keys: frozenset[str] = frozenset(KNOWLEDGE)) -> AttackInput:
    """The attack input giving the pieces of knowledge in ``have`` from ``w``; every other
    piece of ``keys`` is ``other``: "poison" (raises on use), "none" or "garbage" (the
    pieces outside ``keys`` are real)."""
    g = _garbage_world(w)

    def piece(key: str, real, garbage):
        if key in have or key not in keys:
            return real()
        return {"poison": lambda: Poison(key), "none": lambda: None,
                "garbage": garbage}[other]()

    refs = piece("references", lambda: References(w.ref_logits, w.ref_member, w.y),
                 lambda: References(g.ref_logits, g.ref_member, w.y))
    calibration = piece("known-members", lambda: Calibration(w.is_member, w.folds),
                        lambda: Calibration(g.is_member, g.folds))

    def population(src: World):
        return Population(_observe(src.pop_logits, src.pop_y), src.pop_ref_logits,
                          np.zeros((K, Z), dtype=bool), src.pop_x)

    pop = piece("population", lambda: population(w), lambda: population(g))

    def queries(src: World):
        ref_correct = piece("references", lambda: w.ref_correct, lambda: g.ref_correct)
        ref_member = piece("references", lambda: w.ref_member, lambda: g.ref_member)
        return LabelQueries(augment_correct=src.correct, augment_levels=LEVELS,
                            augment_queries=N * A, boundary_distance=src.distance,
                            boundary_queries=N, reference_correct=ref_correct,
                            reference_membership=ref_member)

    label_queries = piece("queries", lambda: queries(w), lambda: queries(g))
    return AttackInput(_observe(w.logits, w.y), calibration=calibration, references=refs,
                       population=pop, label_queries=label_queries, features=w.x)


def _score(name: str, inputs: AttackInput) -> np.ndarray:
    attack = ATTACKS[name]
    params = {"seed": 7} if "seed" in inspect.signature(attack.score).parameters else {}
    return np.asarray(attack.score(inputs, **params), dtype=np.float64)


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Shokri's gradient boosting spreads over OpenMP threads; on a small, shared machine
    that is 10-20x slower for these tiny fits than one thread (same scores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def test_every_attack_declares_known_knowledge():
    for attack in ATTACKS.values():
        assert attack.knowledge <= set(KNOWLEDGE), attack.name
        assert attack.describe_knowledge() == sorted(attack.knowledge)
        if attack.oracle:
            assert "oracle" in attack.description, attack.name


#: Inputs no attack may touch unless it declares them: the audited records' membership
#: and the answers to queries on perturbed inputs. References and population data may be
#: read when present without being declared, as long as the ranking does not change
#: (RMIA puts its score on the population's scale), see the tests below.
STRICT = frozenset({"known-members", "queries"})


@pytest.mark.parametrize("name", NAMES)
def test_runs_with_only_its_declared_knowledge(name, world):
    knowledge = ATTACKS[name].knowledge
    scores = _score(name, build(world, knowledge, "none"))
    assert scores.shape == (N,)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("name", NAMES)
def test_never_touches_undeclared_membership_or_queries(name, world):
    knowledge = ATTACKS[name].knowledge
    try:
        _score(name, build(world, knowledge, "poison", keys=STRICT))
    except UndeclaredInput as e:
        pytest.fail(f"{name} (knowledge {sorted(knowledge)}): {e}")


@pytest.mark.parametrize("name", NAMES)
def test_undeclared_inputs_do_not_change_the_scores(name, world):
    knowledge = ATTACKS[name].knowledge
    full = _score(name, build(world, frozenset(KNOWLEDGE)))
    # garbage membership and query answers: exactly the same scores
    strict = _score(name, build(world, knowledge, "garbage", keys=STRICT))
    np.testing.assert_array_equal(strict, full, err_msg=f"{name} ({sorted(knowledge)})")
    # garbage (or absent) references and population too: the same ranking
    for other in ("garbage", "none"):
        scores = _score(name, build(world, knowledge, other))
        np.testing.assert_array_equal(rankdata(scores), rankdata(full),
                                      err_msg=f"{name} ({sorted(knowledge)}), {other}")


@pytest.mark.parametrize("name", NAMES)
def test_each_declared_piece_is_used(name, world):
    knowledge = ATTACKS[name].knowledge
    for key in sorted(knowledge):
        with pytest.raises(Exception):  # noqa: B017 (any failure will do)
            _score(name, build(world, knowledge - {key}, "poison"))
        try:  # absent (None) rather than poisoned: refused or different, never the same
            without = _score(name, build(world, knowledge - {key}, "none"))
        except Exception:
            continue
        assert not np.array_equal(without, _score(name, build(world, knowledge, "none"))), (
            name, key)


@pytest.mark.parametrize("name", NAMES)
def test_members_score_higher(name, world):
    scores = _score(name, build(world, ATTACKS[name].knowledge, "none"))
    assert roc_auc_score(world.is_member, scores) > 0.6, name


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_a_seed(name):
    everything = frozenset(KNOWLEDGE)
    a = _score(name, build(make_world(3), everything))
    b = _score(name, build(make_world(3), everything))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("given", ["declared", "everything"])
def test_equivariant_to_record_order(name, given, world):
    knowledge = ATTACKS[name].knowledge if given == "declared" else frozenset(KNOWLEDGE)
    rng = np.random.default_rng(1)
    perm, pop_perm = rng.permutation(N), rng.permutation(Z)
    base = _score(name, build(world, knowledge, "none"))
    moved = _score(name, build(world.permuted(perm, pop_perm), knowledge, "none"))
    np.testing.assert_allclose(moved, base[perm], rtol=1e-9, atol=1e-12, err_msg=name)


# --- language-model attacks: the same properties over LMAttackInput ---------------------

#: What each LM need comes from, as knowledge.
LM_NEED_KNOWLEDGE = {"reference": {"references"}, "lowercase": {"queries"},
                     "distribution": set(), "frequency": {"population"},
                     "prefix": {"population", "queries"}, "neighbours": {"queries"},
                     "sampling": {"queries"}}
#: Options of the language-model attacks here: DC-PDD's default cap (0.01, for large
#: vocabularies) binds on every token of this 8-word world; a cap above the weights lets
#: the probabilities show.
LM_OPTIONS = {"dc-pdd": {"a": 10.0}}
LM_NAMES = list(LM_ATTACKS)
DOCS = 160


@dataclass(frozen=True)
class TextWorld:
    texts: list[str]
    is_member: np.ndarray
    target: list[np.ndarray]
    mean: list[np.ndarray]
    std: list[np.ndarray]
    lowercase: list[np.ndarray]
    reference: list[np.ndarray]
    token_ids: list[np.ndarray]
    conditioned: list[np.ndarray]
    neighbours: np.ndarray
    true_text: list[str]
    sample_text: list[list[str]]

    def permuted(self, perm: np.ndarray) -> TextWorld:
        def take(xs):
            return [xs[i] for i in perm]

        return TextWorld(take(self.texts), self.is_member[perm], take(self.target),
                         take(self.mean), take(self.std), take(self.lowercase),
                         take(self.reference), take(self.token_ids), take(self.conditioned),
                         self.neighbours[perm], take(self.true_text),
                         take(self.sample_text))


def make_text_world(seed: int = 0) -> TextWorld:
    """Members' tokens are likelier under the target (not under the reference model, nor
    lowercased); every document has its own difficulty."""
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "Gamma", "delta", "Epsilon", "zeta", "eta", "Theta"]
    is_member = rng.random(DOCS) < 0.5
    texts, target, mean, std, lower, ref, ids, cond = [], [], [], [], [], [], [], []
    for i in range(DOCS):
        t = int(rng.integers(8, 30))
        texts.append(" ".join(rng.choice(words, t + 1)))
        base = -rng.gamma(2.0, 1.0, t) - rng.uniform(0, 1)
        lift = 1.0 if is_member[i] else 0.0
        target.append(np.minimum(base + lift * rng.uniform(0.5, 1.0, t), 0.0))
        mean.append(base - 0.5)
        std.append(np.full(t, 1.0))
        lower.append(np.minimum(base + rng.normal(0, 0.1, t), 0.0))
        ref.append(np.minimum(base + rng.normal(0, 0.1, t), 0.0))
        ids.append(rng.integers(0, len(words), t))
        # after a non-member prefix a member's lift is mostly gone; a non-member changes
        # little
        cond.append(np.minimum(base + lift * rng.uniform(0.0, 0.3, t)
                               + rng.normal(0, 0.05, t), 0.0))
    # one-token neighbours read like the document without the members' lift
    neighbours = np.array([-r.mean() + rng.normal(0, 0.05, 4) for r in ref])
    # sampled continuations keep more of a member's true second half
    true_text, sample_text = [], []
    for i in range(DOCS):
        truth = list(rng.choice(words, 6))
        keep = 0.7 if is_member[i] else 0.3
        true_text.append(" ".join(truth))
        sample_text.append([" ".join(w if rng.random() < keep else str(rng.choice(words))
                                     for w in truth) for _ in range(3)])
    return TextWorld(texts, is_member, target, mean, std, lower, ref, ids, cond,
                     np.maximum(neighbours, 0.0), true_text, sample_text)


def lm_build(w: TextWorld, needs: frozenset[str]) -> LMAttackInput:
    dist = "distribution" in needs
    return LMAttackInput(
        w.texts, TokenScores(w.target, w.mean if dist else None, w.std if dist else None,
                             token_ids=w.token_ids),
        lowercase=TokenScores(w.lowercase) if "lowercase" in needs else None,
        reference=TokenScores(w.reference) if "reference" in needs else None,
        token_frequency=np.full(8, 1 / 8) if "frequency" in needs else None,
        conditioned=TokenScores(w.conditioned) if "prefix" in needs else None,
        neighbours=w.neighbours if "neighbours" in needs else None,
        samples=SimpleNamespace(true_text=w.true_text, sample_text=w.sample_text)
        if "sampling" in needs else None)


def lm_score(attack, inputs: LMAttackInput) -> np.ndarray:
    return attack.score(inputs, **LM_OPTIONS.get(attack.name, {}))


@pytest.fixture(scope="module")
def text_world() -> TextWorld:
    return make_text_world()


@pytest.mark.parametrize("name", LM_NAMES)
def test_lm_attack_declares_knowledge_matching_its_needs(name):
    attack = LM_ATTACKS[name]
    assert attack.needs <= set(NEEDS)
    assert attack.knowledge <= set(KNOWLEDGE)
    implied = set().union(*(LM_NEED_KNOWLEDGE[n] for n in attack.needs))
    assert attack.knowledge == implied, name


@pytest.mark.parametrize("name", LM_NAMES)
def test_lm_attack_runs_with_its_needs_and_refuses_without(name, text_world):
    attack = LM_ATTACKS[name]
    scores = lm_score(attack, lm_build(text_world, attack.needs))
    assert scores.shape == (DOCS,) and np.isfinite(scores).all()
    for need in sorted(attack.needs):
        with pytest.raises(ConfigError, match="needs"):
            lm_score(attack, lm_build(text_world, attack.needs - {need}))
    # what it does not need changes nothing
    np.testing.assert_array_equal(lm_score(attack, lm_build(text_world, frozenset(NEEDS))),
                                  scores)


@pytest.mark.parametrize("name", LM_NAMES)
def test_lm_members_score_higher(name, text_world):
    attack = LM_ATTACKS[name]
    scores = lm_score(attack, lm_build(text_world, attack.needs))
    assert roc_auc_score(text_world.is_member, scores) > 0.6, name


@pytest.mark.parametrize("name", LM_NAMES)
def test_lm_deterministic_and_order_equivariant(name, text_world):
    attack = LM_ATTACKS[name]
    base = lm_score(attack, lm_build(text_world, attack.needs))
    np.testing.assert_array_equal(lm_score(attack, lm_build(make_text_world(), attack.needs)),
                                  base)
    perm = np.random.default_rng(2).permutation(DOCS)
    moved = lm_score(attack, lm_build(text_world.permuted(perm), attack.needs))
    np.testing.assert_allclose(moved, base[perm], rtol=1e-12)
