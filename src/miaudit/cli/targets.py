"""Where ``miaudit run`` and ``miaudit lm run`` find the audited model when it is not a recipe
trained here: an HTTP endpoint (``--target URL``), a model file (``.onnx``, ``.skops``), an
MLflow model (``models:/...``, ``runs:/...``, a folder with ``MLmodel``) or an
OpenAI-compatible LM endpoint; and ``run --mlflow``'s record of the audit."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rich.markup import escape

from miaudit.cli.common import err_console
from miaudit.defaults import DEFAULT_RECIPE


def http_target(url, members, data, label_column, id_column, n_records, seed, exposure, *,
                explicit_exposure, model, references, auth_env, budget, batch_size,
                concurrency, rate_limit, cache_dir, protocol="miaudit", protocol_input=None,
                protocol_output=None):
    """The endpoint as a target: the data loaded here (to probe it), the members read from
    their ID file, and the exposure detected from its answers unless one was given."""
    import numpy as np

    from miaudit.data import load_dataset
    from miaudit.errors import ConfigError
    from miaudit.governance.forget import load_id_list
    from miaudit.targets.http import HTTPTarget, detect_exposure

    if data is None or members is None:
        raise ConfigError("--target needs --data (the records) and --members (the IDs of "
                          "the records the model was trained on, one per line).")
    if model != "mlp" and not references:
        raise ConfigError("--model names the reference recipe with --target; add "
                          "--references K, or leave --model out.")
    ds = load_dataset(data, label_column=label_column, id_column=id_column,
                      n_records=n_records, seed=seed)
    endpoint = HTTPTarget(url, auth_env=auth_env, budget=budget, batch_size=batch_size,
                          concurrency=concurrency, rate_limit=rate_limit,
                          cache_dir=None if cache_dir is None else Path(cache_dir) / "http",
                          n_classes=ds.n_classes, classes=ds.classes, protocol=protocol,
                          input_name=protocol_input, output=protocol_output,
                          columns=ds.feature_names if protocol == "mlflow" else None)
    if not explicit_exposure:
        probe = np.random.default_rng(seed).permutation(ds.n_records)[:100]
        found = detect_exposure(endpoint, ds.X[probe])
        err_console.print(f"[bold]exposure detected[/] {found.setting}: "
                          f"{escape(found.explanation)}",
                          highlight=False)
        exposure = found.setting
    if endpoint.protocol_note:
        err_console.print(f"[bold]protocol[/] {escape(endpoint.protocol_note)}",
                          highlight=False)
    member_ids = load_id_list(members)
    if n_records is not None:  # the members file lists the whole training set
        kept = set(map(str, ds.ids))
        member_ids = [m for m in member_ids if m in kept]
    return {"data": ds, "model": endpoint, "members": member_ids, "exposure": exposure,
            "n_records": None}


def model_file_target(path, members, data, label_column, id_column, n_records, seed, exposure,
                      *, explicit_exposure, trust, outputs, param, references,
                      tracking_uri=None):
    """A model file (.onnx, .skops) or an MLflow model (models:/..., runs:/..., a folder
    with an MLmodel file) as the target: the data loaded here, the members read from their
    ID file, the exposure what the model returns unless one was given; references, if any,
    train locally from the default recipe (-p)."""
    from miaudit.data import load_dataset
    from miaudit.errors import ConfigError
    from miaudit.governance.forget import load_id_list
    from miaudit.targets import LabelTarget
    from miaudit.targets.files import load_model_file
    from miaudit.targets.mlflow import exposure_of, is_mlflow_model, load_mlflow_model

    from_mlflow = is_mlflow_model(path)
    shown = path if from_mlflow else Path(path).name
    if data is None or members is None:
        raise ConfigError(f"--model {shown} needs --data (the records) and --members "
                          "(the IDs of the records the model was trained on, one per line).")
    if from_mlflow and trust:
        raise ConfigError("--trust is for a .skops model file; an MLflow model is loaded by "
                          "MLflow, which runs its code: use only models you trust.")
    if outputs is not None:
        raise ConfigError("Give a model file (--model) or --outputs, not both.")
    if param and not references:
        raise ConfigError("-p sets the recipe of the references trained locally for a model "
                          "file; add --references K --reference-mode offline, or leave -p out.")
    ds = load_dataset(data, label_column=label_column, id_column=id_column,
                      n_records=n_records, seed=seed)
    if from_mlflow:
        # MLflow resolves models:/ in its current store only; its download progress bars
        # are left out unless asked for (the CLI says what it loaded)
        settings = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR":
                    os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")}
        if tracking_uri:
            settings["MLFLOW_TRACKING_URI"] = tracking_uri
        with _environment(settings):
            model = load_mlflow_model(path, classes=ds.classes)
            found, why = exposure_of(model, ds.X[:100])
        if not explicit_exposure:
            exposure = found
            err_console.print(f"[bold]exposure[/] {exposure}: {escape(why)} ({escape(path)})",
                              highlight=False, soft_wrap=True)
    else:
        model = load_model_file(path, classes=ds.classes, trusted=trust)
    if not explicit_exposure and not from_mlflow:
        exposure = ("label" if isinstance(model, LabelTarget) else
                    "logits" if getattr(model, "kind", "probs") == "logits" else "probabilities")
        err_console.print(f"[bold]exposure[/] {exposure}: what {escape(Path(path).name)} "
                          "returns", highlight=False)
    member_ids = load_id_list(members)
    if n_records is not None:  # the members file lists the whole training set
        kept = set(map(str, ds.ids))
        member_ids = [m for m in member_ids if m in kept]
    return {"data": ds, "model": model, "members": member_ids, "exposure": exposure,
            "n_records": None, "reference_recipe": DEFAULT_RECIPE}


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the block, and put back what was there after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_target_options(target, protocol, protocol_input, protocol_output, trust) -> None:
    """Options that only mean something with --target, or without it, refused otherwise."""
    from miaudit.errors import ConfigError

    if target is None and (protocol != "miaudit" or protocol_input or protocol_output):
        raise ConfigError("--protocol, --protocol-input and --protocol-output are for an "
                          "endpoint (--target URL).")
    if target is not None and trust:
        raise ConfigError("--trust is for a .skops model file (--model model.skops), not an "
                          "endpoint (--target).")


def is_model_file(model: str) -> bool:
    """A model file (.onnx, .skops, refused pickles) or an MLflow model."""
    from miaudit.targets.files import MODEL_FILE_SUFFIXES
    from miaudit.targets.mlflow import is_mlflow_model

    return Path(model).suffix.lower() in MODEL_FILE_SUFFIXES or is_mlflow_model(model)


def log_to_mlflow(saved: Path, model_uri: str | None, tracking_uri: str | None,
                  experiment: str) -> None:
    """``run --mlflow``: the saved run as one MLflow run (the run folder stays either way)."""
    from miaudit.errors import ConfigError, MiauditError
    from miaudit.registry.mlflow import log_audit

    try:
        logged = log_audit(saved, model_uri=model_uri, tracking_uri=tracking_uri,
                           experiment=experiment)
    except MiauditError as exc:
        raise ConfigError(f"{exc} The audit is saved in {saved}; log it later with: miaudit "
                          f"mlflow-log {saved}") from None
    tagged = (f"; tagged models:/{logged.model_version[0]}/{logged.model_version[1]}"
              if logged.model_version else "")
    err_console.print(f"[bold]MLflow run[/] {logged.run_id} (experiment {escape(experiment)}, "
                      f"{escape(logged.tracking_uri)}){escape(tagged)}", highlight=False,
                      soft_wrap=True)


def model_label(model: str) -> str:
    """The model's part of a default run folder name."""
    from miaudit.targets.mlflow import is_mlflow_model, short_name

    return short_name(model) if is_mlflow_model(model) else Path(model).name


