"""Tables and queries, the search backends (tantivy, Meilisearch) and Stripe."""
