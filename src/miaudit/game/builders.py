"""The games an audit plays: who trains on what, every model's outputs on the audited
records, the population set aside. One builder per kind of target: a recipe trained here
(online or offline references), an existing model (with offline references or none), and
precomputed outputs; :func:`play_game` picks it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from miaudit.config import online_models
from miaudit.data import Dataset
from miaudit.errors import (
    ConfigError,
    DataWarning,
    MembershipError,
    OutputError,
    QueryBudgetError,
)
from miaudit.game import membership_design
from miaudit.targets import (
    LabelTarget,
    ModelOutputs,
    PrecomputedOutputs,
    TorchTarget,
    as_target,
    load_outputs,
)
from miaudit.targets.outputs import Query, check_outputs
from miaudit.training import Recipe, build_module, make_recipe
from miaudit.training.cnn import image_side
from miaudit.training.executors import train_pool_models
from miaudit.training.recipes import check_recipe


@dataclass
class Game:
    """The audited records, every model's outputs on them and who trained on what."""

    ids: np.ndarray
    fingerprints: np.ndarray
    labels: np.ndarray
    membership: np.ndarray  # (M, N) bool; rows 0..T-1 are the targets
    outputs: list[ModelOutputs]  # one per model
    data_info: dict
    target_info: dict
    reference_rows: list[list[int]] = field(default_factory=list)  # per target
    # population records set aside from the audit, which no target trained on:
    # (logits (M, P, C), membership (M, P), labels (P,)) of every model on them
    population: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    # whether the references trained on the population records (offline references),
    # so that the attacker knows IN and OUT models there (tuning, learned attacks)
    references_train_on_population: bool = False
    # whether the targets' membership was drawn independently per record with
    # probability 1/2 (recipe games), which the one-run epsilon bound needs
    bernoulli_membership: bool = False
    # logits of every model on augmented queries of the audited records: (M, A, N, C)
    variants: np.ndarray | None = None
    # query access for label-only attacks: one function per model (X -> outputs), the
    # audited records' features, and the population records' features (offline)
    query: list[Query] | None = None
    features: np.ndarray | None = None
    population_features: np.ndarray | None = None
    image_shape: tuple[int, int, int] | None = None

    @property
    def reference_models(self) -> int:
        return len(self.reference_rows[0]) if self.reference_rows else 0


def play_game(data: Dataset | None, model, model_params, members, outputs, references, targets,
          reference_mode, seed, device, bar, training: dict,
          reference_recipe: str | Recipe = "mlp", population_fraction: float = 0.0) -> Game:
    if outputs is not None:
        if data is not None:
            raise ConfigError("Give either data (to query a model) or outputs "
                              "(precomputed), not both.")
        if references:
            raise ConfigError("Reference models need a recipe to train; precomputed "
                              "outputs are audited with reference-free attacks.")
        if model_params or not (isinstance(model, str) and model == "mlp"):
            raise ConfigError("A model and its parameters do not apply to precomputed "
                              "outputs (nothing is trained); leave --model and -p out.")
        return _game_from_outputs(outputs)
    if data is None:
        raise ConfigError("No data: give a data set (a built-in name or a file path).")
    ds = data
    if isinstance(model, str | Recipe):
        if members is not None:
            raise ConfigError("'members' is for auditing an existing model; a recipe is "
                              "trained on a seeded random half of the data.")
        if isinstance(model, Recipe):
            if model_params:
                raise ConfigError("Give model_params with a recipe name, not with a Recipe "
                                  "object (use dataclasses.replace on the Recipe instead).")
            check_recipe(model)
            recipe = model
        else:
            recipe = make_recipe(model, model_params)
        return _game_from_recipe(ds, recipe, references, targets, reference_mode, seed,
                                 device, bar, training, population_fraction)
    if members is None:
        raise ConfigError("Auditing an existing model needs 'members': a boolean mask or "
                          "the IDs of the records it was trained on.")
    if targets != 1:
        raise ConfigError("An existing model is the one target: leave targets at 1.")
    if references:
        if reference_mode != "offline":
            raise ConfigError("An existing model cannot be retrained with and without each "
                              "record: its references are offline (reference_mode='offline'"
                              ", --reference-mode offline).")
        recipe = (reference_recipe if isinstance(reference_recipe, Recipe)
                  else make_recipe(reference_recipe, model_params))
        check_recipe(recipe)
        return _game_from_model_offline(ds, model, members, recipe, references, seed, device,
                                        bar, training)
    return _game_from_model(ds, model, members)


