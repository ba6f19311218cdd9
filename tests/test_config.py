"""AuditConfig: the one place where an audit's settings, defaults, choices and checks live."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import miaudit
from miaudit.config import (
    SECTIONS,
    SETTINGS,
    AuditConfig,
    ReferencesConfig,
    SettingError,
    online_models,
)
from miaudit.defaults import DEFAULT_FPRS, DEFAULT_MODELS_PER_BATCH, POPULATION_FRACTION
from miaudit.errors import ConfigError


def test_every_setting_maps_to_one_declared_field():
    places = list(SETTINGS.values())
    assert len(places) == len(set(places))
    declared = {(s, f) for s, model in SECTIONS.items() for f in model.model_fields}
    declared |= {("", "seed")}
    assert set(places) == declared


def test_defaults():
    cfg = AuditConfig()
    assert cfg.metrics.fprs == list(DEFAULT_FPRS)
    assert cfg.compute.models_per_batch == DEFAULT_MODELS_PER_BATCH
    assert cfg.references.population_fraction == POPULATION_FRACTION
    assert (cfg.references.count, cfg.references.mode, cfg.target.recipe) == (0, "online", "mlp")


def test_sections_and_flat_settings_build_the_same_config():
    a = AuditConfig(seed=3, references=ReferencesConfig(count=4, mode="offline", targets=2))
    b = AuditConfig.from_settings(seed=3, references=4, reference_mode="offline", targets=2)
    assert a == b
    assert AuditConfig.from_settings(**b.settings()) == b


def test_settings_on_top_of_a_base_keep_the_base():
    base = AuditConfig.from_settings(references=4, alpha=0.1)
    cfg = AuditConfig.from_settings(base, seed=7)
    assert (cfg.references.count, cfg.metrics.alpha, cfg.seed) == (4, 0.1, 7)
    assert base.seed == 0  # frozen, untouched


@pytest.mark.parametrize(("settings", "message"), [
    ({"seed": -1}, "seed must be >= 0, got -1."),
    ({"alpha": 2.0}, "alpha must lie in (0, 1), got 2.0."),
    ({"fprs": [0.01, 1.5]}, "fprs[1] must lie in (0, 1), got 1.5."),
    ({"population_fraction": 0.9}, "population_fraction must lie in [0, 0.5], got 0.9."),
    ({"reference_mode": "both"}, "reference_mode must be one of online or offline"),
    ({"references": "16"}, "references must be a whole number, got '16'."),
    ({"references": 2, "targets": 9}, "targets must lie between 1 and 4"),
    ({"targets": 2}, "targets must lie between 1 and 1 without references"),
    ({"device": "gpu"}, "Unknown device 'gpu'"),
    ({"exposure": "top-k:0"}, "k must be >= 1"),
    ({"exposure": "logits,logits"}, "listed twice"),
    ({"alpha": float("nan")}, "alpha must be a finite number"),
])
def test_a_bad_setting_is_named_in_one_line(settings, message):
    with pytest.raises(SettingError) as info:
        AuditConfig.from_settings(**settings)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.setting.split("[")[0] in settings or info.value.setting == "targets"


def test_an_unknown_setting_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'references'"):
        AuditConfig.from_settings(refrences=4)


def test_numpy_scalars_tuples_and_paths_are_plain_values(tmp_path):
    cfg = AuditConfig.from_settings(references=np.int64(4), alpha=np.float32(0.25),
                                    fprs=(0.1, 0.01), cache_dir=tmp_path)
    assert cfg.references.count == 4 and isinstance(cfg.references.count, int)
    assert cfg.metrics.fprs == [0.1, 0.01]
    assert cfg.compute.cache_dir == str(tmp_path)


@given(st.integers(min_value=1, max_value=200))
def test_online_targets_bound_is_the_number_of_models(k):
    most = online_models(k)
    assert most == k + k % 2 + 2 and most % 2 == 0
    AuditConfig.from_settings(references=k, targets=most)
    with pytest.raises(SettingError):
        AuditConfig.from_settings(references=k, targets=most + 1)


def test_audit_takes_a_config_and_at_most_twelve_parameters():
    assert len(inspect.signature(miaudit.audit).parameters) <= 12
    cfg = AuditConfig.from_settings(data="wine", model_params={"epochs": 3}, attacks=["loss"])
    by_config = miaudit.audit(cfg).summary()
    by_keywords = miaudit.audit(data="wine", model_params={"epochs": 3},
                                attacks=["loss"]).summary()
    assert by_config["attacks"]["loss"]["auc"] == by_keywords["attacks"]["loss"]["auc"]


def test_audit_refuses_a_setting_given_twice():
    cfg = AuditConfig.from_settings(data="wine")
    with pytest.raises(ConfigError, match="given twice"):
        miaudit.audit(cfg, data=miaudit.data.load_dataset("wine"))


def test_a_bad_setting_fails_before_anything_is_loaded(monkeypatch):
    import miaudit.audits.classification as core

    monkeypatch.setattr(core, "load_dataset", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(SettingError, match="alpha"):
        miaudit.audit(data="wine", alpha=0)
