"""Market scenarios from a file: participants, devices, issuance, then orders, cancels and
block boundaries in sequence, run on a fresh embedded ledger (see ``model`` for the format)."""
