"""`reco2 mrv evaluate` through the real CLI: one held-out fleet, several added up, and the seeds
it refuses (a fleet the model was trained or calibrated on is not held out)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.harness import run_cli, train_anomaly_model

DEVICES, DAYS = 10, 8
STEP_TIMEOUT_S = 300.0
SIZE = ("--devices", DEVICES, "--days", DAYS, "--fault-rate", "0.1", "--drifts", "0")
ROW = re.compile(r"^\W*(inflated|night|copy|replay|stuck|drift|gaps)\W+(\d+)\W+(\d+|\(missing\))")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "anomaly"
    train_anomaly_model(path, DEVICES, DAYS, STEP_TIMEOUT_S)
    return path


def counts(output: str) -> dict[str, tuple[int, str]]:
    """Per row of the evaluation table: faulty and detected (as printed)."""
    found = {}
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            found[match.group(1)] = (int(match.group(2)), match.group(3))
    return found


def evaluate(model: Path, seeds: str) -> str:
    proc = run_cli(
        "mrv", "evaluate", "--model", model, "--test-seeds", seeds, *SIZE, timeout=STEP_TIMEOUT_S
    )
    return proc.stdout


def test_several_held_out_fleets_add_up_to_one_table_with_a_row_each(model: Path) -> None:
    one, two = evaluate(model, "31"), evaluate(model, "32")
    both = evaluate(model, "31,32")
    assert "held-out fleet seed 31" in one and "per held-out fleet" not in one
    assert "2 held-out fleets (seeds 31, 32) added up" in both
    single = [counts(one), counts(two)]
    added = counts(both)
    assert set(added) >= {"inflated", "night", "copy", "replay", "stuck", "gaps"}
    for kind, (faulty, detected) in added.items():
        assert faulty == sum(c[kind][0] for c in single), kind
        if detected != "(missing)":
            assert int(detected) == sum(int(c[kind][1]) for c in single), kind
    rows = [line for line in both.splitlines() if re.match(r"^\W*3[12]\W", line)]
    assert len(rows) == 2 and all(re.search(r"\b(yes|no: )", row) for row in rows), both
    assert re.search(r"\d of 2 fleets meet every threshold", both), both


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("11", "held-out fleets need other seeds"),
        ("17,31", "held-out fleets need other"),
        ("31,31", "a held-out seed twice"),
        ("x", "not a list of seeds"),
    ],
)
def test_a_fleet_the_model_has_seen_is_refused(model: Path, seeds: str, message: str) -> None:
    proc = run_cli("mrv", "evaluate", "--model", model, "--test-seeds", seeds, *SIZE, expect=2)
    assert message in " ".join(proc.stderr.split()), proc.stderr
