"""`reco2 mrv train` and `reco2 mrv evaluate`: the anomaly model and the gap estimator on
simulated fleets; `reco2 mrv flags` and `reco2 mrv release`: what the model flagged before
issuance, and the registry authority's release of a flagged reading on the ledger.

scikit-learn is imported only when a command runs, so that every other `reco2` command starts as
fast as before.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

if TYPE_CHECKING:
    from reco2.ai.evaluation import Evaluation, FleetSpec, KindResult

app = typer.Typer(
    help="Measurement AI: the anomaly model, gap estimates and their evaluation.",
    no_args_is_help=True,
)

DEFAULT_MODEL = Path("models/anomaly")
TRAIN_SEEDS = "11,13,15"
CALIBRATION_SEED = 17
TABLE_WIDTH = 132  # the evaluation table's columns unabridged

Seeds = Annotated[str, typer.Option(help="simulator seeds of the training fleets, comma-separated")]
Devices = Annotated[int, typer.Option(min=4, help="devices per fleet")]
Days = Annotated[int, typer.Option(min=8, help="days per fleet")]
FaultRate = Annotated[float, typer.Option(help="share of device-days per fault kind")]
Drifts = Annotated[int, typer.Option(help="drifting meters per fleet")]
CalibrationSeed = Annotated[
    int, typer.Option(help="seed of the fleet the flagging threshold is calibrated on")
]


def estimator_path(model_path: Path) -> Path:
    """Where the gap estimator of a model is kept: ``<name>-gaps`` beside it."""
    return model_path.with_name(model_path.name + "-gaps")


def _specs(seeds: str, devices: int, days: int, fault_rate: float, drifts: int) -> list[FleetSpec]:
    from reco2.ai.evaluation import FleetSpec

    try:
        values = [int(part) for part in seeds.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"not a list of seeds: {seeds!r}") from None
    if not values:
        raise typer.BadParameter("at least one seed")
    return [FleetSpec(seed, devices, days, fault_rate, drifts) for seed in values]


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option(help="model path (.joblib and .json are written)")] = (
        DEFAULT_MODEL
    ),
    version: Annotated[str, typer.Option(help="the model's version")] = "1",
    seeds: Seeds = TRAIN_SEEDS,
    devices: Devices = 40,
    days: Days = 14,
    fault_rate: FaultRate = 0.04,
    drifts: Drifts = 6,
    calibration_seed: CalibrationSeed = CALIBRATION_SEED,
) -> None:
    """Train on simulated fleets with known faults; save the anomaly model and the gap
    estimator, each with its version and the record of the data it was trained on."""
    from reco2.ai.estimate import save_estimator
    from reco2.ai.evaluation import FleetSpec, train, train_estimator

    specs = _specs(seeds, devices, days, fault_rate, drifts)
    calibration = FleetSpec(calibration_seed, devices, days, fault_rate, drifts)
    if calibration_seed in {spec.seed for spec in specs}:
        raise typer.BadParameter("not a training seed", param_hint="--calibration-seed")
    model = train(specs, version, calibration)
    model_path, meta_path = model.save(out)
    estimator = train_estimator(specs, calibration=calibration)
    gaps_path = save_estimator(
        estimator,
        estimator_path(out),
        {
            "fleets": [spec.as_record() for spec in specs],
            "calibration": calibration.as_record(),
        },
    )
    Console().print(
        f"anomaly model {version}: {model_path} ({model.training['rows']} rows, "
        f"{model.training['faulty_rows']} faulty, data sha256 "
        f"{model.training['data_sha256'][:16]}...), threshold {model.threshold:.3f} "
        f"(calibrated on seed {calibration_seed}), metadata {meta_path}\n"
        f"gap estimator (quantile {estimator.quantile}, scale {estimator.scale:.2f} calibrated "
        f"on seed {calibration_seed}): {gaps_path}"
    )


def evaluation_table(evaluation: Evaluation, title: str) -> Table:
    detection = evaluation.detection
    table = Table(title=title)
    table.add_column("fault kind")
    for column in (
        "faulty",
        "detected",
        "model only",
        "recall",
        "FPR/interval",
        "estimate <= truth",
        "gap energy recovered",
    ):
        table.add_column(column, justify="right")
    fpr = f"{detection.false_positive_rate:.4f}"
    for kind in detection.kinds:
        recall = "-" if math.isnan(kind.recall) else f"{kind.recall:.3f}"
        table.add_row(
            kind.kind,
            str(kind.faulty),
            str(kind.detected),
            str(kind.by_model_only),
            recall,
            fpr,
            "",
            "",
        )
    gaps = evaluation.gaps
    table.add_row(
        "gaps",
        str(gaps.filled),
        "(missing)",
        "",
        "",
        "",
        f"{gaps.conservative_share:.3f} ({gaps.conservative}/{gaps.filled})",
        f"{gaps.recovered_share:.3f} ({gaps.estimated_wh}/{gaps.truth_wh} Wh)",
    )
    table.caption = (
        f"false positives: {detection.false_positives} of {detection.clean} clean intervals"
    )
    return table


def lowest(weakest: KindResult | None) -> str:
    """The weakest recall of a fleet, naming its kind when it is below 1."""
    if weakest is None:
        return "-"
    if weakest.recall >= 1.0:
        return f"{weakest.recall:.3f}"
    return f"{weakest.recall:.3f} ({weakest.kind})"


def fleets_table(seeds: list[int], evaluations: list[Evaluation]) -> Table:
    """One row per held-out fleet: its weakest recall, false positives, gaps, and whether it
    meets every threshold of the issue (``Evaluation.meets``)."""
    table = Table(title="per held-out fleet")
    table.add_column("seed", justify="right")
    for column in ("lowest recall", "FPR/interval", "gaps <= truth", "gaps recovered", "meets"):
        table.add_column(column, justify="right")
    for seed, evaluation in zip(seeds, evaluations, strict=True):
        known = [k for k in evaluation.detection.kinds if k.faulty]
        weakest = min(known, key=lambda k: k.recall) if known else None
        missed = [name for name, ok in evaluation.meets.items() if not ok]
        table.add_row(
            str(seed),
            lowest(weakest),
            f"{evaluation.detection.false_positive_rate:.4f}",
            f"{evaluation.gaps.conservative_share:.3f}",
            f"{evaluation.gaps.recovered_share:.3f}",
            "yes" if not missed else "no: " + ", ".join(missed),
        )
    met = sum(1 for e in evaluations if all(e.meets.values()))
    table.caption = f"{met} of {len(evaluations)} fleets meet every threshold"
    return table


@app.command("evaluate")
def evaluate_command(
    model_path: Annotated[
        Path | None,
        typer.Option("--model", help="a saved model and its estimator (default: train now)"),
    ] = None,
    train_seeds: Seeds = TRAIN_SEEDS,
    test_seeds: Annotated[
        str,
        typer.Option(
            help="seeds of the held-out fleets, comma-separated; with several, a table over "
            "all of them and a row per fleet"
        ),
    ] = "12",
    devices: Devices = 40,
    days: Days = 14,
    fault_rate: FaultRate = 0.04,
    drifts: Drifts = 6,
    calibration_seed: CalibrationSeed = CALIBRATION_SEED,
) -> None:
    """Train on some fleets, test on held-out ones; print a table per fault kind."""
    from reco2.ai.estimate import load_estimator
    from reco2.ai.evaluation import FleetSpec, evaluate_held_out, pooled, train, train_estimator
    from reco2.ai.model import AnomalyModel

    specs = _specs(train_seeds, devices, days, fault_rate, drifts)
    held_out = _specs(test_seeds, devices, days, fault_rate, drifts)
    if len({spec.seed for spec in held_out}) != len(held_out):
        raise typer.BadParameter("a held-out seed twice", param_hint="--test-seeds")
    if model_path is not None:
        model = AnomalyModel.load(model_path)
        estimator = load_estimator(estimator_path(model_path))
        trained_on = [int(f["seed"]) for f in model.training.get("fleets", [])]
    else:
        if calibration_seed in {spec.seed for spec in specs}:
            raise typer.BadParameter("not a training seed", param_hint="--calibration-seed")
        calibration = FleetSpec(calibration_seed, devices, days, fault_rate, drifts)
        model = train(specs, "evaluation", calibration)
        estimator = train_estimator(specs, calibration=calibration)
        trained_on = [spec.seed for spec in specs]
    calibrated_on = model.training.get("calibration", {}).get("seed")
    used = {*trained_on, calibrated_on}
    if any(spec.seed in used for spec in held_out):
        raise typer.BadParameter("the held-out fleets need other seeds", param_hint="--test-seeds")
    console = Console(width=max(Console().width, TABLE_WIDTH))
    evaluations: list[Evaluation] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("held-out fleets", total=len(held_out))
        for spec in held_out:
            evaluations.append(evaluate_held_out(model, estimator, spec))
            progress.advance(task)
    seeds = [spec.seed for spec in held_out]
    fleets = (
        f"held-out fleet seed {seeds[0]}"
        if len(seeds) == 1
        else f"{len(seeds)} held-out fleets (seeds {', '.join(map(str, seeds))}) added up"
    )
    console.print(
        evaluation_table(
            pooled(evaluations),
            f"{fleets} ({devices} devices x {days} days), trained on seeds "
            f"{', '.join(map(str, trained_on))}, threshold {model.threshold:.3f} "
            f"(calibrated on seed {calibrated_on})",
        )
    )
    if len(evaluations) > 1:
        console.print(fleets_table(seeds, evaluations))


@app.command("flags")
def flags_command(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="The node's data directory.")
    ] = Path("."),
    review_store: Annotated[
        Path | None,
        typer.Option("--review-store", help="The screenings' file (default DIR/review.sqlite)."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="Only this device's flags.")] = None,
    node: Annotated[str | None, typer.Option("--node", help="A running node's URL.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the flags as JSON.")] = False,
) -> None:
    """List the readings the anomaly model flagged before issuance, with their scores and
    whether the registry authority released them on the ledger."""
    import json
    import sys

    from reco2.ai.review import ReviewStore
    from reco2.cli.common import fail
    from reco2.cli.meter import review_path
    from reco2.ingest.issuer import HttpStateReader, SqliteStateReader, StateReader
    from reco2.ledger.state import release_key

    path = review_path(data_dir, review_store)
    if not path.exists():
        fail(f"{path} holds no screenings: run `reco2 issue-days --model` first")
    with ReviewStore(path) as review:
        flags = review.all_flags(device)
    state: StateReader
    if (data_dir / "ledger.sqlite").exists():
        state = SqliteStateReader(data_dir)
    elif node:
        state = HttpStateReader(node)
    else:
        fail(f"{data_dir} holds no ledger: pass --node URL or the node's --data-dir")
    try:
        released = [
            state.get(release_key(f.device_id, f.interval_start_s, f.model_version)) is not None
            for f in flags
        ]
    finally:
        state.close()
    if as_json:
        rows = [
            {
                "reading_id": f.reading_id,
                "score": f.score,
                "model_version": f.model_version,
                "released": done,
            }
            for f, done in zip(flags, released, strict=True)
        ]
        sys.stdout.write(json.dumps({"flags": rows}) + "\n")
        return
    table = Table("reading", "score", "model", "released")
    for f, done in zip(flags, released, strict=True):
        table.add_row(f.reading_id, f"{f.score:.3f}", f.model_version, "yes" if done else "")
    Console().print(table)


@app.command("release")
def release_command(
    reading_id: Annotated[str, typer.Argument(help="The flagged reading: DEVICE_ID/START_S.")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="The node's data directory.")
    ] = Path("."),
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Readings store URL (default DIR/readings.sqlite).",
            envvar="RECO2_STORE",
        ),
    ] = None,
    review_store: Annotated[
        Path | None,
        typer.Option("--review-store", help="The screenings' file (default DIR/review.sqlite)."),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(help="The model version whose flag is released (default: the only one)."),
    ] = None,
    note: Annotated[str, typer.Option(help="Why it is released (kept on the ledger).")] = "",
    key: Annotated[
        str | None, typer.Option("--key", help="The registry authority's key file or id.")
    ] = None,
    node: Annotated[str | None, typer.Option("--node", help="A running node's URL.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the receipt as JSON.")] = False,
) -> None:
    """Release a reading the anomaly model flagged, on the ledger (registry authority): the
    next `reco2 issue-days --model` counts it. The reading's envelope hash comes from the
    readings store and the flagging model's version from the screenings."""
    from reco2.ai.review import ReviewStore
    from reco2.cli.common import fail, send
    from reco2.cli.meter import review_path, store_url
    from reco2.ledger import tx
    from reco2.mrv.store import Status, StoreError, open_store

    try:
        readings = open_store(store_url(data_dir, store))
    except StoreError as exc:
        fail(str(exc))
    try:
        row = readings.reading(reading_id)
    finally:
        readings.close()
    if row is None or row.status is not Status.accepted:
        fail(f"{reading_id}: no accepted reading in the store (the model screens only those)")
    path = review_path(data_dir, review_store)
    if not path.exists():
        fail(f"{path} holds no screenings: run `reco2 issue-days --model` first")
    with ReviewStore(path) as review:
        flags = review.flags_of(reading_id)
    versions = [f.model_version for f in flags]
    if model_version is None:
        if len(versions) != 1:
            fail(
                f"{reading_id} was flagged by {len(versions)} model versions "
                f"({', '.join(versions) or 'none'}): name one with --model-version"
            )
        model_version = versions[0]
    elif model_version not in versions:
        fail(f"model {model_version} did not flag {reading_id}")
    action = tx.ReleaseReading(row.device_id, row.interval_start_s, row.hash, model_version, note)
    send(data_dir, node, key, action, as_json)
