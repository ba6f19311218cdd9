"""The settings of one audit, declared, defaulted and validated in one place.

:class:`AuditConfig` is made of sections (data, target, references, attacks, metrics,
compute) plus the seed. :func:`miaudit.audit`, ``miaudit run`` and spec files all build
one, so a setting has one name, one default, one set of choices and one check everywhere.
The command line and the spec files speak the flat names of :data:`SETTINGS`
(``references``, ``reference_mode``, ...); :meth:`AuditConfig.from_settings` and
:meth:`AuditConfig.settings` translate.

Settings are checked strictly (``references="16"`` is an error, not 16); numpy scalars,
tuples and paths are taken as the plain values they stand for. Every error is a
:class:`~miaudit.errors.ConfigError` that names the setting.

Examples
--------
>>> cfg = AuditConfig.from_settings(data="digits", references=8, targets=2)
>>> cfg.references.count, cfg.references.mode, cfg.metrics.fprs
(8, 'online', [0.01, 0.001, 0.0001])
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, get_args

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from miaudit.defaults import (
    CHECKPOINT_SECONDS,
    DEFAULT_ALPHA,
    DEFAULT_CALIBRATION_FOLDS,
    DEFAULT_DELTA,
    DEFAULT_EXPOSURE,
    DEFAULT_FPRS,
    DEFAULT_MODELS_PER_BATCH,
    DEFAULT_PRIOR,
    DEFAULT_RECIPE,
    MAX_OFFLINE_TARGETS,
    MAX_POPULATION_FRACTION,
    POPULATION_FRACTION,
    Executor,
    LiraVariance,
    QuantileMethod,
    ReferenceMode,
    default_cache_dir,
)
from miaudit.errors import ConfigError, MiauditError
from miaudit.signals.exposure import Exposure, parse_exposure
from miaudit.training.recipes import Recipe

__all__ = ["SECTIONS", "SETTINGS", "AttacksConfig", "AuditConfig", "ComputeConfig", "DataConfig",
           "MetricsConfig", "ReferencesConfig", "SettingError", "TargetConfig",
           "online_models", "parse_exposures"]

_Prob = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
_Scalar = str | int | float | bool


def _plain(value: Any) -> Any:
    """A numpy scalar, a tuple or a path as the plain value strict validation takes."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Exposure):
        return str(value)
    return value


class _Section(BaseModel):
    """A section of the configuration: unknown keys refused, values taken strictly."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, values: Any) -> Any:
        return _plain(values) if isinstance(values, dict) else values


class DataConfig(_Section):
    """What to audit on (when the data is named rather than given as a Dataset)."""

    source: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="A built-in data set name (digits) or a file path.")
    label_column: str | None = Field(None, description="Label column of a CSV / Parquet file.")
    id_column: str | None = Field(
        None, description="Record-ID column of a CSV / Parquet file (kept out of the features).")
    n_records: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Audit a seeded, class-stratified subset of this many records.")


class TargetConfig(_Section):
    """The model audited, when it is trained from a recipe (or read from an outputs file)."""

    recipe: str | InstanceOf[Recipe] = Field(
        DEFAULT_RECIPE, description="The recipe trained as the target: mlp, logistic, cnn.")
    params: dict[str, _Scalar | list[_Scalar]] | list[str] | None = Field(
        None, description="Recipe overrides ({'epochs': 20} or ['epochs=20']).")
    outputs: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="Precomputed outputs (.npz) instead of a model.")


def online_models(references: int) -> int:
    """Models trained for an online game with ``references`` references per target:
    the references rounded up to an even number, plus the target and its complement."""
    return references + references % 2 + 2


class ReferencesConfig(_Section):
    """The attacker's reference models and the game they are trained in."""

    count: Annotated[int, Field(ge=0)] = Field(
        0, description="Reference models per target (enables LiRA, RMIA, Attack-R, Shokri).")
    mode: ReferenceMode = Field(
        "online", description="online: references train on halves of the audited records; "
        "offline: on population records only.")
    targets: Annotated[int, Field(ge=1)] = Field(
        1, description="Models that take the target's role in turn (pooled).")
    recipe: str | InstanceOf[Recipe] = Field(
        DEFAULT_RECIPE, description="Recipe of the offline references trained against an "
        "existing model.")
    population_fraction: Annotated[float, Field(ge=0, le=MAX_POPULATION_FRACTION,
                                                allow_inf_nan=False)] = Field(
        POPULATION_FRACTION, description="Share of the pool set aside as population data.")
    augment: bool | None = Field(
        None, description="Query augmented copies too (default: on for cnn with references).")

    @field_validator("targets")
    @classmethod
    def _targets_fit(cls, targets: int, info: ValidationInfo) -> int:
        count, mode = info.data.get("count"), info.data.get("mode")
        if count is None or mode is None:
            return targets  # reported on their own
        if not count:
            most, why = 1, " without references"
        elif mode == "online":
            most, why = online_models(count), " (the models of the online game)"
        else:
            most, why = MAX_OFFLINE_TARGETS, ""
        if not 1 <= targets <= most:
            raise ValueError(f"targets must lie between 1 and {most}{why}, got {targets}")
        return targets


