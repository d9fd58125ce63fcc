"""Finance: period close and settlement, exports, payouts, expiry, reporting and open data."""
