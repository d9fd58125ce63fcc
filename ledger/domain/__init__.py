"""Ledger domain: pure rules for accounts and transfers. No I/O, no framework imports."""
