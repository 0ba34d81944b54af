"""Named outcome codes: every rejection says which rule failed.

Listed in precedence order: the envelope is checked first (size, encoding, chain, signature),
then the signer and nonce, then the action's own fields (stateless), then the action against
state. The first rule that fails is the outcome. ``ok`` is the only success.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    ok = "ok"
    # envelope: rejected before a block; nothing is recorded
    transaction_too_large = "transaction_too_large"
    malformed_transaction = "malformed_transaction"
    non_canonical_encoding = "non_canonical_encoding"
    unknown_kind = "unknown_kind"
    wrong_chain = "wrong_chain"
    bad_signature = "bad_signature"
    # signer and nonce
    unknown_signer = "unknown_signer"
    signer_key_mismatch = "signer_key_mismatch"
    nonce_reused = "nonce_reused"
    nonce_too_high = "nonce_too_high"
    # role of the signer
    role_not_allowed = "role_not_allowed"
    # stateless field checks
    invalid_id = "invalid_id"
    invalid_public_key = "invalid_public_key"
    invalid_roles = "invalid_roles"
    text_too_long = "text_too_long"
    text_required = "text_required"  # a name, beneficiary or scheme left empty
    invalid_place_code = "invalid_place_code"
    invalid_location = "invalid_location"
    invalid_date = "invalid_date"
    capacity_must_be_positive = "capacity_must_be_positive"
    invalid_period = "invalid_period"
    period_not_on_grid = "period_not_on_grid"
    period_spans_fiscal_years = "period_spans_fiscal_years"
    invalid_interval_counts = "invalid_interval_counts"
    energy_must_not_be_negative = "energy_must_not_be_negative"
    energy_exceeds_capacity = "energy_exceeds_capacity"
    invalid_merkle_root = "invalid_merkle_root"
    invalid_factor_table = "invalid_factor_table"
    quantity_must_be_positive = "quantity_must_be_positive"
    amount_must_be_positive = "amount_must_be_positive"
    amount_too_large = "amount_too_large"
    price_must_be_positive = "price_must_be_positive"
    invalid_conditions = "invalid_conditions"
    invalid_expiry = "invalid_expiry"
    invalid_reading_hash = "invalid_reading_hash"  # not a 32-byte SHA-256
    # against state
    participant_exists = "participant_exists"
    public_key_in_use = "public_key_in_use"
    unknown_participant = "unknown_participant"
    owner_not_prosumer = "owner_not_prosumer"
    aggregator_not_aggregator = "aggregator_not_aggregator"
    not_device_owner_or_aggregator = "not_device_owner_or_aggregator"
    device_exists = "device_exists"
    meter_key_in_use = "meter_key_in_use"
    unknown_device = "unknown_device"
    device_not_pending = "device_not_pending"
    device_not_active = "device_not_active"
    device_already_deactivated = "device_already_deactivated"
    not_device_owner = "not_device_owner"
    not_device_aggregator = "not_device_aggregator"
    factor_version_exists = "factor_version_exists"
    unknown_factor_version = "unknown_factor_version"
    no_factor_for_period = "no_factor_for_period"
    batch_exists = "batch_exists"
    issuance_in_future = "issuance_in_future"
    issuance_before_commissioning = "issuance_before_commissioning"
    issuance_period_overlaps = "issuance_period_overlaps"
    device_enrolled_elsewhere = "device_enrolled_elsewhere"
    unknown_batch = "unknown_batch"
    recipient_unknown = "recipient_unknown"
    self_transfer = "self_transfer"
    insufficient_value = "insufficient_value"
    retirement_exists = "retirement_exists"
    deposit_reference_reused = "deposit_reference_reused"
    withdrawal_reference_reused = "withdrawal_reference_reused"
    account_unknown = "account_unknown"
    not_settlement_agent = "not_settlement_agent"
    insufficient_yen = "insufficient_yen"
    order_exists = "order_exists"
    order_expired = "order_expired"
    unknown_order = "unknown_order"
    not_order_owner = "not_order_owner"
    order_not_open = "order_not_open"
    sell_rule_exists = "sell_rule_exists"
    device_has_sell_rule = "device_has_sell_rule"
    unknown_sell_rule = "unknown_sell_rule"
    not_sell_rule_owner = "not_sell_rule_owner"
    sell_rule_inactive = "sell_rule_inactive"
    reading_in_future = "reading_in_future"  # a release of an interval not yet over
    reading_already_issued = "reading_already_issued"  # its interval lies in an issued period
    reading_already_released = "reading_already_released"


#: Outcomes that reject a transaction at the door (check_tx): it never enters a block.
ENVELOPE_OUTCOMES = frozenset(
    {
        Outcome.transaction_too_large,
        Outcome.malformed_transaction,
        Outcome.non_canonical_encoding,
        Outcome.unknown_kind,
        Outcome.wrong_chain,
        Outcome.bad_signature,
        Outcome.unknown_signer,
        Outcome.signer_key_mismatch,
        Outcome.nonce_reused,
        Outcome.nonce_too_high,
    }
)