def _data_info(ds: Dataset, **extra) -> dict:
    """The data facts for ``summary.json``; long column lists are reduced to counts."""
    info = {k: v for k, v in ds.info.items() if k not in ("name", "n_records", "n_classes")}
    for key in ("numeric_columns", "categorical_columns", "constant_columns"):
        if isinstance(info.get(key), list) and len(info[key]) > 20:
            info[f"n_{key}"] = len(info.pop(key))
    return {
        "name": ds.name,
        "n_records": ds.n_records,
        "n_classes": ds.n_classes,
        "n_features": ds.n_features,
        "fingerprint": ds.fingerprint,
        **info,
        **extra,
    }


def _game_from_recipe(ds: Dataset, recipe: Recipe, references: int, targets: int,
                      mode: str, seed: int, device: str, bar, training: dict,
                      population_fraction: float = 0.0) -> Game:
    """Train the target(s) and references of a recipe and collect their outputs.

    ``online``: ``references + 2`` models (``references`` rounded up to an even number)
    train on random halves of the whole pool in complementary pairs. Target ``t``'s
    references are all models but ``t`` and its complement ``t ^ 1``: then every record is
    IN for exactly half of the references *whatever its membership in the target*. (With
    the complement among the references, a member would have one IN reference less than a
    non-member, and attacks whose noise depends on those counts would find "leakage" in an
    untrained model.) ``offline``: the pool is split into audited records and population
    records; the targets train on random halves of the audited records, the references on
    complementary halves of the population (pairs, as online), so no reference ever saw an
    audited record, and each reference has a twin trained on disjoint data (RMIA's offline
    tuning plays one against the other, see :func:`~miaudit.attacks.rmia.tune_rmia`). The
    targets' pairs include each record independently with probability 1/2 (so their sizes
    vary), which makes the one-run epsilon lower bound valid; reference pairs are exact
    complementary halves.

    Population data for the attacks that use it (RMIA's ``z``, Attack-P) is never the
    audited non-members: offline, it is the references' pool; otherwise a seeded
    ``population_fraction`` of the pool is set aside, and no model trains on it.
    """
    pool, n_dup, rng, n_aside = _recipe_pool(ds, references, mode, seed, population_fraction)
    n, offline = pool.n_records, mode == "offline" and bool(references)
    audited, design, reference_rows = _recipe_design(n, n_aside, targets, references,
                                                     offline, seed, rng)
    members0 = design[0, audited]
    if ds.n_classes < 2 or len(np.unique(pool.y[audited][members0])) < 2:
        raise MembershipError("The members hold a single class; a classifier cannot be "
                              "trained. Use a data set with at least two classes.")
    _check_labels(pool.y[audited], members0)
    augment = _augmented_queries(recipe, training.pop("augment"), references)
    logits, variants, train_stats, weights = train_pool_models(
        recipe, pool.X, pool.y, design, n_classes=ds.n_classes, seed=seed,
        data_fingerprint=pool.fingerprint, device=device, bar=bar, augment=augment,
        **training)
    train_stats["augmented_queries"] = augment
    for m, z in enumerate(logits):  # every model's outputs on the whole pool, once
        check_outputs(z, "logits", n_records=n, n_classes=ds.n_classes,
                      source=f"{recipe.name} model {m}")
    accs = [_accuracies(z, pool.y, design[m]) for m, z in enumerate(logits)]
    target_info = _recipe_target_info(recipe, seed, accs, members0, reference_rows, mode,
                                      targets, train_stats)
    data_info = _data_info(ds, n_duplicates_left_out=n_dup, n_records_in_game=len(audited),
                           **({"n_population_records": int(n - len(audited))}
                              if len(audited) < n else {}))
    population_view = population_features = None
    if len(audited) < n:
        on_pop = np.setdiff1d(np.arange(n), audited)
        population_view = (logits[:, on_pop], design[:, on_pop], pool.y[on_pop])
        population_features = pool.X[on_pop]
    return Game(pool.ids[audited], pool.fingerprints[audited], pool.y[audited],
                design[:, audited], [ModelOutputs("logits", z[audited]) for z in logits],
                data_info, target_info, reference_rows=reference_rows,
                population=population_view, references_train_on_population=offline,
                bernoulli_membership=True,
                variants=None if variants is None else variants[:, :, audited],
                query=_recipe_queries(recipe, weights, ds.n_features, ds.n_classes, device),
                features=pool.X[audited], population_features=population_features,
                image_shape=(3, image_side(ds.n_features), image_side(ds.n_features))
                if recipe.name == "cnn" else None)


