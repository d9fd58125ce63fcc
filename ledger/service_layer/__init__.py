"""Use cases of the ledger, called by the CLI and the HTTP API alike."""
