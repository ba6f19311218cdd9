"""The audit spec: a pydantic model of a TOML / YAML file that describes one audit.

Every section forbids unknown keys and takes values strictly (``references = "16"`` is an
error, not 16), so a typo or a wrong type never passes silently. Ranges are checked here
too, so that ``miaudit spec check`` points at the line; :func:`miaudit.audit` checks them
again at its own boundary.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model, model_validator

from miaudit.config import SECTIONS, SETTINGS, AuditConfig, SettingError
from miaudit.defaults import DEFAULT_RECIPE
from miaudit.errors import ConfigError, MiauditError

__all__ = ["AuditSection", "AuditSpec", "DataSection", "LMSection", "SpecError",
           "SpecProblem", "TargetSection", "TrainingSection"]

LM_RECIPE = "gpt2"

_Scalar = str | int | float | bool
_STRICT = ConfigDict(extra="forbid", strict=True)


class SpecProblem(NamedTuple):
    """One problem in a spec: where (file, line, field path) and what."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}"


class SpecError(ConfigError):
    """An audit spec is invalid. ``problems`` lists every problem found (first one shown).

    Raised inside validation with ``loc`` (a field path) and no file; :func:`load_spec`
    re-raises it with the file and line of that field.
    """

    def __init__(self, message: str, *, loc: tuple = (),
                 problems: list[SpecProblem] | None = None) -> None:
        self.loc = tuple(loc)
        self.detail = message
        self.problems = problems or []
        if problems:
            first, rest = problems[0], problems[1:]
            text = str(first)
            if rest:
                more = ", ".join(f"{p.path} (line {p.line})" if p.line else p.path
                                 for p in rest[:5])
                text += f" [{len(rest)} more problem(s): {more}]"
        else:
            text = f"{format_path(self.loc)}: {message}" if self.loc else message
        super().__init__(text)


