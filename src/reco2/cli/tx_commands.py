"""`reco2 tx ...`: build, sign and submit one transaction of each kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reco2 import factors
from reco2.cli.common import DataDir, KeyOption, NodeUrl, fail, send
from reco2.ledger import tx
from reco2.ledger.types import (
    BuyConditions,
    GridContract,
    Purpose,
    Role,
    SchemeEnrollment,
    Source,
)
from reco2.scenario.model import ScenarioError, kg_to_g, yen_to_sen

app = typer.Typer(help="Sign and submit transactions.", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="Print the receipt as JSON.")]


def _hex32(value: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        fail(f"{what} must be hex")
    if len(raw) != 32:
        fail(f"{what} must be 32 bytes")
    return raw


@app.command("register-participant")
def register_participant(
    participant_id: str,
    public_key: Annotated[str, typer.Option(help="Ed25519 public key, hex.")],
    role: Annotated[list[Role], typer.Option(help="Role (repeat for several).")],
    name: Annotated[str, typer.Option(help="Display name.")],
    hidden: Annotated[bool, typer.Option(help="Show the name as undisclosed in public.")] = False,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Admit a participant (signed by the registry authority)."""
    action = tx.RegisterParticipant(
        participant_id, _hex32(public_key, "public key"), list(role), name, not hidden
    )
    send(data_dir, node, key, action, as_json)


