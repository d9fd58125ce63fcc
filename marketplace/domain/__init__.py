"""Pure rules of the marketplace: catalog items, availability, pricing, the search contract."""
