"""Merchants, their terminals and the point-of-sale flows they drive on the ledger."""
