"""Command-line commands for models behind an HTTP API: ``serve-model`` (the reference
server) and ``detect-exposure`` (what an endpoint releases)."""

import json
from pathlib import Path
from typing import Annotated

import typer

from miaudit.cli.common import OutputFormat, err_console, friendly, out_console


@friendly
def serve_model(
    model: Annotated[Path, typer.Argument(
        help="Folder with weights.safetensors and meta.json (the recipe), as written "
        "in miaudit's model cache.", show_default=False)],
    exposure: Annotated[str, typer.Option(
        help="What the endpoint releases: probabilities, logits, top-k:K, rounded:D, "
        "label, or a defence (temperature:T, noise:SIGMA, memguard:EPS)."
    )] = "probabilities",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8080,
    slow_ms: Annotated[float, typer.Option(help="Delay added to a request (ms).")] = 0.0,
    p_slow: Annotated[float, typer.Option(
        help="Probability that a request is delayed by --slow-ms.")] = 1.0,
    p429: Annotated[float, typer.Option(
        "--p429", help="Probability of 429 Too Many Requests (with Retry-After).")] = 0.0,
    p500: Annotated[float, typer.Option(
        "--p500", help="Probability of 500 Internal Server Error.")] = 0.0,
    p_drop: Annotated[float, typer.Option(
        help="Probability of closing the connection without an answer.")] = 0.0,
    p_malformed: Annotated[float, typer.Option(
        help="Probability of a 200 answer with a malformed body (cut JSON, or a row "
        "missing).")] = 0.0,
    retry_after: Annotated[float, typer.Option(
        help="Seconds sent in Retry-After with a 429.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the injected faults.")] = 0,
    auth_env: Annotated[str | None, typer.Option(
        help="Environment variable holding the expected auth header value; requests "
        "without it get 401.")] = None,
    auth_header: Annotated[str, typer.Option(help="Name of the auth header.")
                           ] = "Authorization",
    n_features: Annotated[int | None, typer.Option(
        help="Features per row (default: read from the model).")] = None,
    device: Annotated[str, typer.Option(help="Torch device: cpu or cuda.")] = "cpu",
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="Log one line per request on stderr.")] = False,
) -> None:
    """Serve a saved model over HTTP (POST /predict) with a chosen exposure and
    injected faults, to try an audit through an API. Prints the URL on stdout."""
    from miaudit.testing.server import Faults, ModelServer, load_model

    faults = Faults(slow_ms=slow_ms, p_slow=p_slow, p429=p429, p500=p500, p_drop=p_drop,
                    p_malformed=p_malformed, retry_after=retry_after, seed=seed)
    target, info = load_model(model, device=device, n_features=n_features)
    server = ModelServer(target, exposure=exposure, faults=faults, host=host, port=port,
                         auth_env=auth_env, auth_header=auth_header,
                         n_features=info["n_features"], verbose=verbose)
    out_console.print(server.url, highlight=False, soft_wrap=True)
    out_console.file.flush()
    err_console.print(
        f"serving {info['recipe']} ({info['n_features']} features, {info['n_classes']} "
        f"classes) under the exposure [bold]{server.exposure}[/]; Ctrl-C to stop",
        highlight=False, soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    s = server.stats.snapshot()
    err_console.print(f"stopped: {s['requests']} requests, {s['rows_answered']} rows "
                      f"answered, by status {s['status']}", highlight=False)

@friendly
def detect_exposure_command(
    url: Annotated[str, typer.Argument(help="The prediction endpoint (POST, JSON).",
                                       show_default=False)],
    data: Annotated[str, typer.Option(
        help="Records to probe with: a built-in name or a data file.")],
    label_column: Annotated[str | None, typer.Option(
        help="Label column of a CSV/Parquet file.")] = None,
    n_probe: Annotated[int, typer.Option(
        help="Records sent (real queries, counted).")] = 100,
    auth_env: Annotated[str | None, typer.Option(
        help="Environment variable holding the auth header value.")] = None,
    auth_header: Annotated[str, typer.Option(help="Name of the auth header.")
                           ] = "Authorization",
    request: Annotated[str, typer.Option(
        help="Dotted path of the rows in the request body.")] = "instances",
    response: Annotated[str | None, typer.Option(
        help="Dotted path of the answers in the response body (default: predictions, "
        "probabilities, logits, top_k or labels).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the probe subset.")] = 0,
    format: Annotated[OutputFormat, typer.Option(
        "--format", help="text: the setting and why; json: an object on stdout.")
    ] = OutputFormat.text,
) -> None:
    """Tell what an endpoint releases (probabilities, logits, top-k:K, rounded:D or
    label) from its answers on a few records, to choose the exposure to audit."""
    import numpy as np

    from miaudit.data import load_dataset
    from miaudit.errors import ConfigError
    from miaudit.targets.http import HTTPTarget, detect_exposure

    if n_probe < 1:
        raise ConfigError(f"--n-probe must be >= 1, got {n_probe}.")
    ds = load_dataset(data, label_column=label_column, seed=seed)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(ds.n_records, min(n_probe, ds.n_records), replace=False))
    with HTTPTarget(url, request=request, response=response, auth_env=auth_env,
                    auth_header=auth_header, n_classes=ds.n_classes) as target:
        found = detect_exposure(target, ds.X[idx])
        queries = target.queries
    if format is OutputFormat.json:
        print(json.dumps({"endpoint": target.endpoint, "exposure": found.setting,
                          "explanation": found.explanation, "queries": queries}))
        return
    out_console.print(found.setting, highlight=False)
    err_console.print(f"{found.explanation} ({queries} queries)", highlight=False,
                      soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``serve-model`` and ``detect-exposure`` to the ``miaudit`` typer app."""

    app.command(
        "serve-model",
        epilog=(
            "Examples:\n\n"
            "  miaudit http serve ~/.cache/miaudit/ab/abcd... --port 8080\n\n"
            "  miaudit http serve model/ --exposure top-k:3\n\n"
            "  miaudit http serve model/ --exposure rounded:2 --p429 0.1 --p-drop 0.05 "
            "--slow-ms 2000 --p-slow 0.05\n\n"
            "  MODEL_TOKEN='Bearer s3cret' miaudit http serve model/ --auth-env MODEL_TOKEN"
        ),
    )(serve_model)
    app.command(
        "detect-exposure",
        epilog=(
            "Examples:\n\n"
            "  miaudit http detect http://127.0.0.1:8080/predict --data digits\n\n"
            "  API_TOKEN='Bearer ...' miaudit http detect https://api.example.com/v1/predict "
            "--data records.csv --label-column y --auth-env API_TOKEN --format json"
        ),
    )(detect_exposure_command)
