"""The Entraide signed ledger."""
