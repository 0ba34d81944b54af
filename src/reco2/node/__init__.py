"""The imperative shell around the ledger: storage, the sequencer, audit. The only place that
reads the clock."""
