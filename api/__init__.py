"""Entry points: the entraide CLI (and later the HTTP API)."""