def _recipe_pool(ds: Dataset, references: int, mode: str, seed: int,
                 population_fraction: float) -> tuple[Dataset, int, np.random.Generator, int]:
    """The game's pool: duplicates left out (warned about), and a few records dropped at
    random so that every model trains on the same number of records (batched training).
    Returns the pool, the duplicates left out, the game's generator and the number of
    population records to set aside."""
    dup = ds.duplicate_mask()
    n_dup = int(dup.sum())
    if n_dup:
        warnings.warn(
            f"{n_dup} duplicate record(s) (same fingerprint as an earlier record) were left "
            "out of the game, so no record can be both member and non-member.",
            DataWarning, stacklevel=3,
        )
    keep = np.flatnonzero(~dup)
    rng = np.random.default_rng([seed, 1])
    offline = mode == "offline" and bool(references)
    multiple = 4 if offline else 2
    n_aside = 0 if offline else round(population_fraction * len(keep))
    drop = (len(keep) - n_aside) % multiple
    if drop:
        keep = np.delete(keep, rng.choice(len(keep), drop, replace=False))
    return ds.subset(keep), n_dup, rng, n_aside


def _recipe_design(n: int, n_aside: int, targets: int, references: int, offline: bool,
                   seed: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Who trains on what: the audited records, the design (models x pool records) and
    each target's reference rows (see :func:`_game_from_recipe`)."""
    aside = np.sort(rng.permutation(n)[:n_aside]) if n_aside else np.zeros(0, dtype=np.int64)
    # the targets' membership is drawn independently per record with probability 1/2 (the
    # one-run epsilon bound needs it); every other pair stays an exact complementary half
    target_pairs = -(-targets // 2)
    if offline:
        order = rng.permutation(n)
        audited, population = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
        design = np.zeros((targets + references, n), dtype=bool)
        design[:targets, audited] = membership_design(len(audited), targets, seed=seed,
                                                      bernoulli=target_pairs)
        design[targets:, population] = membership_design(len(population), references,
                                                         seed=seed + 1)
        return audited, design, [list(range(targets, targets + references))] * targets
    audited = np.setdiff1d(np.arange(n), aside)
    n_models = online_models(references) if references else 1
    design = np.zeros((n_models, n), dtype=bool)
    design[:, audited] = membership_design(len(audited), n_models, seed=seed,
                                           bernoulli=target_pairs if references else 1)
    reference_rows = [[m for m in range(n_models) if m not in (t, t ^ 1)]
                      for t in range(targets)] if references else []
    return audited, design, reference_rows


def _augmented_queries(recipe: Recipe, augment: bool | None, references: int) -> str | None:
    """The augmentation of the queries (``flip-shift``) or None; default: on for image
    recipes with references."""
    if augment is None:
        augment = recipe.name == "cnn" and references > 0
    if augment and recipe.name != "cnn":
        raise ConfigError("Augmented queries (flips, shifts) are for image recipes: use "
                          "--model cnn, or leave --augment off.")
    return "flip-shift" if augment else None


def _recipe_target_info(recipe: Recipe, seed: int, accs: list[dict], members0: np.ndarray,
                        reference_rows: list[list[int]], mode: str, targets: int,
                        train_stats: dict) -> dict:
    """summary.json's ``target``: the recipe, accuracies, members, references, training."""
    def mean(rows: list[dict], key: str) -> float:
        return float(np.mean([a[key] for a in rows]))

    info = {
        "model": recipe.name,
        "recipe": recipe.to_dict(),
        "description": recipe.describe(),
        "seed": seed,
        "train_accuracy": mean(accs[:targets], "train_accuracy"),
        "test_accuracy": mean(accs[:targets], "test_accuracy"),
        "n_members": int(members0.sum()),
        "n_non_members": int((~members0).sum()),
        "membership_draw": "independent per record with probability 1/2",
    }
    if reference_rows:
        ref_accs = [accs[m] for m in sorted({m for rows in reference_rows for m in rows})]
        info.update({
            "references": len(reference_rows[0]),
            "reference_mode": mode,
            "reference_train_accuracy": mean(ref_accs, "train_accuracy"),
            "reference_test_accuracy": mean(ref_accs, "test_accuracy"),
        })
    if targets > 1:
        info["targets"] = targets
    info["training"] = train_stats
    if "dp_epsilon_accountant" in train_stats:  # DP-SGD: the accountant's epsilon on top
        info["dp_epsilon_accountant"] = train_stats["dp_epsilon_accountant"]
    return info


def _recipe_queries(recipe: Recipe, weights: list[dict], n_features: int, n_classes: int,
                    device: str) -> list[Query]:
    """One query function per trained model (its torch module is rebuilt from the state
    dict on first use), for label-only attacks."""
    built: dict[int, TorchTarget] = {}

    def make(m: int) -> Query:
        def query(X: np.ndarray) -> ModelOutputs:
            if m not in built:
                import torch

                module = build_module(recipe, n_features, n_classes)
                module.load_state_dict({k: torch.from_numpy(np.array(v))
                                        for k, v in weights[m].items()})
                built[m] = TorchTarget(module.to(device), device=device)
            return built[m].outputs(X)
        return query

    return [make(m) for m in range(len(weights))]


def _member_mask(ds: Dataset, members) -> np.ndarray:
    arr = np.asarray(members)
    if arr.dtype == bool:
        if arr.shape != (ds.n_records,):
            raise MembershipError(f"The members mask has shape {arr.shape}; expected "
                                  f"({ds.n_records},), one entry per record.")
        return arr
    if (arr.shape == (ds.n_records,) and np.issubdtype(arr.dtype, np.number)
            and set(np.unique(arr).tolist()) <= {0, 1}):
        raise MembershipError("'members' looks like a 0/1 mask but is not boolean; pass "
                              "mask.astype(bool), or the members' record IDs as strings.")
    if arr.ndim != 1:
        raise MembershipError(f"'members' must be a 1-D boolean mask or a list of record "
                              f"IDs, got shape {arr.shape}.")
    wanted = arr.astype(str)
    uniq, counts = np.unique(wanted, return_counts=True)
    if (counts > 1).any():
        raise MembershipError(f"'members' lists record ID {uniq[counts > 1][0]!r} more than "
                              "once.")
    known = set(ds.ids.astype(str).tolist())
    unknown = [i for i in wanted.tolist() if i not in known]
    if unknown:
        raise MembershipError(f"{len(unknown)} member ID(s) are not in the data "
                              f"(first: {str(unknown[0])!r}).")
    return np.isin(ds.ids.astype(str), wanted)


def _game_from_model(ds: Dataset, model: object, members) -> Game:
    is_member = _member_mask(ds, members)
    _check_sides(is_member, ds.fingerprints)
    target = as_target(model, classes=ds.classes)
    http = is_http(target)
    partial = None
    if http:
        if target.n_classes is None:
            target.n_classes = ds.n_classes
        if target.classes is None:
            target.classes = ds.classes
        try:
            raw = target.outputs(ds.X, tag="outputs")
        except QueryBudgetError as exc:
            # the budget ran out: audit the records answered so far, marked as partial
            answered = getattr(exc, "answered", None)
            if answered is None or getattr(exc, "outputs", None) is None:
                raise
            partial = {"reason": str(exc), "records_answered": int(answered.sum()),
                       "records": int(ds.n_records)}
            ds, is_member, raw = ds.subset(np.flatnonzero(answered)), is_member[answered], \
                exc.outputs
            _check_sides(is_member, ds.fingerprints)
            warnings.warn(f"Partial audit: the query budget ran out after "
                          f"{partial['records_answered']} of {partial['records']} records.",
                          DataWarning, stacklevel=3)
    else:
        raw = target.outputs(ds.X)
    _check_labels(ds.y, is_member)
    if raw.n_classes < ds.n_classes:
        raise OutputError(
            f"The data has labels 0..{ds.n_classes - 1} but the model returns only "
            f"{raw.n_classes} classes: labels outside the model's classes."
        )
    out = check_outputs(raw.values, raw.kind, n_records=ds.n_records, n_classes=ds.n_classes,
                        source=type(model).__name__)
    target_info = {"model": getattr(model, "name", None) or type(model).__name__, "seed": None,
                   "outputs_sha256": _outputs_digest(out.values),
                   **_accuracies(out.values, ds.y, is_member)}
    if isinstance(target, LabelTarget) or (http and target.answer_form == "label"):
        target_info["labels_only"] = True
    if http:  # the endpoint without credentials, and what was sent so far
        target_info.update({"model": "HTTP endpoint", "endpoint": target.endpoint,
                            "http": target.stats()})
        if partial:
            target_info["partial"] = partial
    return Game(ds.ids, ds.fingerprints, ds.y, is_member[None, :], [out], _data_info(ds),
                 target_info, query=[target.outputs], features=ds.X)


def _outputs_digest(values: np.ndarray) -> str:
    """SHA-256 of a model's outputs on the audited records: what tells two models that are
    not built from a recipe apart (the registry keys them by it)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()


def _game_from_model_offline(ds: Dataset, model: object, members, recipe: Recipe,
                             references: int, seed: int, device: str, bar,
                             training: dict) -> Game:
    """An existing (black-box) target with offline references trained locally.

    The target cannot be retrained, so a seeded half of its non-members becomes the
    attacker's population data: the references train on complementary halves of it (never
    on an audited record), the target is queried on it (RMIA's ``z``), and the audited records
    are the members and the other half of the non-members.
    """
    is_member = _member_mask(ds, members)
    _check_sides(is_member, ds.fingerprints)
    rng = np.random.default_rng([seed, 5])
    outs = rng.permutation(np.flatnonzero(~is_member))
    population = np.sort(outs[: len(outs) // 2])
    if len(population) < 4 or len(outs) - len(population) < 2:
        raise MembershipError(f"{int((~is_member).sum())} non-member(s): too few to set half "
                              "aside as the references' population data.")
    audited = np.sort(np.concatenate([np.flatnonzero(is_member), outs[len(outs) // 2 :]]))
    base = _game_from_model(ds.subset(audited), model, is_member[audited])
    pool = ds.subset(np.concatenate([audited, population]))
    n_aud = len(audited)
    design = np.zeros((references, pool.n_records), dtype=bool)
    n_pop = len(population) - len(population) % 2
    design[:, n_aud : n_aud + n_pop] = membership_design(n_pop, references, seed=seed + 1)
    training = dict(training)
    training.pop("augment", None)
    logits, _, train_stats, weights = train_pool_models(
        recipe, pool.X, pool.y, design, n_classes=ds.n_classes, seed=seed,
        data_fingerprint=pool.fingerprint, device=device, bar=bar, **training)
    target_on_pop = base.query[0](ds.X[population])
    target_logits = (target_on_pop.values if target_on_pop.kind == "logits"
                     else target_on_pop.log_probs())
    ref_accs = [_accuracies(z[n_aud:], pool.y[n_aud:], design[m, n_aud:])
                for m, z in enumerate(logits)]
    base.target_info.update({
        "references": references, "reference_mode": "offline",
        "reference_recipe": recipe.to_dict(),
        "reference_train_accuracy": float(np.mean([a["train_accuracy"] for a in ref_accs])),
        "reference_test_accuracy": float(np.mean([a["test_accuracy"] for a in ref_accs])),
        "training": train_stats,
    })
    base.data_info["n_population_records"] = len(population)
    base.data_info["n_records_in_game"] = int(n_aud)
    ref_queries = _recipe_queries(recipe, weights, ds.n_features, ds.n_classes, device)
    return Game(
        base.ids, base.fingerprints, base.labels,
        np.vstack([base.membership, design[:, :n_aud]]),
        [base.outputs[0], *(ModelOutputs("logits", z[:n_aud]) for z in logits)],
        base.data_info, base.target_info,
        reference_rows=[list(range(1, references + 1))], references_train_on_population=True,
        population=(np.concatenate([target_logits[None], logits[:, n_aud:]]),
                    np.vstack([np.zeros((1, len(population)), dtype=bool), design[:, n_aud:]]),
                    pool.y[n_aud:]),
        query=[base.query[0], *ref_queries], features=base.features,
        population_features=pool.X[n_aud:])


def is_http(target: object) -> bool:
    """Whether the target is an HTTP endpoint (without importing httpx for others)."""
    return type(target).__name__ == "HTTPTarget" and hasattr(target, "counting")


def _game_from_outputs(outputs) -> Game:
    pre = outputs if isinstance(outputs, PrecomputedOutputs) else load_outputs(outputs)
    n = len(pre.labels)
    if n < 4:
        raise MembershipError(f"{n} record(s) in the outputs; an audit needs at least 4.")
    uniq, counts = np.unique(pre.ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise MembershipError(f"Record ID {uniq[counts > 1][0]!r} appears more than once in "
                              "the outputs; IDs must be unique.")
    fps = pre.fingerprints
    if fps is None:  # no content to fingerprint: the column stays empty
        fps = np.full(n, None, dtype=object)
    elif fps.shape != (n,):
        raise MembershipError(f"'fingerprints' has shape {fps.shape}; expected ({n},).")
    _check_sides(pre.is_member, pre.fingerprints)
    _check_labels(pre.labels, pre.is_member)
    n_classes = pre.outputs.n_classes
    if len(np.unique(pre.labels)) < 2:
        raise MembershipError("The records hold a single class; nothing to audit.")
    name = Path(pre.source).name
    data_info = {"name": name, "n_records": len(pre.labels), "n_classes": n_classes,
                 "n_features": None, "fingerprint": None, "source": pre.source,
                 "record_fingerprints": "from the file" if pre.fingerprints is not None
                 else "none (the file has no 'fingerprints' array)"}
    target_info = {"model": "precomputed outputs", "seed": None,
                   "outputs_sha256": _outputs_digest(pre.outputs.values),
                   **_accuracies(pre.outputs.values, pre.labels, pre.is_member)}
    return Game(pre.ids, fps, pre.labels, pre.is_member[None, :], [pre.outputs], data_info,
                 target_info)


def _check_labels(labels: np.ndarray, is_member: np.ndarray) -> None:
    """Warn when the labels make the game measure something other than memorisation."""
    n = len(labels)
    n_classes = len(np.unique(labels))
    if n_classes > max(10, n // 10):
        warnings.warn(
            f"{n_classes} classes for {n} records: the label column looks continuous or "
            "ID-like, and attacks will mostly detect classes that only one side holds.",
            DataWarning, stacklevel=3,
        )
    unseen = ~np.isin(labels[~is_member], labels[is_member])
    if unseen.mean() > 0.01:
        warnings.warn(
            f"{int(unseen.sum())} non-member(s) ({unseen.mean():.1%}) have a class that no "
            "member has; such records are told apart by their class, not by memorisation.",
            DataWarning, stacklevel=3,
        )


def _check_sides(is_member: np.ndarray, fingerprints: np.ndarray | None) -> None:
    n_mem = int(is_member.sum())
    if n_mem == 0 or n_mem == len(is_member):
        side = "members" if n_mem == 0 else "non-members"
        raise MembershipError(f"There are no {side}: an audit needs both members and "
                              "non-members.")
    if fingerprints is None:
        return
    shared = np.intersect1d(fingerprints[is_member], fingerprints[~is_member])
    if len(shared):
        raise MembershipError(
            f"{len(shared)} record(s) appear among both members and non-members (same "
            f"fingerprint, e.g. {shared[0][:12]}); remove the duplicates from the "
            "non-members so the non-members are truly unseen."
        )


def _accuracies(values: np.ndarray, labels: np.ndarray, is_member: np.ndarray) -> dict:
    """Accuracy on the members (train) and non-members (test) from outputs ``(N, C)``."""
    correct = np.argmax(values, axis=1) == labels
    return {
        "train_accuracy": float(correct[is_member].mean()),
        "test_accuracy": float(correct[~is_member].mean()),
        "n_members": int(is_member.sum()),
        "n_non_members": int((~is_member).sum()),
    }
