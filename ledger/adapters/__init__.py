"""Adapters at the edge of the ledger: database, keys on disk."""