def format_path(loc: tuple) -> str:
    """``("audit", "fprs", 1)`` -> ``audit.fprs[1]``; keys with dots are quoted."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
            continue
        key = str(part)
        if not key.isprintable():  # newlines and other control characters escaped
            key = json.dumps(key)
        elif not key or any(c in key for c in ". []\"'"):
            key = '"' + key.replace('"', '\\"') + '"'
        text += f".{key}" if text else key
    return text or "(top level)"


class DataSection(BaseModel):
    """``[data]``: what to audit on.

    Attributes
    ----------
    source : str
        A built-in data set name (``digits``) or a file path, relative to the spec file.
    label_column, id_column : str, optional
        Columns of a CSV / Parquet file (``id_column`` may be a 0-based position for texts).
    n_records : int, optional
        A seeded, class-stratified subset of this many records.
    text_column, member_column : optional
        Language-model audits only: the text column(s) and the membership column.
    """

    model_config = _STRICT

    source: str = Field(min_length=1)
    label_column: str | None = None
    id_column: str | int | None = None
    n_records: Annotated[int, Field(ge=1)] | None = None
    text_column: str | int | list[str | int] | None = None
    member_column: str | int | None = None


class TargetSection(BaseModel):
    """``[target]``: the model audited.

    Attributes
    ----------
    task : {"classification", "lm"}, default "classification"
    recipe : str, optional
        A recipe to train (``mlp``, ``logistic``, ``cnn``; default ``mlp``); for
        ``task = "lm"`` only ``gpt2`` (the tiny GPT-2 recipe).
    params : dict
        Recipe parameters (``{epochs = 20, hidden = [256, 128]}``).
    outputs : str, optional
        Precomputed outputs (``.npz``) instead of a recipe, relative to the spec file.
    model : str, optional
        ``task = "lm"``: a local model folder (``save_pretrained``) instead of training.
    """

    model_config = _STRICT

    task: Literal["classification", "lm"] = "classification"
    recipe: str | None = None
    params: dict[str, _Scalar | list[_Scalar]] = Field(default_factory=dict)
    outputs: str | None = None
    model: str | None = None


#: The keys of ``[audit]`` and ``[training]``: settings of :class:`~miaudit.config.AuditConfig`,
#: declared (type, range, default) there and only there.
AUDIT_KEYS = ("exposure", "attacks", "references", "reference_mode", "targets",
              "lira_variance", "rmia_temperature", "quantile_method", "population_fraction",
              "seed", "fprs",
              "alpha", "prior", "delta", "calibration_folds", "query_budget")
TRAINING_KEYS = ("device", "executor", "workers", "ray_address", "models_per_batch", "augment")


def _settings_section(name: str, keys: tuple[str, ...], doc: str) -> type[BaseModel]:
    """A strict spec section whose keys are the settings ``keys`` as AuditConfig declares
    them (its cross-setting checks run when the spec builds the config)."""
    fields: dict[str, Any] = {}
    for key in keys:
        section, field = SETTINGS[key]
        info = (SECTIONS[section] if section else AuditConfig).model_fields[field]
        fields[key] = (info.annotation, copy.copy(info))
    return create_model(name, __config__=_STRICT, __doc__=doc, **fields)


AuditSection = _settings_section(
    "AuditSection", AUDIT_KEYS, "``[audit]``: the game and the measurement (the settings "
    "of :class:`~miaudit.config.AuditConfig` of the same names).")
TrainingSection = _settings_section(
    "TrainingSection", TRAINING_KEYS, "``[training]``: where and how models train (no "
    "effect on the figures on CPU).")


class LMSection(BaseModel):
    """``[lm]``: settings of a language-model audit (``target.task = "lm"``), the keyword
    arguments of :func:`~miaudit.audits.lm.audit_lm` of the same names."""

    model_config = _STRICT

    base_model: str | None = None
    reference_model: str | None = None
    canaries: Annotated[int, Field(ge=0)] = 0
    k: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.2
    dc_pdd_cap: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.01
    neighbours: Annotated[int, Field(ge=1)] = 10
    extraction: bool = False
    extraction_prefix: Annotated[int, Field(ge=1)] = 32
    extraction_suffix: Annotated[int, Field(ge=1)] = 32
    blind: bool = True
    batch_size: Annotated[int, Field(ge=1)] = 8
    max_length: Annotated[int, Field(ge=2)] | None = None
    stride: Annotated[int, Field(ge=1)] | None = None


#: Keys of [audit] and [training] that a language-model audit does not use.
_CLASSIFICATION_ONLY = {
    "audit": ("exposure", "reference_mode", "targets", "lira_variance",
              "rmia_temperature", "quantile_method", "population_fraction",
              "calibration_folds", "query_budget"),
    "training": ("executor", "workers", "ray_address", "models_per_batch", "augment"),
}


class AuditSpec(BaseModel):
    """A whole audit, as reviewed and versioned: see :func:`~miaudit.spec.load_spec`.

    Attributes
    ----------
    spec_version : 1
    name, description : str, optional
        What the audit is for (``name`` also names the default run folder).
    data, target, audit, training, lm : sections
    thresholds : dict of str to float
        Free-form policy thresholds carried with the spec and stored with the run.
    """

    model_config = _STRICT

    spec_version: Literal[1] = 1
    name: str | None = None
    description: str | None = None
    data: DataSection | None = None
    target: TargetSection = Field(default_factory=TargetSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    lm: LMSection | None = None
    thresholds: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict)

    _base_dir: Path | None = PrivateAttr(default=None)
    _source: dict | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> AuditSpec:
        for loc, message in _conflicts(self):
            raise SpecError(message, loc=loc)
        if self.task == "lm" and self.lm is None:
            self.lm = LMSection()
        if self.task == "classification" and self.target.outputs is None \
                and self.target.recipe is None:
            self.target.recipe = DEFAULT_RECIPE
        if self.task == "classification":
            try:  # the checks across settings, exactly as the audit makes them
                self.to_config()
            except SettingError as exc:
                raise SpecError(exc.detail, loc=_spec_loc(exc.setting)) from None
        return self

    # ------------------------------------------------------------------ views

    @property
    def task(self) -> Literal["classification", "lm"]:
        """``"classification"`` (:func:`miaudit.audit`) or ``"lm"`` (``audit_lm``)."""
        return self.target.task

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved from: the spec file's, else the current
        working directory."""
        return self._base_dir if self._base_dir is not None else Path.cwd()

    @property
    def source(self) -> dict | None:
        """Where the spec came from: ``path``, ``sha256``, ``format`` and ``text`` of the
        file (``None`` for a spec built in Python)."""
        return None if self._source is None else dict(self._source)

    def with_source(self, base_dir: str | os.PathLike | None, source: dict | None
                    ) -> AuditSpec:
        """This spec, resolving relative paths from ``base_dir`` and recording ``source``
        (what :func:`~miaudit.spec.load_spec` sets)."""
        self._base_dir = None if base_dir is None else Path(base_dir).resolve()
        self._source = None if source is None else dict(source)
        return self

    def resolve_path(self, value: str) -> str:
        """``value`` as an absolute path, relative ones taken from :attr:`base_dir`."""
        path = Path(value)
        with contextlib.suppress(RuntimeError):  # "~name" of no such user: kept, as a shell does
            path = path.expanduser()
        return str(path if path.is_absolute() else (self.base_dir / path).resolve())

    def data_source(self) -> str | None:
        """The data source to load: a built-in name as written, a path resolved."""
        if self.data is None:
            return None
        from miaudit.data import BUILTIN_DATASETS

        src = self.data.source
        return src if src in BUILTIN_DATASETS else self.resolve_path(src)

    def to_audit_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`miaudit.audit` (``task == "classification"``) or
        :func:`~miaudit.audits.lm.audit_lm` (``task == "lm"``), every one given,
        with paths resolved from the spec's folder. ``cache``, ``cache_dir`` and ``progress``
        are left to the caller (they change no figure)."""
        a, t, tr = self.audit, self.target, self.training
        if self.task == "lm":
            lm = self.lm or LMSection()
            d = self.data
            assert d is not None  # checked by the validator
            return {
                "data": self.data_source(), "text_column": d.text_column,
                "id_column": d.id_column, "member_column": d.member_column,
                "n_records": d.n_records,
                "model": None if t.model is None else self.resolve_path(t.model),
                "base_model": None if lm.base_model is None
                else self.resolve_path(lm.base_model),
                "reference_model": None if lm.reference_model is None
                else self.resolve_path(lm.reference_model),
                "recipe": dict(t.params) or None, "references": a.references,
                "attacks": None if a.attacks is None else list(a.attacks), "k": lm.k,
                "dc_pdd_cap": lm.dc_pdd_cap, "canaries": lm.canaries, "seed": a.seed,
                "neighbours": lm.neighbours,
                "extraction": lm.extraction, "extraction_prefix": lm.extraction_prefix,
                "extraction_suffix": lm.extraction_suffix,
                "fprs": list(a.fprs),
                "alpha": a.alpha, "prior": a.prior, "delta": a.delta, "blind": lm.blind,
                "device": tr.device, "batch_size": lm.batch_size,
                "max_length": lm.max_length, "stride": lm.stride,
            }
        kwargs: dict[str, Any] = {}
        if t.outputs is not None:
            kwargs["outputs"] = self.resolve_path(t.outputs)
        else:
            d = self.data
            assert d is not None  # checked by the validator
            kwargs.update(data=self.data_source(), label_column=d.label_column,
                          id_column=d.id_column, n_records=d.n_records, model=t.recipe,
                          model_params=dict(t.params) or None)
        kwargs.update(
            exposure=list(a.exposure) if isinstance(a.exposure, list) else a.exposure,
            attacks=None if a.attacks is None else list(a.attacks),
            references=a.references, reference_mode=a.reference_mode, targets=a.targets,
            lira_variance=a.lira_variance,
            rmia_temperature=a.rmia_temperature, quantile_method=a.quantile_method,
            population_fraction=a.population_fraction, seed=a.seed, fprs=list(a.fprs),
            alpha=a.alpha, prior=a.prior, delta=a.delta,
            calibration_folds=a.calibration_folds, device=tr.device, executor=tr.executor,
            workers=tr.workers, ray_address=tr.ray_address,
            models_per_batch=tr.models_per_batch, augment=tr.augment,
            query_budget=a.query_budget)
        return kwargs

    def to_config(self) -> AuditConfig:
        """The :class:`~miaudit.config.AuditConfig` of a classification audit, paths
        resolved from the spec's folder (``cache_dir`` and ``progress`` left at their
        defaults: they change no figure)."""
        if self.task == "lm":
            raise ConfigError("A language-model spec runs with audit_lm: use "
                              "to_audit_kwargs().")
        return AuditConfig.from_settings(**self.to_audit_kwargs())

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data, every setting written out (defaults too) and every
        path absolute, so ``AuditSpec.model_validate(spec.to_dict())`` re-runs the same
        audit from anywhere; keys the task does not use are left out."""
        exclude: dict[str, Any] = {}
        if self.task == "lm":
            exclude = {k: set(v) for k, v in _CLASSIFICATION_ONLY.items()}
            exclude["data"] = {"label_column"}
            exclude["target"] = {"outputs"}
        else:
            exclude = {"lm": True, "target": {"model"},
                       "data": {"text_column", "member_column"}}
        out = self.model_dump(mode="json", exclude=exclude)
        if out.get("data") is not None:
            out["data"]["source"] = self.data_source()
        for section, key in (("target", "outputs"), ("target", "model"),
                             ("lm", "base_model"), ("lm", "reference_model")):
            value = (out.get(section) or {}).get(key)
            if value is not None:
                out[section][key] = self.resolve_path(value)
        return out


