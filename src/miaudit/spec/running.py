"""Running a spec, storing it with the run, and re-running a run folder.

What a re-run can rebuild
-------------------------
A run made from a spec (:func:`run_spec`) stores the whole spec in ``summary.json``
(``spec``, every setting written out, paths absolute) and the spec file's path, SHA-256
and text (``spec_source``); :func:`rerun` validates that spec again and runs it.

A run made otherwise (``miaudit run``, :func:`miaudit.audit` + ``save``) is rebuilt from
``summary.json``: the data (a built-in name, or the file path in ``data.source``, with
``label_column``, ``id_column`` and the ``n_records`` subset), the recipe (``target.recipe``:
name and every parameter), the exposure(s), the attacks run (left to the default when they
are the default), every entry of ``settings`` (seed, alpha, prior, delta, fprs,
calibration folds, references, reference mode, targets, LiRA variance, RMIA
temperature, device, query budget) and augmented queries (``target.training``).

It cannot rebuild, and refuses clearly:

* an existing model audited with ``members`` (a model object is not stored);
* a ``Dataset`` or ``PrecomputedOutputs`` passed in memory (no file to read again);
* a data or outputs file that was moved or deleted since;
* language-model runs with the ``reference`` attack (the reference model's folder is not
  recorded), or with an existing model and reference LMs (the recipe of the reference LMs
  is not recorded).

Not recorded, and not needed for the same figures: the executor, workers, Ray address,
models per batch and model cache (training chunks give identical models). After the run,
the data set's fingerprint is compared with the original's and a re-run on changed data
is refused; precomputed-output files carry no fingerprint and are trusted. The new
summary gains ``rerun_of``: the original folder, its summary's SHA-256 and whether every
attack's AUC and TPRs came out the same.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from miaudit.errors import ConfigError, DataError
from miaudit.results.folder import SUMMARY_FILE
from miaudit.results.result import AuditResult, check_out_dir
from miaudit.spec.loading import _validation_problems, missing_files
from miaudit.spec.locate import Located
from miaudit.spec.schema import AuditSpec, SpecError, SpecProblem, format_path

__all__ = ["rerun", "run_spec", "spec_from_run", "spec_from_summary"]

#: Two runs reproduce each other when every AUC and TPR differs by at most this.
REPRODUCED_TOLERANCE = 1e-12


def run_spec(spec: AuditSpec, out_dir: str | os.PathLike | None = None,
             overwrite: bool = False, *, cache: bool = True,
             cache_dir: str | os.PathLike | None = None,
             checkpoint_seconds: float | None = None,
             progress: bool = False) -> tuple[AuditResult, Path]:
    """Run the audit a spec describes and save it with the spec.

    Parameters
    ----------
    spec : AuditSpec
    out_dir : path-like, optional
        The run folder; default ``runs/<time>-<spec name or file stem>``.
    overwrite : bool, default False
        Replace a previous run's folder.
    cache : bool, default True
        Store and reuse the trained models of a classification audit (no effect on the
        figures).
    cache_dir : path-like, optional
        The model cache folder; default ``$MIAUDIT_CACHE`` or ``~/.cache/miaudit``.
    checkpoint_seconds : float, optional
        Seconds between two training checkpoints (default: the audit's default).
    progress : bool, default False
        Progress bars on stderr.

    Returns
    -------
    result : AuditResult
        Its summary holds ``spec`` (:meth:`AuditSpec.to_dict`) and ``spec_source`` (the
        file's path, SHA-256, format and text; ``None`` for a spec built in Python).
    run_dir : Path
        The folder written.
    """
    out = Path(out_dir) if out_dir is not None else default_out_dir(spec)
    check_out_dir(out, overwrite=overwrite)
    result = _audit(spec, cache, cache_dir, progress, checkpoint_seconds)
    _attach(result.summary(), spec)
    return result, result.save(out, overwrite=overwrite)


def rerun(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
          overwrite: bool = False, cache: bool = True,
          cache_dir: str | os.PathLike | None = None,
          checkpoint_seconds: float | None = None,
          progress: bool = False) -> tuple[AuditResult, Path]:
    """Run a previous audit again from its run folder (see the module notes for what is
    rebuilt and what is refused).

    Parameters
    ----------
    run_dir : path-like
        A run folder holding ``summary.json``.
    out_dir : path-like, optional
        The new run folder; default ``runs/<time>-rerun-<run folder name>``.
    overwrite, cache, cache_dir, checkpoint_seconds, progress
        As for :func:`run_spec`.

    Returns
    -------
    result : AuditResult
        Its summary holds the spec (rebuilt when the run had none) and ``rerun_of``:
        ``run``, ``summary_sha256``, ``rebuilt_from`` (``spec`` or ``settings``),
        ``reproduced`` and ``max_abs_difference`` (over every attack's AUC and TPRs).
    run_dir : Path
        The folder written.

    Raises
    ------
    ConfigError
        Nothing to rebuild the audit from, a file that is gone, or data that changed.
    """
    run = Path(run_dir)
    summary, digest = _read_summary(run)
    spec = spec_from_summary(summary, where=str(run / SUMMARY_FILE))
    out = Path(out_dir) if out_dir is not None else (
        Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-rerun-{run.resolve().name}")
    check_out_dir(out, overwrite=overwrite)
    result = _audit(spec, cache, cache_dir, progress, checkpoint_seconds)
    new = result.summary()
    old_fp = (summary.get("data") or {}).get("fingerprint")
    new_fp = (new.get("data") or {}).get("fingerprint")
    if old_fp and new_fp and old_fp != new_fp:
        raise DataError(f"The data of {run} changed since it ran (fingerprint {old_fp[:12]} "
                        f"then, {new_fp[:12]} now): a re-run would measure other records. "
                        "Nothing was written.")
    _attach(new, spec)
    diff = _max_difference(summary.get("attacks") or {}, new.get("attacks") or {})
    new["rerun_of"] = {
        "run": str(run.resolve()), "summary_sha256": digest,
        "rebuilt_from": "spec" if "spec" in summary else "settings",
        "reproduced": diff <= REPRODUCED_TOLERANCE, "max_abs_difference": diff
        if math.isfinite(diff) else None,
    }
    return result, result.save(out, overwrite=overwrite)


def spec_from_run(run_dir: str | os.PathLike) -> AuditSpec:
    """The spec of a run folder: the stored one, or one rebuilt from ``summary.json``."""
    run = Path(run_dir)
    summary, _ = _read_summary(run)
    return spec_from_summary(summary, where=str(run / SUMMARY_FILE))


def spec_from_summary(summary: dict, *, where: str = SUMMARY_FILE) -> AuditSpec:
    """The spec of a run from its ``summary.json`` content (see the module notes).

    Raises
    ------
    ConfigError
        When something needed is not recorded, or a file it names no longer exists.
    """
    if "spec" in summary:
        data, prefix = summary["spec"], ("spec",)
    else:
        data, prefix = _spec_data(summary, where), ()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: 'spec' is not a mapping; it was not written by miaudit.")
    try:
        spec = AuditSpec.model_validate(data)
    except ValidationError as exc:
        problems = _validation_problems(exc, Located(data), where)
        first = problems[0]
        raise SpecError(first.message, problems=[
            SpecProblem(where, None, format_path(prefix) + "." + p.path if prefix else p.path,
                        p.message) for p in problems]) from None
    except SpecError as exc:
        raise SpecError(exc.detail, problems=[SpecProblem(
            where, None, format_path((*prefix, *exc.loc)), exc.detail)]) from None
    spec.with_source(None, summary.get("spec_source"))
    gone = missing_files(spec)
    if gone:
        loc, message = gone[0]
        raise ConfigError(f"Cannot re-run {where}: {message} ({format_path(loc)}); restore "
                          "the file, or write a spec with its new location and run that.")
    return spec


def default_out_dir(spec: AuditSpec) -> Path:
    """``runs/<time>-<name>``: the spec's name, else its file's stem, else ``spec``."""
    stem = spec.name or (Path(spec.source["path"]).stem if spec.source else "spec")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip("-.") or "spec"
    return Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{safe}"


# ---------------------------------------------------------------------- helpers


def _audit(spec: AuditSpec, cache: bool, cache_dir: str | os.PathLike | None,
           progress: bool, checkpoint_seconds: float | None = None) -> AuditResult:
    if spec.task == "lm":
        from miaudit.audits.lm import audit_lm

        return audit_lm(**spec.to_audit_kwargs(), cache=cache, cache_dir=cache_dir,
                        progress=progress)
    from miaudit.audits import audit

    compute = {} if checkpoint_seconds is None else {"checkpoint_seconds": checkpoint_seconds}
    return audit(spec.to_config(), cache=cache, cache_dir=cache_dir, progress=progress,
                 **compute)


def _attach(summary: dict, spec: AuditSpec) -> None:
    summary["spec"] = spec.to_dict()
    summary["spec_source"] = spec.source


def _read_summary(run: Path) -> tuple[dict, str]:
    path = run / SUMMARY_FILE
    if not run.is_dir():
        raise ConfigError(f"No run folder {run}: give the folder of a previous run.")
    if not path.is_file():
        raise ConfigError(f"{run} is not a run folder: it has no {SUMMARY_FILE}.")
    raw = path.read_bytes()
    try:
        summary = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}.") from None
    if not isinstance(summary, dict):
        raise ConfigError(f"{path} is not a miaudit summary (not a JSON object).")
    return summary, hashlib.sha256(raw).hexdigest()


def _max_difference(old: dict, new: dict) -> float:
    """Largest absolute difference of AUC and TPR over the attacks (inf on a mismatch)."""
    if set(old) != set(new):
        return math.inf
    worst = 0.0
    for name, entry in old.items():
        pairs = [(entry.get("auc"), new[name].get("auc"))]
        old_tpr, new_tpr = entry.get("tpr_at_fpr") or {}, new[name].get("tpr_at_fpr") or {}
        if set(old_tpr) != set(new_tpr):
            return math.inf
        pairs += [(old_tpr[k], new_tpr[k]) for k in old_tpr]
        for a, b in pairs:
            if (a is None) != (b is None):
                return math.inf
            if a is not None:
                worst = max(worst, abs(float(a) - float(b)))
    return worst


def _need(mapping: dict, key: str, where: str, what: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ConfigError(f"Cannot re-run {where}: it records no {what} ('{key}').")
    return mapping[key]


def _file_source(source: Any, where: str, what: str) -> str:
    if not isinstance(source, str) or not Path(source).is_absolute():
        raise ConfigError(f"Cannot re-run {where}: its {what} was passed in memory "
                          f"({source!r}), not read from a file; re-run it from Python.")
    return source


def _spec_data(summary: dict, where: str) -> dict:
    """Spec data rebuilt from a summary written without a spec."""
    if summary.get("task") == "language model":
        return _lm_spec_data(summary, where)
    from miaudit.data import BUILTIN_DATASETS

    data = _need(summary, "data", where, "data section")
    target = _need(summary, "target", where, "target section")
    settings = _need(summary, "settings", where, "settings")
    spec: dict[str, Any] = {"description": f"rebuilt from the settings of {where}"}
    if target.get("model") == "precomputed outputs":
        spec["target"] = {"outputs": _file_source(data.get("source"), where, "outputs")}
        can_query = False
    elif isinstance(target.get("recipe"), dict):
        recipe = dict(target["recipe"])
        name = recipe.pop("name", None) or target.get("model")
        spec["target"] = {"recipe": name, "params": recipe}
        source = data.get("source")
        builtin = data.get("name")
        if builtin in BUILTIN_DATASETS and source == f"sklearn.datasets.load_{builtin}":
            source = builtin
        else:
            source = _file_source(source, where, "data set")
        section = {"source": source}
        for key in ("label_column", "id_column"):
            if data.get(key) is not None:
                section[key] = data[key]
        subset = (data.get("subset") or {}).get("n_records") if isinstance(
            data.get("subset"), dict) else None
        if subset is None and data.get("subset_of"):
            subset = data.get("n_records")
        if subset is not None:
            section["n_records"] = subset
        spec["data"] = section
        can_query = True
    else:
        raise ConfigError(f"Cannot re-run {where}: it audited an existing model "
                          f"({target.get('model')!r}) with given members; a run folder "
                          "does not hold the model. Re-run it from Python with "
                          "miaudit.audit(model=..., members=...).")
    audit: dict[str, Any] = {}
    for key in ("seed", "alpha", "prior", "delta", "fprs", "calibration_folds",
                "references", "reference_mode", "targets", "lira_variance"):
        audit[key] = _need(settings, key, where, f"setting {key!r}")
    # runs before RMIA's temperature was tuned on references recorded a fixed one
    if settings.get("rmia_temperature") is not None:
        audit["rmia_temperature"] = settings["rmia_temperature"]
    # runs before the quantile attack used its default
    audit["quantile_method"] = settings.get("quantile_method", "gaussian")
    # runs before population data was set aside audited the whole pool
    audit["population_fraction"] = settings.get("population_fraction", 0.0)
    if settings.get("query_budget") is not None:
        audit["query_budget"] = settings["query_budget"]
    exposures = _exposures(summary, where)
    audit["exposure"] = exposures[0] if len(exposures) == 1 else exposures
    attacks = _attacks_run(summary, exposures, audit["references"], can_query)
    if attacks is not None:
        audit["attacks"] = attacks
    spec["audit"] = audit
    training: dict[str, Any] = {"device": settings.get("device", "cpu")}
    stats = target.get("training")
    if isinstance(stats, dict) and "augmented_queries" in stats:
        training["augment"] = stats["augmented_queries"] is not None
    spec["training"] = training
    return spec


def _exposures(summary: dict, where: str) -> list[str]:
    section = summary.get("exposures")
    if isinstance(section, dict) and section.get("table"):
        return [row["exposure"] for row in section["table"]]
    return [_need(summary, "exposure", where, "exposure")]


def _attacks_run(summary: dict, exposures: list[str], references: int, can_query: bool
                 ) -> list[str] | None:
    """The attacks to name, or None when the run used the default set."""
    from miaudit.attacks import attacks_allowed, default_attacks
    from miaudit.signals import parse_exposure

    if len(exposures) == 1:
        ran = list(summary.get("attacks") or {})
        default = [a.name for a in default_attacks(parse_exposure(exposures[0]), references,
                                                   can_query=can_query)]
        return None if ran == default else ran
    per_exposure = {row["exposure"]: list(row.get("attacks") or {})
                    for row in summary["exposures"]["table"]}
    if all(per_exposure[e] == attacks_allowed(parse_exposure(e), references,
                                              queries=can_query) for e in exposures):
        return None
    names: list[str] = []
    for e in exposures:
        names += [a for a in per_exposure[e] if a not in names]
    return names


def _lm_spec_data(summary: dict, where: str) -> dict:
    """Spec data of a language-model run written without a spec."""
    from miaudit.attacks.lm import resolve_lm_attacks
    from miaudit.audits.lm import LIRA_ATTACKS

    data = _need(summary, "data", where, "data section")
    target = _need(summary, "target", where, "target section")
    settings = _need(summary, "settings", where, "settings")
    attacks = list(summary.get("attacks") or {})
    if "reference" in attacks and target.get("reference_model") != "the base model":
        raise ConfigError(f"Cannot re-run {where}: its 'reference' attack used a reference "
                          "model whose folder is not recorded; write a spec with "
                          "lm.reference_model and run that.")
    section: dict[str, Any] = {"source": _file_source(data.get("source"), where, "texts")}
    columns = data.get("text_columns")
    if isinstance(columns, list) and columns:
        section["text_column"] = columns[0] if len(columns) == 1 else columns
    for key in ("id_column", "member_column"):
        if data.get(key) is not None:
            section[key] = data[key]
    if data.get("n_records_requested") is not None:
        section["n_records"] = data["n_records_requested"]
    references = _need(settings, "references", where, "setting 'references'")
    tgt: dict[str, Any] = {"task": "lm"}
    base_model = None
    if target.get("model") == "gpt2 recipe":
        tgt["params"] = dict(_need(target, "recipe", where, "recipe"))
    else:
        model = target.get("model")
        if not isinstance(model, str) or not Path(model).exists():
            raise ConfigError(f"Cannot re-run {where}: its model {model!r} is not a folder "
                              "that exists here (a model object, or a folder that moved).")
        if references:
            raise ConfigError(f"Cannot re-run {where}: the recipe of its reference LMs is "
                              "not recorded; write a spec with target.params and run that.")
        tgt["model"] = str(Path(model).resolve())
        base = target.get("base_model")
        if base is not None:
            if not Path(base).exists():
                raise ConfigError(f"Cannot re-run {where}: its base model {base!r} is not a "
                                  "folder that exists here.")
            base_model = str(Path(base).resolve())
    # a target trained here has texts set aside for its tokenizer (DC-PDD, ReCaLL)
    trained_here = target.get("model") == "gpt2 recipe"
    have = ({"lowercase", "distribution", "neighbours"}
            | ({"frequency", "prefix"} if trained_here else set()))
    default = [a.name for a in resolve_lm_attacks(None, have=have)]
    default += list(LIRA_ATTACKS) if references else []
    audit = {key: _need(settings, key, where, f"setting {key!r}")
             for key in ("seed", "alpha", "prior", "delta", "fprs")}
    audit["references"] = references
    if attacks != default:
        audit["attacks"] = attacks
    lm = {key: _need(settings, key, where, f"setting {key!r}")
          for key in ("k", "canaries", "batch_size", "max_length", "stride")}
    lm["dc_pdd_cap"] = settings.get("dc_pdd_cap", 0.01)  # runs before dc-pdd lack it
    for key, default in (("extraction", False), ("extraction_prefix", 32),
                         ("extraction_suffix", 32), ("neighbours", 10)):
        lm[key] = settings.get(key, default)  # older runs lack them
    lm["blind"] = summary.get("blind_baseline") is not None
    if base_model is not None:
        lm["base_model"] = base_model
    return {"description": f"rebuilt from the settings of {where}", "data": section,
            "target": tgt, "audit": audit, "lm": lm,
            "training": {"device": settings.get("device", "cpu")}}