@app.command("register-device")
def register_device(
    device_id: str,
    owner: Annotated[str, typer.Option()],
    aggregator: Annotated[str, typer.Option()],
    source: Annotated[Source, typer.Option()],
    capacity_w: Annotated[int, typer.Option(help="Rated capacity [W].")],
    prefecture: Annotated[str, typer.Option(help="JIS X 0401 code, e.g. 13.")],
    municipality: Annotated[
        str, typer.Option(help="Six-digit code with check digit, e.g. 131202.")
    ],
    latitude_e2: Annotated[int, typer.Option(help="Latitude [0.01 degree].")],
    longitude_e2: Annotated[int, typer.Option(help="Longitude [0.01 degree].")],
    commissioned_on: Annotated[str, typer.Option(help="YYYY-MM-DD (JST).")],
    meter_public_key: Annotated[str, typer.Option(help="The meter's Ed25519 key, hex.")],
    grid_contract: Annotated[GridContract, typer.Option()] = GridContract.none,
    utility: Annotated[str, typer.Option(help="Retail utility registration number.")] = "",
    scheme: Annotated[
        list[str] | None,
        typer.Option(help="Other scheme enrolment NAME:START_S:END_S (repeatable)."),
    ] = None,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Register a device (signed by its owner or its aggregator); it waits for approval."""
    schemes = []
    for item in scheme or []:
        try:
            name, start, end = item.rsplit(":", 2)
            schemes.append(SchemeEnrollment(name, int(start), int(end)))
        except ValueError:
            fail(f"scheme {item!r} is not NAME:START_S:END_S")
    action = tx.RegisterDevice(
        device_id,
        owner,
        aggregator,
        source,
        capacity_w,
        prefecture,
        municipality,
        latitude_e2,
        longitude_e2,
        commissioned_on,
        grid_contract,
        utility,
        schemes,
        _hex32(meter_public_key, "meter public key"),
    )
    send(data_dir, node, key, action, as_json)


@app.command("approve-device")
def approve_device(
    device_id: str,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Approve a pending device (registry authority)."""
    send(data_dir, node, key, tx.ApproveDevice(device_id), as_json)


@app.command("deactivate-device")
def deactivate_device(
    device_id: str,
    reason: Annotated[str, typer.Option()] = "",
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Deactivate a device (authority or owner)."""
    send(data_dir, node, key, tx.DeactivateDevice(device_id, reason), as_json)


@app.command("publish-factors")
def publish_factors(
    table: Annotated[
        Path | None, typer.Option(help="A table JSON (default: the shipped one).")
    ] = None,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Publish an emission-factor table version (registry authority)."""
    loaded = json.loads(table.read_text("utf-8")) if table else None
    send(data_dir, node, key, factors.publish_action(loaded), as_json)


@app.command("issue")
def issue(
    batch_id: str,
    device: Annotated[str, typer.Option()],
    period_start_s: Annotated[int, typer.Option(help="[UTC s], on the 30-minute grid.")],
    period_end_s: Annotated[int, typer.Option(help="[UTC s], exclusive.")],
    self_consumed_wh: Annotated[int, typer.Option()],
    measured_intervals: Annotated[int, typer.Option()],
    readings_root: Annotated[str, typer.Option(help="Merkle root of the readings, hex.")],
    factor_version: Annotated[str, typer.Option()],
    estimated_intervals: Annotated[int, typer.Option()] = 0,
    estimated_wh: Annotated[int, typer.Option()] = 0,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Issue a value batch for a device's period (the device's aggregator)."""
    action = tx.IssueValue(
        batch_id,
        device,
        period_start_s,
        period_end_s,
        self_consumed_wh,
        measured_intervals,
        estimated_intervals,
        estimated_wh,
        _hex32(readings_root, "readings root"),
        factor_version,
    )
    send(data_dir, node, key, action, as_json)


@app.command("transfer")
def transfer(
    batch_id: str,
    to: Annotated[str, typer.Option(help="Recipient participant id.")],
    quantity_g: Annotated[int, typer.Option(help="[g-CO2]")],
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Transfer tradable value of a batch."""
    send(data_dir, node, key, tx.TransferValue(batch_id, to, quantity_g), as_json)


@app.command("retire")
def retire(
    retirement_id: str,
    batch: Annotated[str, typer.Option()],
    quantity_g: Annotated[int, typer.Option(help="[g-CO2]")],
    beneficiary: Annotated[str, typer.Option()],
    purpose: Annotated[Purpose, typer.Option()],
    claimed_period: Annotated[str, typer.Option(help="e.g. FY2025")] = "",
    note: Annotated[str, typer.Option()] = "",
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Retire value for a claim (償却); it never moves again."""
    action = tx.RetireValue(
        retirement_id, batch, quantity_g, beneficiary, purpose, claimed_period, note
    )
    send(data_dir, node, key, action, as_json)


@app.command("deposit")
def deposit(
    account: str,
    amount_sen: Annotated[int, typer.Option(help="[sen] (1 yen = 100 sen)")],
    reference: Annotated[str, typer.Option(help="The agent's payment id (used once).")],
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Credit a yen deposit (settlement agent)."""
    send(data_dir, node, key, tx.DepositYen(account, amount_sen, reference), as_json)


@app.command("withdraw")
def withdraw(
    amount_sen: Annotated[int, typer.Option(help="[sen]")],
    agent: Annotated[str, typer.Option(help="Settlement agent that pays out.")],
    reference: Annotated[str, typer.Option()],
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Withdraw available yen through a settlement agent (the account holder signs)."""
    send(data_dir, node, key, tx.WithdrawYen(amount_sen, agent, reference), as_json)


def _kg(value: str) -> int:
    try:
        return kg_to_g(value)
    except ScenarioError as exc:
        fail(str(exc))


def _yen(value: str) -> int:
    try:
        return yen_to_sen(value)
    except ScenarioError as exc:
        fail(str(exc))


@app.command("sell")
def sell(
    order_id: str,
    quantity_kg: Annotated[str, typer.Option(help="kg-CO2, up to 3 decimals.")],
    price_yen_per_kg: Annotated[str, typer.Option(help="Minimum price, yen per kg-CO2.")],
    source: Annotated[Source, typer.Option()],
    place: Annotated[str, typer.Option(help="Prefecture (13) or municipality (131202) code.")],
    all_or_none: Annotated[bool, typer.Option(help="Exactly this quantity, or nothing.")] = False,
    hidden: Annotated[bool, typer.Option(help="Show the seller as undisclosed (非公表).")] = False,
    buyer: Annotated[list[str] | None, typer.Option(help="Only these buyers (repeatable).")] = None,
    expires_at_ns: Annotated[int, typer.Option(help="UTC ns; 0 = until cancelled.")] = 0,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Place a sell order; the value is escrowed from your batches that fit it, oldest first."""
    action = tx.PlaceSellOrder(
        order_id,
        _kg(quantity_kg),
        all_or_none,
        _yen(price_yen_per_kg),
        source,
        place,
        not hidden,
        sorted(buyer or []),
        expires_at_ns,
    )
    send(data_dir, node, key, action, as_json)


@app.command("buy")
def buy(
    order_id: str,
    quantity_kg: Annotated[str, typer.Option(help="kg-CO2, up to 3 decimals.")],
    price_yen_per_kg: Annotated[str, typer.Option(help="Limit price, yen per kg-CO2.")],
    seller: Annotated[list[str] | None, typer.Option(help="One of these sellers.")] = None,
    place: Annotated[list[str] | None, typer.Option(help="Within one of these places.")] = None,
    source: Annotated[list[Source] | None, typer.Option(help="One of these sources.")] = None,
    period_from_s: Annotated[int, typer.Option(help="Generated from [UTC s]; 0 = any.")] = 0,
    period_to_s: Annotated[int, typer.Option(help="Generated until [UTC s]; 0 = any.")] = 0,
    commissioned_after: Annotated[str, typer.Option(help="YYYY-MM-DD; empty = any.")] = "",
    exclude_estimated: Annotated[bool, typer.Option()] = False,
    all_or_none: Annotated[bool, typer.Option()] = False,
    expires_at_ns: Annotated[int, typer.Option()] = 0,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Place a buy order; yen for the whole order at the limit price is escrowed."""
    conditions = BuyConditions(
        sorted(seller or []),
        sorted(place or []),
        sorted(source or []),
        period_from_s,
        period_to_s,
        commissioned_after,
        exclude_estimated,
    )
    action = tx.PlaceBuyOrder(
        order_id,
        _kg(quantity_kg),
        all_or_none,
        _yen(price_yen_per_kg),
        conditions,
        expires_at_ns,
    )
    send(data_dir, node, key, action, as_json)


@app.command("cancel")
def cancel(
    order_id: str,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Cancel your resting order; its escrow is released."""
    send(data_dir, node, key, tx.CancelOrder(order_id), as_json)


@app.command("sell-rule")
def sell_rule(
    rule_id: str,
    device: Annotated[str, typer.Option()],
    price_yen_per_kg: Annotated[str, typer.Option(help="Minimum price, yen per kg-CO2.")],
    cap_kg: Annotated[str, typer.Option(help="List at most this much in all.")],
    hidden: Annotated[bool, typer.Option(help="List as undisclosed (非公表).")] = False,
    buyer: Annotated[list[str] | None, typer.Option(help="Only these buyers.")] = None,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """List every new issuance of your device automatically (a standing sell rule)."""
    action = tx.SetSellRule(
        rule_id, device, _yen(price_yen_per_kg), not hidden, _kg(cap_kg), sorted(buyer or [])
    )
    send(data_dir, node, key, action, as_json)


@app.command("cancel-sell-rule")
def cancel_sell_rule(
    rule_id: str,
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Stop a standing sell rule (orders it already listed stay)."""
    send(data_dir, node, key, tx.CancelSellRule(rule_id), as_json)


@app.command("release-reading")
def release_reading(
    reading_id: Annotated[str, typer.Argument(help="The flagged reading: DEVICE_ID/START_S.")],
    reading_hash: Annotated[
        str, typer.Option("--hash", help="SHA-256 of the reading's signed envelope, hex.")
    ],
    model_version: Annotated[str, typer.Option(help="Version of the model that flagged it.")],
    note: Annotated[str, typer.Option(help="Why it is released.")] = "",
    data_dir: DataDir = Path("."),
    node: NodeUrl = None,
    key: KeyOption = None,
    as_json: Json = False,
) -> None:
    """Release a reading the anomaly model flagged, so it may count (registry authority).
    `reco2 mrv release` finds the hash and the model version in the readings store."""
    device_id, _, start = reading_id.rpartition("/")
    if not device_id or not start.isdigit():
        fail(f"{reading_id!r} is not a reading id DEVICE_ID/START_S")
    action = tx.ReleaseReading(
        device_id, int(start), _hex32(reading_hash, "--hash"), model_version, note
    )
    send(data_dir, node, key, action, as_json)
