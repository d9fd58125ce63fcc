"""The marketplace: catalogs (merchant offers, municipal services, events), redemption from the wallet,
card payments for the cash part of municipal services, and catalog search with its indexing outbox."""