def audited_uri(model: str, target: str | None, spec: Path | None) -> str | None:
    """What ``run --mlflow`` tags as the audited model: the endpoint, an MLflow model (a
    folder as its absolute path) or a model file; None for a trained recipe or a spec. An
    endpoint's credentials (user, password, secret query parameters) are left out."""
    from miaudit.targets.http.urls import public_url
    from miaudit.targets.mlflow import URI_SCHEMES

    if spec is not None:
        return None
    if target is not None:
        return public_url(target)
    if model.startswith(URI_SCHEMES):
        return model
    return str(Path(model).resolve()) if is_model_file(model) else None


def openai_targets(url, model, name, reference_name, reference_model, *, auth_env,
                   batch_size, budget, cache):
    """The audited model (and a reference model) behind an OpenAI-compatible API."""
    from miaudit.errors import ConfigError
    from miaudit.targets.openai import OpenAICompletionsTarget

    if model is not None:
        raise ConfigError("Give either --model (a local folder) or --target (an API), not "
                          "both.")
    if not name:
        raise ConfigError("--target needs --target-model, the served model's name.")

    def api(served: str) -> OpenAICompletionsTarget:
        return OpenAICompletionsTarget(url, served, auth_env=auth_env, batch_size=batch_size,
                                       max_texts=budget, cache_dir=cache)

    return api(name), api(reference_name) if reference_name else reference_model
