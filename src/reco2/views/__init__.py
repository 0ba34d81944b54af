"""Public views of the ledger: what anyone may see (a hidden seller shows as undisclosed)."""
