"""Catalog management, redemption with stock, payments, the search outbox worker and reindexing."""
