"""Command-line command ``mlflow-log``: record a saved audit in MLflow afterwards (what
``miaudit run --mlflow`` does at the end of an audit)."""

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from miaudit.cli.common import err_console, friendly


@friendly
def mlflow_log(
    run_dir: Annotated[Path, typer.Argument(
        help="A run folder ('miaudit run --out' wrote it).", show_default=False)],
    model_uri: Annotated[str | None, typer.Option(
        help="The audited model (models:/NAME/VERSION, models:/NAME@ALIAS, runs:/ID/PATH, "
        "a path or a URL), tagged on the run; a registered version gets the verdict as "
        "tags.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        "--mlflow-tracking-uri", help="Tracking store or server (default: "
        "$MLFLOW_TRACKING_URI, else MLflow's default).")] = None,
    experiment: Annotated[str, typer.Option(
        "--mlflow-experiment", help="The experiment (created if absent).")] = "miaudit",
) -> None:
    """Record a saved audit in MLflow: its figures as metrics, settings as params,
    summary.json and the reports as artifacts, and tags linking it to the model. The run ID
    goes to stdout."""
    from miaudit.registry.mlflow import log_audit

    logged = log_audit(run_dir, model_uri=model_uri, tracking_uri=tracking_uri,
                       experiment=experiment)
    tagged = (f"; tagged models:/{logged.model_version[0]}/{logged.model_version[1]}"
              if logged.model_version else "")
    err_console.print(f"[bold]MLflow run[/] (experiment {escape(experiment)}, "
                      f"{escape(logged.tracking_uri)}){escape(tagged)}", highlight=False,
                      soft_wrap=True)
    print(logged.run_id)


def register(app: typer.Typer) -> None:
    """Add ``mlflow-log`` to the ``miaudit`` typer app."""
    app.command(
        "mlflow-log",
        epilog=(
            "Examples:\n\n"
            "  miaudit mlflow-log runs/20250101-120000-digits-mlp\n\n"
            "  MLFLOW_TRACKING_URI=sqlite:///mlflow.db miaudit mlflow-log runs/audit "
            "--model-uri models:/digits-clf/3 --mlflow-experiment privacy"
        ),
    )(mlflow_log)