def parse_exposures(exposure: str | Exposure | list) -> list[Exposure]:
    """One exposure, a list, or a comma-separated string; duplicates refused."""
    if isinstance(exposure, Exposure):
        items: list = [exposure]
    elif isinstance(exposure, str):
        if not exposure.strip():
            raise ConfigError("No exposure given: name at least one (for example logits).")
        items = [part for part in exposure.split(",") if part.strip()] or [exposure]
    else:
        items = list(exposure)
        if not items:
            raise ConfigError("No exposure given: name at least one (for example logits).")
    parsed = [parse_exposure(e) for e in items]
    seen = set()
    for e in parsed:
        if e in seen:
            raise ConfigError(f"The exposure '{e}' is listed twice.")
        seen.add(e)
    return parsed


class AttacksConfig(_Section):
    """What the attacker sees and which attacks run, with their hyper-parameters."""

    exposure: str | list[str] = Field(
        DEFAULT_EXPOSURE, description="What the attacker sees (logits, probabilities, top-k:K, "
        "rounded:D, label, loss, temperature:T, noise:SIGMA, memguard:EPS); several compare.")
    names: list[str] | None = Field(
        None, description="Attacks to run; default: every one the threat model allows.")
    lira_variance: LiraVariance = Field(
        "auto", description="LiRA's variance: global below 64 references when auto.")
    rmia_temperature: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="RMIA's softmax temperature; default: tuned on the references.")
    quantile_method: QuantileMethod = Field(
        "gaussian", description="The quantile attack's regression: gaussian (a mean and a "
        "spread per record) or pinball (the 99% quantile itself).")
    calibration_folds: Annotated[int, Field(ge=2)] = Field(
        DEFAULT_CALIBRATION_FOLDS,
        description="Cross-fitting folds of the oracle attacks (*-known).")
    query_budget: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Most queries each label-only attack sends to each target.")

    @field_validator("names", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):  # "loss,entropy"
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("exposure")
    @classmethod
    def _known(cls, value: str | list[str]) -> str | list[str]:
        try:  # exactly as the audit will read it
            parse_exposures(value)
        except MiauditError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def exposures(self) -> list[Exposure]:
        """The exposure settings, parsed."""
        return parse_exposures(self.exposure)


class MetricsConfig(_Section):
    """What is measured of each attack."""

    fprs: Annotated[list[_Prob], Field(min_length=1)] = Field(
        default_factory=lambda: list(DEFAULT_FPRS),
        description="FPR levels at which the TPR is reported.")
    alpha: _Prob = Field(DEFAULT_ALPHA, description="1 - confidence level of every interval.")
    prior: _Prob = Field(DEFAULT_PRIOR,
                         description="Prior probability of membership (for the PPV).")
    delta: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = Field(
        DEFAULT_DELTA, description="The delta of the epsilon lower bound.")