# ---------------------------------------------------------------------- consistency

_SPEC_PLACES = {"data": ("data", "source"), "label_column": ("data", "label_column"),
                "id_column": ("data", "id_column"), "n_records": ("data", "n_records"),
                "model": ("target", "recipe"), "model_params": ("target", "params"),
                "outputs": ("target", "outputs"),
                **{k: ("audit", k) for k in AUDIT_KEYS},
                **{k: ("training", k) for k in TRAINING_KEYS}}


def _spec_loc(setting: str) -> tuple:
    """Where a setting (``fprs[1]``) lives in a spec file (``("audit", "fprs", 1)``)."""
    name, _, tail = setting.partition("[")
    place = _SPEC_PLACES.get(name, (name,))
    indices = tuple(int(i) for i in tail.rstrip("]").split("][") if i) if tail else ()
    return place + indices



def _conflicts(spec: AuditSpec) -> Iterator[tuple[tuple, str]]:
    """Cross-field problems as ``(field path, message)``, in file order where possible."""
    t, a = spec.target, spec.audit
    lm_task = t.task == "lm"
    if lm_task:
        if t.outputs is not None:
            yield ("target", "outputs"), ("a language-model audit scores texts with a model; "
                                          "precomputed outputs are for classification")
        if t.recipe is not None and t.recipe.strip().lower() != LM_RECIPE:
            yield ("target", "recipe"), (f"a language-model audit trains the {LM_RECIPE!r} "
                                         f"recipe, got {t.recipe!r}; set its parameters in "
                                         "target.params, or give target.model")
        if spec.data is None:
            yield ("data",), "missing section: a language-model audit needs [data] source"
        elif spec.data.label_column is not None:
            yield ("data", "label_column"), ("not used by a language-model audit (texts have "
                                             "no labels); use data.member_column")
        for section, keys in _CLASSIFICATION_ONLY.items():
            given = getattr(spec, section).model_fields_set
            for key in keys:
                if key in given:
                    yield (section, key), "not used by a language-model audit; remove it"
        if t.model is not None and spec.lm is not None and spec.lm.canaries:
            yield ("lm", "canaries"), ("canaries are inserted into the training texts, so "
                                       "they need a trained recipe: remove target.model")
        if t.params and t.model is not None and not a.references:
            yield ("target", "params"), ("unused: with target.model the recipe trains only "
                                         "reference models (set audit.references)")
        yield from _lm_params(t.params)
        yield from _attack_names(a.attacks, lm=True)
        return
    if t.model is not None:
        yield ("target", "model"), ("a model folder is for target.task = 'lm'; a "
                                    "classification target is a recipe or an outputs file")
    if spec.lm is not None:
        yield ("lm",), "the [lm] section is for target.task = 'lm'"
    if t.outputs is not None:
        if t.recipe is not None:
            yield ("target", "outputs"), ("give either target.recipe (train a model) or "
                                          "target.outputs (precomputed), not both")
        if t.params:
            yield ("target", "params"), ("recipe parameters do not apply to precomputed "
                                         "outputs (target.outputs)")
        if spec.data is not None:
            yield ("data",), ("an outputs file holds its own records and labels: remove "
                              "[data], or remove target.outputs to train a recipe")
        if a.references:
            yield ("audit", "references"), ("reference models are trained from a recipe; "
                                             "precomputed outputs are audited without them")
    elif spec.data is None:
        yield ("data",), "missing section: give [data] source (or target.outputs)"
    if spec.data is not None:
        d = spec.data
        from miaudit.data.dataset import MIN_RECORDS
        from miaudit.data.loaders import BUILTIN_DATASETS

        if d.n_records is not None and d.n_records < MIN_RECORDS:
            yield ("data", "n_records"), f"must be >= {MIN_RECORDS} for a classification audit"
        if d.source in BUILTIN_DATASETS:
            for key in ("label_column", "id_column"):
                if getattr(d, key) is not None:
                    yield ("data", key), (f"applies to CSV/parquet files only, not to the "
                                          f"built-in data set {d.source!r}")
        for key in ("text_column", "member_column"):
            if getattr(d, key) is not None:
                yield ("data", key), "for language-model audits only (target.task = 'lm')"
        if isinstance(d.id_column, int):
            yield ("data", "id_column"), ("a table's ID column is given by name, got "
                                          f"{d.id_column!r}")
    if t.outputs is None:
        yield from _recipe_problems(t.recipe or DEFAULT_RECIPE, t.params)
    yield from _attack_names(a.attacks, lm=False)


