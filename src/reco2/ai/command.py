"""`reco2 mrv train` and `reco2 mrv evaluate`: the anomaly model on simulated fleets.

scikit-learn is imported only when a command runs, so that every other `reco2` command starts as
fast as before.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from reco2.ai.evaluation import Detection

app = typer.Typer(
    help="Measurement AI: the anomaly model and its evaluation.", no_args_is_help=True
)

DEFAULT_MODEL = Path("models/anomaly")


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option(help="model path (.joblib and .json are written)")] = (
        DEFAULT_MODEL
    ),
    version: Annotated[str, typer.Option(help="the model's version")] = "1",
    seed: Annotated[int, typer.Option(help="simulator seed of the training fleet")] = 11,
    devices: Annotated[int, typer.Option(min=4)] = 40,
    days: Annotated[int, typer.Option(min=6)] = 14,
    fault_rate: Annotated[float, typer.Option(help="share of device-days per fault kind")] = 0.04,
    drifts: Annotated[int, typer.Option(help="drifting meters")] = 6,
) -> None:
    """Train on a simulated fleet with known faults; save the model and its training record."""
    from reco2.ai.evaluation import FleetSpec, train

    spec = FleetSpec(seed, devices, days, fault_rate, drifts)
    model = train(spec, version)
    model_path, meta_path = model.save(out)
    Console().print(
        f"model {version}: {model_path} ({model.training['rows']} rows, "
        f"{model.training['faulty_rows']} faulty, data sha256 "
        f"{model.training['data_sha256'][:16]}...), metadata {meta_path}"
    )


def detection_table(detection: Detection, title: str) -> Table:
    table = Table(title=title)
    for column in ("fault kind", "faulty readings", "detected", "by the model only", "recall"):
        table.add_column(column, justify="right" if column != "fault kind" else "left")
    table.add_column("false positives / clean intervals", justify="right")
    fpr = detection.false_positive_rate
    for kind in detection.kinds:
        recall = "-" if math.isnan(kind.recall) else f"{kind.recall:.3f}"
        table.add_row(
            kind.kind,
            str(kind.faulty),
            str(kind.detected),
            str(kind.by_model_only),
            recall,
            f"{detection.false_positives}/{detection.clean} = {fpr:.4f}",
        )
    return table


@app.command("evaluate")
def evaluate_command(
    model_path: Annotated[
        Path | None, typer.Option("--model", help="a saved model (default: train one now)")
    ] = None,
    train_seed: Annotated[int, typer.Option()] = 11,
    test_seed: Annotated[int, typer.Option(help="seed of the held-out fleet")] = 12,
    devices: Annotated[int, typer.Option(min=4)] = 40,
    days: Annotated[int, typer.Option(min=6)] = 14,
    fault_rate: Annotated[float, typer.Option()] = 0.04,
    drifts: Annotated[int, typer.Option()] = 6,
) -> None:
    """Train on one fleet, test on a held-out one; print detection per fault kind."""
    from reco2.ai.evaluation import FleetSpec, detect, simulate, train
    from reco2.ai.model import AnomalyModel

    if test_seed == train_seed:
        raise typer.BadParameter("the held-out fleet needs another seed", param_hint="--test-seed")
    if model_path is not None:
        model = AnomalyModel.load(model_path)
    else:
        model = train(FleetSpec(train_seed, devices, days, fault_rate, drifts), "evaluation")
    held_out = simulate(FleetSpec(test_seed, devices, days, fault_rate, drifts))
    detection = detect(model, held_out)
    Console().print(
        detection_table(
            detection, f"held-out fleet seed {test_seed}: {devices} devices x {days} days"
        )
    )