class ComputeConfig(_Section):
    """Where and how models train and are queried (no effect on the figures on CPU)."""

    device: str = Field("cpu", description="Torch device: cpu, cuda, cuda:N or mps.")
    executor: Executor = Field(
        "inprocess", description="Where chunks of models train: here, a process pool, Ray.")
    workers: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Workers of the process executor; chunks for Ray.")
    ray_address: str | None = Field(None, description="A running Ray cluster (ray://HOST:PORT).")
    models_per_batch: Annotated[int, Field(ge=1)] = Field(
        DEFAULT_MODELS_PER_BATCH, description="Models trained together in one computation.")
    cache: bool = Field(
        True, description="Store every trained model by content hash and reuse it on a "
        "re-run or a resumed run; False: train every model, store nothing.")
    cache_dir: str | None = Field(
        None, description="Model cache folder; default $MIAUDIT_CACHE or ~/.cache/miaudit "
        "(the command line's too).")
    checkpoint_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        CHECKPOINT_SECONDS, description="With the cache: seconds between two checkpoints "
        "of a batched training run, the most a killed run loses.")
    progress: bool = Field(False, description="Rich progress bars on stderr.")

    def model_cache_dir(self) -> Path | None:
        """The model cache folder this audit uses, or None with ``cache=False``."""
        if not self.cache:
            return None
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()

    @field_validator("device")
    @classmethod
    def _device_name(cls, device: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
            raise ValueError(f"Unknown device {device!r}: use cpu, cuda, cuda:N or mps")
        return device


#: The sections of :class:`AuditConfig` by name.
SECTIONS: dict[str, type[_Section]] = {
    "data": DataConfig, "target": TargetConfig, "references": ReferencesConfig,
    "attacks": AttacksConfig, "metrics": MetricsConfig, "compute": ComputeConfig}

#: The flat name of every setting (the keyword of :func:`miaudit.audit`, the option of
#: ``miaudit run``, the key of a spec file) -> ``(section, field)`` of :class:`AuditConfig`.
SETTINGS: dict[str, tuple[str, str]] = {
    "data": ("data", "source"), "label_column": ("data", "label_column"),
    "id_column": ("data", "id_column"), "n_records": ("data", "n_records"),
    "model": ("target", "recipe"), "model_params": ("target", "params"),
    "outputs": ("target", "outputs"),
    "references": ("references", "count"), "reference_mode": ("references", "mode"),
    "targets": ("references", "targets"), "reference_recipe": ("references", "recipe"),
    "population_fraction": ("references", "population_fraction"),
    "augment": ("references", "augment"),
    "exposure": ("attacks", "exposure"), "attacks": ("attacks", "names"),
    "lira_variance": ("attacks", "lira_variance"),
    "rmia_temperature": ("attacks", "rmia_temperature"),
    "quantile_method": ("attacks", "quantile_method"),
    "calibration_folds": ("attacks", "calibration_folds"),
    "query_budget": ("attacks", "query_budget"),
    "fprs": ("metrics", "fprs"), "alpha": ("metrics", "alpha"),
    "prior": ("metrics", "prior"), "delta": ("metrics", "delta"),
    **{name: ("compute", name) for name in ("device", "executor", "workers", "ray_address",
                                            "models_per_batch", "cache", "cache_dir",
                                            "checkpoint_seconds", "progress")},
    "seed": ("", "seed"),
}


class AuditConfig(_Section):
    """Every setting of one classification audit; see :func:`miaudit.audit`.

    Build it from sections (``AuditConfig(references=ReferencesConfig(count=8))``) or from
    the flat names (:meth:`from_settings`); both are validated the same way.
    """

    seed: Annotated[int, Field(ge=0)] = Field(
        0, description="Seeds the split, the training and the cross-fitting folds.")
    data: DataConfig = Field(default_factory=DataConfig)
    target: TargetConfig = Field(default_factory=TargetConfig)
    references: ReferencesConfig = Field(default_factory=ReferencesConfig)
    attacks: AttacksConfig = Field(default_factory=AttacksConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)

    @classmethod
    def from_settings(cls, base: AuditConfig | None = None, /, **settings: Any
                      ) -> AuditConfig:
        """A configuration from flat settings (:data:`SETTINGS`), on top of ``base``.

        Raises :class:`~miaudit.errors.ConfigError` for an unknown name (with the closest
        known one) or a value out of range, naming the setting.
        """
        nested: dict[str, Any] = {} if base is None else base._given()
        for name, value in settings.items():
            if name not in SETTINGS:
                raise ConfigError(f"Unknown setting {name!r}{_closest(name)}")
            section, field = SETTINGS[name]
            if section:
                nested.setdefault(section, {})[field] = value
            else:
                nested[field] = value
        return cls.validated(nested)

    @classmethod
    def validated(cls, values: dict[str, Any]) -> AuditConfig:
        """``model_validate`` with every problem as one :class:`ConfigError` naming the
        setting (by its flat name) and the value."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _explain(exc) from None

    def _given(self) -> dict[str, Any]:
        """The values set explicitly, as nested dicts of the values themselves."""
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            out[name] = ({f: getattr(value, f) for f in value.model_fields_set}
                         if isinstance(value, _Section) else value)
        return out

    def settings(self) -> dict[str, Any]:
        """Every setting by its flat name (the inverse of :meth:`from_settings`)."""
        return {name: getattr(getattr(self, s), f) if s else getattr(self, f)
                for name, (s, f) in SETTINGS.items()}


def setting_name(loc: tuple) -> str:
    """The flat name of a validation error's location (``("references", "count")`` ->
    ``references``); a location inside a value keeps its tail (``fprs[1]``)."""
    for name, (section, field) in SETTINGS.items():
        head = (section, field) if section else (field,)
        if tuple(loc[:len(head)]) == head:
            tail = "".join(f"[{p}]" for p in loc[len(head):] if isinstance(p, int))
            return name + tail
    return ".".join(str(p) for p in loc) or "the settings"


class SettingError(ConfigError):
    """A setting is out of range or of the wrong type: ``setting`` names it (its flat
    name, with an index into a list: ``fprs[1]``) and ``detail`` says what is wrong."""

    def __init__(self, setting: str, detail: str, text: str) -> None:
        super().__init__(text)
        self.setting, self.detail = setting, detail


def _explain(exc: ValidationError) -> SettingError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    name = setting_name(first["loc"])
    if first["type"] == "value_error":  # a check of ours: its message names the setting
        detail = text = first["msg"].removeprefix("Value error, ")
    else:
        detail = f"{_wording(first)}, got {first.get('input')!r}"
        text = f"{name} {detail}"
    others = {setting_name(e["loc"]) for e in errors[1:]} - {name}
    if others:
        text += f" (and a problem with {', '.join(sorted(others))})"
    return SettingError(name, detail, text + ("" if text.endswith(".") else "."))


_TYPES = {"int_type": "must be a whole number", "float_type": "must be a number",
          "string_type": "must be text", "bool_type": "must be true or false",
          "list_type": "must be a list", "dict_type": "must be a table of key = value",
          "finite_number": "must be a finite number", "extra_forbidden": "is not a setting",
          "missing": "is required"}


def _wording(error: dict) -> str:
    """A pydantic error in the words of miaudit's own checks (``must lie in (0, 1)``)."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bounds = _bounds(error["loc"])
        low = ("(", bounds["gt"]) if "gt" in bounds else ("[", bounds.get("ge"))
        high = (")", bounds["lt"]) if "lt" in bounds else ("]", bounds.get("le"))
        if low[1] is not None and high[1] is not None:
            return f"must lie in {low[0]}{low[1]}, {high[1]}{high[0]}"
        sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
                "less_than_equal": "<="}[kind]
        return f"must be {sign} {next(iter(ctx.values()))}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}".replace("'", "")
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} value(s)"
    return _TYPES.get(kind, error["msg"][:1].lower() + error["msg"][1:])


def _bounds(loc: tuple) -> dict[str, float]:
    """The numeric bounds (gt, ge, lt, le) declared for the setting at ``loc``."""
    section = SECTIONS.get(str(loc[0])) if loc else None
    model = section if section is not None and len(loc) > 1 else AuditConfig
    info = model.model_fields.get(str(loc[1] if model is section else loc[0]))
    found: dict[str, float] = {}

    def walk(item: Any) -> None:
        for key in ("gt", "ge", "lt", "le"):
            if getattr(item, key, None) is not None:
                found[key] = getattr(item, key)
        for meta in getattr(item, "metadata", ()) or ():
            walk(meta)
        for arg in get_args(item):
            walk(arg)

    if info is not None:
        walk(info.annotation)
        for meta in info.metadata:
            walk(meta)
    return found


def _closest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(SETTINGS), n=1)
    return f"; did you mean {close[0]!r}?" if close else f". Known: {', '.join(SETTINGS)}."