def _attack_names(names: list[str] | None, *, lm: bool) -> Iterator[tuple[tuple, str]]:
    if names is None:
        return
    if not names:
        yield ("audit", "attacks"), ("empty list: name at least one attack, or leave the "
                                     "key out for every attack the exposure allows")
    if lm:
        from miaudit.attacks.lm import LM_ATTACKS
        from miaudit.audits.lm import LIRA_ATTACKS

        known = [*LM_ATTACKS, *LIRA_ATTACKS]
    else:
        from miaudit.attacks import ATTACKS

        known = list(ATTACKS)
    for i, name in enumerate(names):
        if name.strip().lower() not in known:
            yield ("audit", "attacks", i), f"unknown attack {name!r}{_did_you_mean(name, known)}"


def _did_you_mean(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(str(name).strip().lower(), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return f"{hint} Known: {', '.join(known)}."


def _check_type(key: str, value: Any, annotation: str) -> str | None:
    """Why ``value`` does not fit a dataclass field annotated ``annotation`` (or None)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if annotation == "int" and not is_int:
        return "should be an integer"
    if annotation == "float" and not (is_int or isinstance(value, float)):
        return "should be a number"
    if annotation == "str" and not isinstance(value, str):
        return "should be a string"
    if annotation.startswith("tuple[int") and not (
            isinstance(value, list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return "should be a list of integers (e.g. [256, 128])"
    return None


def _params_types(params: dict, cls: type, skip: tuple[str, ...]
                  ) -> Iterator[tuple[tuple, str]]:
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls) if f.name not in skip}
    for key, value in params.items():
        if key not in fields:
            yield ("target", "params", key), (f"unknown recipe parameter"
                                              f"{_did_you_mean(key, list(fields))}")
            continue
        why = _check_type(key, value, fields[key])
        if why:
            yield ("target", "params", key), f"{why}, got {value!r}"


def _recipe_problems(recipe: str, params: dict) -> Iterator[tuple[tuple, str]]:
    from miaudit.training import RECIPES, Recipe, make_recipe

    if recipe.strip().lower() not in RECIPES:
        yield ("target", "recipe"), (f"unknown recipe {recipe!r}"
                                     f"{_did_you_mean(recipe, list(RECIPES))}")
        return
    problems = list(_params_types(params, Recipe, ("name",)))
    yield from problems
    if not problems:
        try:
            make_recipe(recipe, params)
        except MiauditError as exc:
            yield ("target", "params"), str(exc)


def _lm_params(params: dict) -> Iterator[tuple[tuple, str]]:
    if not params:
        return
    from miaudit.training.lm import LMRecipe

    problems = list(_params_types(params, LMRecipe, ()))
    yield from problems
    if not problems:
        try:
            LMRecipe(**params)
        except (MiauditError, TypeError, ValueError) as exc:
            yield ("target", "params"), str(exc)
