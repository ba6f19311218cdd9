"""The ``miaudit`` command line: a thin layer over the library.

Known errors print one line on stderr and exit with code 1; set ``MIAUDIT_DEBUG=1`` to
see the traceback instead. Data goes to stdout, messages to stderr.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

import miaudit.cli.options as opt
from miaudit._version import __version__
from miaudit.cli.common import (
    OutputFormat,
    default_out,
    err_console,
    friendly,
    model_cache,
    out_console,
    split_list,
)
from miaudit.cli.targets import (
    audited_uri,
    check_target_options,
    http_target,
    is_model_file,
    log_to_mlflow,
    model_file_target,
    model_label,
    openai_targets,
)
from miaudit.defaults import (
    CHECKPOINT_SECONDS,
    DEFAULT_ALPHA,
    DEFAULT_EXPOSURE,
    DEFAULT_MODELS_PER_BATCH,
    DEFAULT_PRIOR,
    DEFAULT_RECIPE,
    POPULATION_FRACTION,
)
from miaudit.errors import MiauditError, MiauditWarning

app = typer.Typer(
    name="miaudit",
    help="Audit machine-learning models for membership-inference leakage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _in_panel(panel: str):
    """``typer.Option`` shown in one panel of ``miaudit run --help``."""
    return functools.partial(typer.Option, rich_help_panel=panel)


DATA, TARGET, ATTACKS = (_in_panel(p) for p in (opt.DATA, opt.TARGET, opt.ATTACKS))


def _version_callback(value: bool) -> None:
    if value:
        print(f"miaudit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback,
                                          is_eager=True, help="Show the version.")] = False,
) -> None:
    """Audit machine-learning models for membership-inference leakage."""


def _record(result, saved: Path, registry_url: str | None, no_registry: bool) -> None:
    """Record a saved run in the registry (default: $MIAUDIT_REGISTRY or a SQLite file) and
    say its ID; a registry that cannot be written is reported, the run folder stays."""
    if no_registry:
        return
    from miaudit.registry import Registry

    try:
        with Registry(registry_url) as reg:
            run_id = reg.record_run(result.summary(), result.scores, saved)
    except MiauditError as exc:
        err_console.print(f"[yellow]warning[/] the run was not recorded in the registry: "
                          f"{escape(str(exc))}", highlight=False)
        return
    err_console.print(f"[bold]run ID[/] {run_id} (registry: miaudit show {run_id})",
                      highlight=False)


def _audit_and_save(out_dir: Path, overwrite: bool, quiet: bool, cache_dir: Path | None,
                    no_cache: bool, **settings):
    """Check the run folder first, audit (warnings go to the summary, not stderr), save."""
    from miaudit.audits import audit
    from miaudit.results.result import check_out_dir

    check_out_dir(out_dir, overwrite=overwrite)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)  # shown in the summary instead
        result = audit(**settings,
                       cache=not no_cache, cache_dir=cache_dir,
                       progress=not quiet and sys.stderr.isatty())
    return result, result.save(out_dir, overwrite=overwrite)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  miaudit run --data digits\n\n"
        "  miaudit run --data location30.npz --model mlp --attacks loss,mentr --out runs/loc\n\n"
        "  miaudit run --data adult.csv.gz --label-column income --model logistic\n\n"
        "  miaudit run --data location30.npz --references 16 --targets 4\n\n"
        "  miaudit run --outputs my_logits.npz --exposure probabilities\n\n"
        "  miaudit run --data digits --model model.onnx --members members.txt\n\n"
        "  miaudit run --data digits --model models:/digits-clf/3 --members members.txt "
        "--mlflow\n\n"
        "  miaudit run --data location30.npz --exposure logits,top-k:1,label,temperature:4\n\n"
        "An MLflow model (--model models:/NAME/VERSION, models:/NAME@ALIAS, "
        "runs:/RUN_ID/PATH or a folder holding an MLmodel file) is loaded by MLflow, which "
        "unpickles it: loading runs the model's code, so use only models you trust (your own "
        "registry)."
    )
)
@friendly
def run(
    spec: Annotated[Path | None, DATA(
        help="An audit spec (.toml or .yaml) describing the whole audit; stored with the "
        "run so 'miaudit spec rerun' repeats it (the other options are then refused)."
    )] = None,
    data: opt.Data = None,
    label_column: opt.LabelColumn = None,
    id_column: opt.IdColumn = None,
    n_records: opt.NRecords = None,
    model: opt.Model = DEFAULT_RECIPE,
    param: opt.Param = None,
    outputs: Annotated[Path | None, TARGET(
        help="Precomputed outputs (.npz with logits or probs, y, is_member) instead of "
        "training a model."
    )] = None,
    target: Annotated[str | None, TARGET(
        help="Audit a model behind an HTTP endpoint (http(s)://HOST/predict) instead of "
        "training one; needs --members. With --references, --model names the recipe of "
        "the offline references trained locally."
    )] = None,
    members: Annotated[Path | None, TARGET(
        help="With --target, a model file (--model model.onnx or model.skops) or an MLflow "
        "model (--model models:/NAME/VERSION, runs:/RUN_ID/PATH or a model folder; MLflow "
        "unpickles it, which runs its code: only models you trust): the IDs of the records "
        "the model was trained on, one per line. A model file's references (--references K "
        "--reference-mode offline) train from the mlp recipe (-p)."
    )] = None,
    trust: Annotated[list[str] | None, TARGET(
        help="With a .skops model file: also trust this type (module.Class), repeatable; "
        "only for files whose author you trust, since loading a type runs its code."
    )] = None,
    target_auth_env: Annotated[str | None, TARGET(
        help="Environment variable holding the endpoint's Authorization header value "
        "(never written anywhere)."
    )] = None,
    target_budget: Annotated[int | None, TARGET(
        help="Hard cap on rows sent to the endpoint, all attacks together (a partial audit, "
        "marked as such, when it runs out)."
    )] = None,
    target_batch_size: Annotated[int, TARGET(help="Rows per request.")] = 256,
    target_concurrency: Annotated[int, TARGET(help="Requests in flight.")] = 4,
    target_rate_limit: Annotated[float | None, TARGET(
        help="Most requests per second."
    )] = None,
    protocol: Annotated[str, TARGET(
        "--protocol", help="The endpoint's wire format: miaudit ({\"instances\"} -> "
        "{\"predictions\"}), kserve-v2 (Open Inference Protocol: KServe, Triton; --target "
        "http://HOST:PORT/v2/models/NAME), tf-serving (--target "
        "http://HOST:8501/v1/models/NAME) or mlflow (--target http://HOST:PORT)."
    )] = "miaudit",
    protocol_input: Annotated[str | None, TARGET(
        "--protocol-input", help="kserve-v2: the input tensor's name (default: from the "
        "model metadata, else input-0); mlflow: dataframe_split (default, the data's column "
        "names), inputs or instances."
    )] = None,
    protocol_output: Annotated[str | None, TARGET(
        "--protocol-output", help="kserve-v2: the output to read (default: the only one, "
        "else the one named like prob or logit); tf-serving/mlflow: the field of each "
        "prediction to read."
    )] = None,
    attacks: opt.Attacks = None,
    exposure: opt.Exposure = DEFAULT_EXPOSURE,
    query_budget: opt.QueryBudget = None,
    references: opt.References = 0,
    reference_mode: opt.ReferenceMode = "online",
    targets: opt.Targets = 1,
    lira_variance: opt.LiraVariance = "auto",
    rmia_temperature: opt.RmiaTemperature = None,
    quantile_method: opt.QuantileMethod = "gaussian",
    population_fraction: opt.PopulationFraction = POPULATION_FRACTION,
    augment: opt.Augment = "auto",
    no_augment: opt.NoAugment = False,
    seed: opt.Seed = 0,
    alpha: opt.Alpha = DEFAULT_ALPHA,
    prior: opt.Prior = DEFAULT_PRIOR,
    device: opt.Device = "cpu",
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    checkpoint_seconds: opt.CheckpointSeconds = CHECKPOINT_SECONDS,
    executor: opt.Executor = "inprocess",
    workers: opt.Workers = None,
    ray_address: opt.RayAddress = None,
    models_per_batch: opt.ModelsPerBatch = DEFAULT_MODELS_PER_BATCH,
    out: opt.Out = None,
    overwrite: opt.Overwrite = False,
    format: opt.Format = OutputFormat.text,
    quiet: opt.Quiet = False,
    registry: opt.Registry = None,
    no_registry: opt.NoRegistry = False,
    mlflow: Annotated[bool, typer.Option(
        "--mlflow", rich_help_panel=opt.OUTPUT, help="Also record the audit in MLflow: "
        "metrics, params, the reports and summary.json as artifacts, and tags linking it to "
        "the model (a registered version of --model models:/... is tagged with the verdict)."
    )] = False,
    mlflow_tracking_uri: Annotated[str | None, typer.Option(
        rich_help_panel=opt.OUTPUT, help="MLflow tracking store or server, for --mlflow and "
        "for loading --model models:/... or runs:/... (default: $MLFLOW_TRACKING_URI, else "
        "MLflow's default)."
    )] = None,
    mlflow_experiment: Annotated[str, typer.Option(
        rich_help_panel=opt.OUTPUT, help="With --mlflow: the experiment (created if absent)."
    )] = "miaudit",
) -> None:
    """Train (or load) a target model and audit it with membership-inference attacks."""
    options = dict(locals())
    started = time.perf_counter()
    if mlflow:  # before the audit, not after it: say now that MLflow is missing
        from miaudit.targets.mlflow import require_mlflow

        require_mlflow()
    if spec is not None:
        result, saved = _run_spec_file(spec, options)
    else:
        settings = _audit_settings(options)
        out_dir = out or default_out(data if outputs is None else str(outputs),
                                     model_label(model))
        check_target_options(target, protocol, protocol_input, protocol_output, trust)
        if target is not None:
            from miaudit.results.result import check_out_dir

            check_out_dir(out_dir, overwrite=overwrite)  # before any query is sent
            settings.update(http_target(
                target, members, data, label_column, id_column, n_records, seed, exposure,
                explicit_exposure=exposure != DEFAULT_EXPOSURE, model=model,
                references=references, auth_env=target_auth_env, budget=target_budget,
                batch_size=target_batch_size, concurrency=target_concurrency,
                rate_limit=target_rate_limit, cache_dir=model_cache(cache_dir, no_cache),
                protocol=protocol, protocol_input=protocol_input,
                protocol_output=protocol_output))
        elif is_model_file(model):
            settings.update(model_file_target(
                model, members, data, label_column, id_column, n_records, seed, exposure,
                explicit_exposure=exposure != DEFAULT_EXPOSURE, trust=trust, outputs=outputs,
                param=param, references=references, tracking_uri=mlflow_tracking_uri))
        elif members is not None or trust:
            from miaudit.errors import ConfigError

            raise ConfigError("--members is for --target, a model file (--model model.onnx) "
                              "or an MLflow model (--model models:/NAME/VERSION)"
                              if members is not None else "--trust is for a .skops model "
                              "file (--model model.skops).")
        result, saved = _audit_and_save(out_dir, overwrite, quiet, cache_dir, no_cache,
                                        **settings)
    _record(result, saved, registry, no_registry)
    _print_run(result, saved, format, started)
    if mlflow:  # after the result is out: a failure to log loses nothing
        log_to_mlflow(saved, audited_uri(model, target, spec), mlflow_tracking_uri,
                      mlflow_experiment)


#: Options of ``run`` about where the run goes and what it caches (``--spec`` takes them).
_OUTPUT = ("spec", "out", "overwrite", "format", "quiet", "registry", "no_registry",
           "cache_dir", "no_cache", "checkpoint_seconds", "mlflow", "mlflow_tracking_uri",
           "mlflow_experiment")
#: Options of ``run`` that are not settings of the audit itself.
_RUN_ONLY = (*_OUTPUT, "target", "members", "trust", "target_auth_env", "target_budget",
             "target_batch_size", "target_concurrency", "target_rate_limit", "protocol",
             "protocol_input", "protocol_output")


def _audit_settings(options: dict) -> dict:
    """``run``'s options as the flat settings of :class:`miaudit.config.AuditConfig` (the
    same names; ``--param``, ``--attacks`` and ``--augment`` translated)."""
    settings = {k: v for k, v in options.items()
                if k not in _RUN_ONLY and k not in ("param", "augment", "no_augment")}
    settings.update(model_params=options["param"], attacks=split_list(options["attacks"]),
                    augment=opt.augment_setting(options["augment"], options["no_augment"]),
                    reference_recipe=options["model"],
                    checkpoint_seconds=options["checkpoint_seconds"])
    return settings


def _run_spec_file(spec: Path, options: dict):
    """``run --spec``: the spec describes the whole audit, so other audit options are
    refused."""
    from miaudit.spec import load_spec, run_spec

    defaults = inspect.signature(run).parameters
    given = [k for k, v in options.items() if k not in _OUTPUT and v != defaults[k].default]
    if given:
        from miaudit.errors import ConfigError

        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"--spec describes the whole audit; remove {flag} (or put it in the "
                          "spec).")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)  # shown in the summary instead
        return run_spec(load_spec(spec), options["out"], options["overwrite"],
                        progress=not options["quiet"] and sys.stderr.isatty(),
                        cache=not options["no_cache"], cache_dir=options["cache_dir"],
                        checkpoint_seconds=options["checkpoint_seconds"])


def _print_run(result, saved: Path, format: OutputFormat, started: float) -> None:
    """The summary as JSON on stdout, or the terminal tables (and the exposure comparison)."""
    from miaudit.report import print_exposures, print_summary

    if format is OutputFormat.json:
        print(json.dumps(result.summary(), indent=2))
        return
    print_summary(result.summary(), out_console, run_dir=str(saved))
    if "exposures" in result.summary():
        print_exposures(result.summary(), out_console)
    err_console.print(f"[dim]done in {time.perf_counter() - started:.1f} s[/]")


#: What ``compare-exposures`` compares unless told otherwise.
DEFAULT_COMPARED = ("logits,probabilities,top-k:1,rounded:1,label,loss,temperature:4,"
                    "noise:0.05,memguard:0.5")


@app.command(
    "compare-exposures",
    epilog=(
        "Examples:\n\n"
        "  miaudit compare-exposures --data location30.npz --references 8\n\n"
        "  miaudit compare-exposures --data adult.csv.gz --label-column income "
        "--exposure logits,top-k:1,label"
    ),
)
@friendly
def compare_exposures(
    data: opt.Data = None,
    label_column: opt.LabelColumn = None,
    id_column: opt.IdColumn = None,
    n_records: opt.NRecords = None,
    model: opt.Model = DEFAULT_RECIPE,
    param: opt.Param = None,
    exposures: Annotated[str, ATTACKS(
        "--exposure", "--exposures", help="Comma-separated exposure settings to compare "
        "(the same option as 'run --exposure')."
    )] = DEFAULT_COMPARED,
    attacks: opt.Attacks = None,
    query_budget: opt.QueryBudget = None,
    references: opt.References = 0,
    reference_mode: opt.ReferenceMode = "online",
    targets: opt.Targets = 1,
    seed: opt.Seed = 0,
    device: opt.Device = "cpu",
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    out: opt.Out = None,
    overwrite: opt.Overwrite = False,
    format: opt.Format = OutputFormat.text,
    quiet: opt.Quiet = False,
    registry: opt.Registry = None,
    no_registry: opt.NoRegistry = False,
) -> None:
    """Which exposure is safe to ship? Run every attack each exposure setting allows on the
    same models and compare: strongest attack, TPR at low FPR, utility kept, and the
    records that stay exposed."""
    from miaudit.errors import ConfigError
    from miaudit.report import print_exposures

    names = split_list(exposures) or []
    if len(names) < 2:
        raise ConfigError("compare-exposures needs at least two exposure settings, "
                          f"got {exposures!r}.")
    started = time.perf_counter()
    result, saved = _audit_and_save(
        out or default_out(data, f"{model}-exposures"), overwrite, quiet, cache_dir, no_cache,
        data=data, label_column=label_column, id_column=id_column, n_records=n_records,
        model=model, model_params=param, exposure=names, attacks=split_list(attacks),
        references=references, reference_mode=reference_mode, targets=targets,
        query_budget=query_budget, seed=seed, device=device,
    )
    _record(result, saved, registry, no_registry)
    if format is OutputFormat.json:
        print(json.dumps(result.summary()["exposures"], indent=2))
        return
    print_exposures(result.summary(), out_console, run_dir=str(saved))
    err_console.print(f"[dim]done in {time.perf_counter() - started:.1f} s[/]")


@app.command(
    "run-lm",
    epilog=(
        "Examples:\n\n"
        "  miaudit lm run --data texts.jsonl --canaries 5            # train the tiny recipe\n\n"
        "  miaudit lm run --data ag_news_test.csv.gz --text-column 1,2 --n-records 2000\n\n"
        "  miaudit lm run --data texts.jsonl -p finetune=lora --references 4  # fine-tune\n\n"
        "  miaudit lm run --model ./my-gpt2 --data notes.jsonl --member-column in_training "
        "--reference-model ./base-gpt2\n\n"
        "  miaudit lm run --model ./my-lora-adapter --base-model ./base-gpt2 --data "
        "notes.jsonl --member-column in_training --references 4"
    ),
)
@friendly
def run_lm(
    data: Annotated[str, typer.Option(help=".jsonl, .csv(.gz), .tsv or .txt (one text per "
                                      "line).")],
    text_column: Annotated[str | None, typer.Option(
        help="Text column (name or position; '1,2' joins columns with '. ')."
    )] = None,
    id_column: Annotated[str | None, typer.Option(help="Record-ID column.")] = None,
    member_column: Annotated[str | None, typer.Option(
        help="Column saying which texts the model trained on (true/false); needed with "
        "--model."
    )] = None,
    n_records: Annotated[int | None, typer.Option(help="Seeded random subset size.")] = None,
    model: Annotated[str | None, typer.Option(
        help="Local model folder (save_pretrained, safetensors) or LoRA/PEFT adapter folder; "
        "default: train the tiny GPT-2 recipe on a seeded half of the texts."
    )] = None,
    base_model: Annotated[str | None, typer.Option(
        help="Local folder of the base model --model was fine-tuned from (default: the base "
        "an adapter folder names): the reference model, and what reference LMs are "
        "fine-tuned from."
    )] = None,
    reference_model: Annotated[str | None, typer.Option(
        help="Local reference model folder (the 'reference' attack; default: the base "
        "model)."
    )] = None,
    target: Annotated[str | None, typer.Option(
        help="Base URL of an OpenAI-compatible API serving the audited model "
        "(http://host:port/v1) whose completions return prompt log-probabilities (echo + "
        "logprobs), or text only with --attacks samia; needs --target-model and "
        "--member-column."
    )] = None,
    target_model: Annotated[str | None, typer.Option(
        help="With --target: the served model's name.")] = None,
    target_reference_model: Annotated[str | None, typer.Option(
        help="With --target: a second served model, as the reference model.")] = None,
    target_auth_env: Annotated[str | None, typer.Option(
        help="With --target: environment variable holding the API key (never written "
        "anywhere).")] = None,
    target_budget: Annotated[int | None, typer.Option(
        help="With --target: most texts sent (hard; cached texts are free).")] = None,
    target_cache: Annotated[Path | None, typer.Option(
        help="With --target: folder of the answer cache (a rerun sends nothing twice)."
    )] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Recipe parameter key=value (n_layer, n_embd, epochs, ...)."
    )] = None,
    references: Annotated[int, typer.Option(
        help="Reference LMs fine-tuned on random halves (text LiRA)."
    )] = 0,
    attacks: Annotated[str | None, typer.Option(help="Comma-separated attacks.")] = None,
    k: Annotated[float, typer.Option(help="Fraction of tokens of Min-K% and Min-K%++.")
                 ] = 0.2,
    dc_pdd_cap: Annotated[float, typer.Option(
        help="DC-PDD's cap on one token's weight (the authors' 0.01 suits large models)."
    )] = 0.01,
    neighbours: Annotated[int, typer.Option(
        help="Neighbour texts (one-token swaps) per text of the 'neighbour' attack."
    )] = 10,
    canaries: Annotated[int, typer.Option(
        help="Secret canaries inserted into the training texts (1, 2, 4, 8, 16 copies)."
    )] = 0,
    extraction: Annotated[bool, typer.Option(
        "--extraction", help="Extraction test: prompt with each text's first tokens, decode "
        "greedily, compare members' exact continuations with non-members'."
    )] = False,
    extraction_prefix: Annotated[int, typer.Option(
        help="Prompt tokens of the extraction test.")] = 32,
    extraction_suffix: Annotated[int, typer.Option(
        help="Tokens decoded and compared by the extraction test.")] = 32,
    seed: opt.Seed = 0,
    out: opt.Out = None,
    overwrite: opt.Overwrite = False,
    device: opt.Device = "cpu",
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 8,
    cache_dir: Annotated[Path | None, typer.Option(
        help="Model cache: the LMs trained here and every local model's token scores, so "
        "a re-run trains and scores nothing twice (default: $MIAUDIT_CACHE or "
        "~/.cache/miaudit).")] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Train and score everything, store nothing.")] = False,
    format: opt.Format = OutputFormat.text,
    quiet: opt.Quiet = False,
    registry: opt.Registry = None,
    no_registry: opt.NoRegistry = False,
) -> None:
    """Audit a causal language model: LOSS, zlib, lowercase, reference, Min-K%, Min-K%++,
    DC-PDD, ReCaLL, neighbourhood, text LiRA, canary exposure, the extraction test, and a
    blind baseline that checks the evaluation itself."""
    from miaudit.audits.lm import audit_lm
    from miaudit.report import print_summary
    from miaudit.results.result import check_out_dir

    out_dir = out or default_out(data, "lm")
    check_out_dir(out_dir, overwrite=overwrite)
    started = time.perf_counter()
    recipe = _lm_params(param)
    text_spec = None if text_column is None else (
        text_column if "," not in text_column else split_list(text_column))
    if target is not None:
        model, reference_model = openai_targets(
            target, model, target_model, target_reference_model, reference_model,
            auth_env=target_auth_env, batch_size=batch_size, budget=target_budget,
            cache=target_cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        result = audit_lm(
            data=data, text_column=text_spec, id_column=id_column, member_column=member_column,
            n_records=n_records, model=model, base_model=base_model,
            reference_model=reference_model, recipe=recipe,
            references=references, attacks=split_list(attacks), k=k,
            dc_pdd_cap=dc_pdd_cap, neighbours=neighbours, canaries=canaries,
            extraction=extraction,
            extraction_prefix=extraction_prefix, extraction_suffix=extraction_suffix,
            seed=seed, device=device, batch_size=batch_size, cache=not no_cache,
            cache_dir=cache_dir, progress=not quiet and sys.stderr.isatty())
    saved = result.save(out_dir, overwrite=overwrite)
    _record(result, saved, registry, no_registry)
    if format is OutputFormat.json:
        print(json.dumps(result.summary(), indent=2))
        return
    print_summary(result.summary(), out_console, run_dir=str(saved))
    err_console.print(f"[dim]done in {time.perf_counter() - started:.1f} s[/]")


def _lm_params(pairs: list[str] | None) -> dict | None:
    """Recipe overrides ``key=value`` as a dict of ints, floats or strings."""
    if not pairs:
        return None
    from miaudit.errors import ConfigError

    params: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Recipe parameters are key=value, got {pair!r}.")
        for cast in (int, float):
            try:
                params[key.strip()] = cast(value)
                break
            except ValueError:
                continue
        else:
            params[key.strip()] = value.strip()
    return params


@app.command("attacks")
@friendly
def list_attacks() -> None:
    """List the attacks, what each needs, and the exposures that allow it."""
    from miaudit.attacks import ATTACKS
    from miaudit.signals import parse_exposure

    probes = ["logits", "probabilities", "rounded:2", "top-k:3", "label", "loss",
              "temperature:2"]
    table = Table(title="attacks (score: higher = more likely a member)", title_justify="left")
    for col in ("name", "needs", "allowed under", "description", "reference"):
        table.add_column(col)
    for a in ATTACKS.values():
        allowed = [p.split(":")[0] for p in probes if a.allowed_by(parse_exposure(p))]
        needs = sorted(a.needs) + (["queries on perturbed inputs"] if a.needs_queries else [])
        table.add_row(a.name, ", ".join(needs), ", ".join(allowed), a.description,
                      a.reference)
    out_console.print(table)


@app.command("datasets")
@friendly
def list_datasets() -> None:
    """List the built-in data sets (any .npz/.csv/.parquet path works too)."""
    from miaudit.data import BUILTIN_DATASETS

    for name in BUILTIN_DATASETS:
        out_console.print(name)


@app.command("recipes")
@friendly
def list_recipes() -> None:
    """List the model recipes and their default parameters."""
    from miaudit.training import RECIPES

    for recipe in RECIPES.values():
        out_console.print(f"[bold]{recipe.name}[/]: {recipe.describe()}", highlight=False)


def _register_commands() -> None:
    """The command groups of the other modules of this package."""
    from miaudit.cli.cache import register as cache
    from miaudit.cli.dataset_inference import register as dataset_inference
    from miaudit.cli.governance import register as governance
    from miaudit.cli.http import register as http
    from miaudit.cli.mlflow import register as mlflow_log
    from miaudit.cli.registry import register as registry
    from miaudit.cli.report import register as report
    from miaudit.cli.spec import register as spec
    from miaudit.cli.sweep import register as sweep

    for register in (spec, governance, report, registry, http, sweep, cache,
                     dataset_inference, mlflow_log):
        register(app)


#: The command groups: (group, help, [(name in the group, command at the top, whether the
#: top-level name stays listed)]). Every top-level name keeps working; the ones not listed
#: are hidden from ``miaudit --help`` (their group lists them).
GROUPS = [
    ("registry", "The registry of data sets, models and runs.",
     [("runs", "runs", True), ("models", "models", False), ("show", "show", True),
      ("compare", "compare", False), ("trace", "trace", False), ("record", "record", False)]),
    ("spec", "Audit specs: check one, run one, run a previous audit again.",
     [("check", "spec-check", False), ("run", "run-spec", False), ("rerun", "rerun", False)]),
    ("lm", "Language models.", [("run", "run-lm", False),
                                 ("dataset-inference", "dataset-inference", True)]),
    ("dp", "Privacy-utility sweeps and DP auditing.",
     [("sweep", "sweep", True), ("one-run", "audit-one-run", False)]),
    ("cache", "The model cache: what it holds, and pruning it.",
     [("info", "cache-info", False), ("prune", "cache-prune", False)]),
    ("http", "Models behind an HTTP endpoint.",
     [("serve", "serve-model", False), ("detect", "detect-exposure", False)]),
]


def _unwrapped(doc: str) -> str:
    """A docstring with each paragraph on one line, so that help wraps at the terminal's
    width rather than at the source's."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))


def _group_commands() -> None:
    """Add the groups of :data:`GROUPS`, each command also under its group name."""
    for info in app.registered_commands:
        if info.help is None and info.callback.__doc__:
            info.help = _unwrapped(info.callback.__doc__)
    by_name = {c.name or c.callback.__name__.replace("_", "-"): c
               for c in app.registered_commands}
    for group, help_text, members in GROUPS:
        sub = typer.Typer(help=help_text, no_args_is_help=True, add_completion=False)
        for name, top, listed in members:
            info = by_name[top]
            twin = copy.copy(info)
            twin.name, twin.hidden = name, False
            sub.registered_commands.append(twin)
            info.hidden = not listed
        app.add_typer(sub, name=group)


_register_commands()
_group_commands()
