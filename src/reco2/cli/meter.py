"""`reco2 intake` and `reco2 issue-days`: from signed meter readings to value on the ledger."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reco2 import factors
from reco2.cli.common import DataDir, KeyOption, NodeUrl, console, err_console, fail, load_key
from reco2.cli.common import open_submitter as open_ledger
from reco2.ledger.calendar import parse_iso_date

if TYPE_CHECKING:
    from reco2.ingest.issuer import IssueRun

StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Readings store: sqlite:///path/readings.sqlite (default DIR/readings.sqlite) "
        "or postgresql://user@host:port/db.",
        envvar="RECO2_STORE",
    ),
]


ReviewStorePath = Annotated[
    Path | None,
    typer.Option(
        "--review-store",
        help="SQLite file of the anomaly model's screenings and flags (default DIR/review.sqlite).",
    ),
]


def store_url(data_dir: Path, store: str | None) -> str:
    return store if store else f"sqlite://{(data_dir / 'readings.sqlite').absolute()}"


def review_path(data_dir: Path, review_store: Path | None) -> Path:
    return review_store if review_store is not None else data_dir / "review.sqlite"


def intake(
    data_dir: DataDir = Path("."),
    store: StoreUrl = None,
    mqtt_host: Annotated[str, typer.Option(help="MQTT broker host.")] = "127.0.0.1",
    mqtt_port: Annotated[int, typer.Option(help="MQTT broker port.")] = 1883,
    mqtt: Annotated[bool, typer.Option("--mqtt/--no-mqtt", help="Subscribe to the broker.")] = True,
    mqtt_client_id: Annotated[
        str, typer.Option(help="MQTT client id: the broker keeps this session's messages.")
    ] = "reco2-intake",
    http_host: Annotated[str, typer.Option(help="Address of the HTTP endpoint.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="Port of the HTTP endpoint.")] = 8100,
    workers: Annotated[
        int, typer.Option(help="Worker processes that verify signatures (0: in-process).")
    ] = 0,
) -> None:
    """Take signed meter readings over MQTT and HTTP; validate and store each one."""
    from reco2.ingest.devices import LedgerUnavailable
    from reco2.ingest.service import IntakeConfig, run
    from reco2.mrv.store import StoreError

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if workers < 0:
        fail("--workers must be 0 or more")
    config = IntakeConfig(
        data_dir=data_dir,
        store_url=store_url(data_dir, store),
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        mqtt_enabled=mqtt,
        mqtt_client_id=mqtt_client_id,
        http_host=http_host,
        http_port=http_port,
        workers=workers,
    )
    try:
        run(config)
    except (LedgerUnavailable, StoreError, OSError) as exc:
        fail(str(exc))


def issue_days(
    data_dir: DataDir = Path("."),
    store: StoreUrl = None,
    key: KeyOption = None,
    node: NodeUrl = None,
    until_day: Annotated[
        str | None,
        typer.Option(help="Last JST day to issue, YYYY-MM-DD (default: the last complete day)."),
    ] = None,
    retry_refused: Annotated[
        bool, typer.Option(help="Try again the days the ledger refused before.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the recorded days as JSON.")] = (
        False
    ),
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Screen each day with this anomaly model (the path `reco2 mrv train --out` "
            "wrote) before issuing it: flagged readings count only once the registry authority "
            "releases them on the ledger (`reco2 mrv release`). Without it days issue on the "
            "intake's physical checks alone; a programme that has a trained model should "
            "screen every run (set RECO2_ANOMALY_MODEL once for that).",
            envvar="RECO2_ANOMALY_MODEL",
        ),
    ] = None,
    review_store: ReviewStorePath = None,
    review_days: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="With --model: how long a day with flagged readings nobody released waits for "
            "a release after it was screened, in days; then it issues without them.",
        ),
    ] = 3.0,
    estimate_gaps: Annotated[
        bool,
        typer.Option(
            "--estimate-gaps/--no-estimate-gaps",
            help="The programme's estimation policy (off by default). With --model: fill each "
            "day's intervals that have no accepted reading (missing or rejected) with the gap "
            "estimator's lower-quantile estimates (never above the physical bound, nor, where "
            "the meter's registers bound a gap, what they prove); each batch counts them apart "
            "as estimated energy, and a buyer can exclude estimated value.",
        ),
    ] = False,
    estimate_flagged: Annotated[
        bool,
        typer.Option(
            help="With --estimate-gaps: also fill readings the anomaly model flagged that "
            "nobody released (estimated without the meter's registers).",
        ),
    ] = False,
    estimator: Annotated[
        Path | None,
        typer.Option(
            "--estimator",
            help="With --estimate-gaps: the gap estimator (default: the `<model>-gaps` that "
            "`reco2 mrv train --out` wrote beside the model).",
        ),
    ] = None,
    max_quantile: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="With --estimate-gaps: the highest quantile the programme accepts estimates "
            "at (an estimator trained at a higher one is refused).",
        ),
    ] = 0.05,
) -> None:
    """Issue one value batch per device and complete JST day of accepted readings."""
    from reco2.ingest import issuer
    from reco2.mrv.store import StoreError, open_store

    if key is None:
        fail("--key is required: the aggregator's key file or participant id (e.g. --key mrv)")
    signer = load_key(data_dir, key)
    if until_day is None:
        until = issuer.default_until_day(int(time.time()))
    else:
        parsed = parse_iso_date(until_day)
        if parsed is None:
            fail(f"--until-day {until_day!r} is not a YYYY-MM-DD date")
        until = parsed
    try:
        readings = open_store(store_url(data_dir, store))
    except StoreError as exc:
        fail(str(exc))
    state: issuer.StateReader
    if (data_dir / "ledger.sqlite").exists():
        state = issuer.SqliteStateReader(data_dir)
    elif node:
        state = issuer.HttpStateReader(node)
    else:
        fail(f"{data_dir} holds no ledger: pass --node URL or the node's --data-dir")
    if (estimate_flagged or estimator is not None) and not estimate_gaps:
        fail("--estimate-flagged and --estimator need --estimate-gaps")
    if estimate_gaps and model is None:
        fail("--estimate-gaps needs --model: days are screened before gaps are filled")
    gate = None
    if model is not None:
        from reco2.ai.estimate import EstimationPolicy, load_estimator
        from reco2.ai.gate import Gate
        from reco2.ai.model import AnomalyModel, ModelError
        from reco2.ai.review import ReviewStore
        from reco2.ledger.kinds.common import valid_id

        try:
            loaded = AnomalyModel.load(model)
        except (ModelError, OSError) as exc:
            fail(f"--model {model}: {exc}")
        if not valid_id(loaded.version):
            fail(f"--model {model}: version {loaded.version!r} cannot be named by a release")
        gaps = None
        policy = EstimationPolicy()
        if estimate_gaps:
            from reco2.ai.command import estimator_path

            gaps_path = estimator if estimator is not None else estimator_path(model)
            try:
                gaps = load_estimator(gaps_path)
            except (ModelError, OSError) as exc:
                fail(f"--estimator {gaps_path}: {exc}")
            if gaps.quantile > max_quantile:
                fail(
                    f"--estimator {gaps_path}: quantile {gaps.quantile} is above "
                    f"--max-quantile {max_quantile}"
                )
            policy = EstimationPolicy(True, max_quantile, estimate_flagged)
        gate = Gate(
            loaded,
            ReviewStore(review_path(data_dir, review_store)),
            int(review_days * 86_400),
            gaps,
            policy,
        )
    submitter = open_ledger(data_dir, node)
    try:
        if retry_refused:
            readings.forget_refused()
        with Progress(
            TextColumn("issue days"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=as_json,
        ) as progress:
            task = progress.add_task("days", total=None)

            def step(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            run = issuer.issue_days(
                readings,
                state,
                submitter,
                signer,
                until,
                str(factors.shipped_table()["version"]),
                progress=step,
                gate=gate,
            )
    except issuer.IssueError as exc:
        fail(str(exc), 2)
    finally:
        submitter.close()
        state.close()
        readings.close()
        if gate is not None:
            gate.review.close()
    if as_json:
        rows = [
            {
                "device_id": day.device_id,
                "day": day.day,
                "batch_id": day.batch_id,
                "outcome": day.outcome,
                "tx_hash": None if day.tx_hash is None else day.tx_hash.hex(),
            }
            | _screening(run, day.batch_id)
            for day in run.days
        ]
        held = [
            {
                "device_id": h.device_id,
                "day": h.day,
                "withheld": list(h.withheld),
                "held_until_s": h.held_until_s,
            }
            for h in run.held
        ]
        out = {"until_day": until.isoformat(), "days": rows, "held": held}
        if gate is not None:
            out["model_version"] = gate.version
            if gate.estimator is not None:
                out["estimator_version"] = gate.estimator.version
        sys.stdout.write(json.dumps(out) + "\n")
        return
    console.print(
        f"issued {len(run.issued)} device-day(s) up to {until.isoformat()}"
        + (f"; the ledger refused {len(run.refused)}" if run.refused else "")
        + (f"; {len(run.held)} held for review of flagged readings" if run.held else "")
        + (f"; {estimated} Wh of them estimated" if (estimated := _estimated_wh(run)) else "")
    )
    for day in run.refused:
        err_console.print(f"  {day.batch_id}: [bold red]{day.outcome}[/]")
    for h in run.held:
        err_console.print(
            f"  {h.device_id} {h.day}: held, flagged and not released: {', '.join(h.withheld)}"
        )


def _screening(run: IssueRun, batch_id: str) -> dict[str, object]:
    """The flagged readings a screened day left out and those it counted after a release; its
    measured and estimated energy [Wh] and estimated intervals."""
    day = run.screened.get(batch_id)
    if day is None:
        return {}
    return {
        "withheld": list(day.withheld),
        "released": list(day.released),
        "measured_wh": day.measured_wh,
        "estimated_wh": day.estimated_wh,
        "estimated_intervals": len(day.estimates),
    }


def _estimated_wh(run: IssueRun) -> int:
    """Estimated energy [Wh] of the days the run issued."""
    issued = {day.batch_id for day in run.issued}
    return sum(day.estimated_wh for batch_id, day in run.screened.items() if batch_id in issued)
