"""The web market: a FastAPI app beside the embedded node, with logins whose ledger keys the
server custodies, server-rendered pages (Japanese by default) and retirement statements."""
