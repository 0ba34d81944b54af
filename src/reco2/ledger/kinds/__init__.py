"""One module per transaction kind: ``stateless(action)``, ``check(state, ctx, action)`` and
``apply(state, ctx, action) -> events``. ``check`` runs every rule before ``apply`` changes
anything, so a rejected transaction leaves the state untouched."""
