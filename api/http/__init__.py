"""The HTTP API: the litestar app (`app`), authentication, parameters, request bodies, and one router module per URL prefix (`routes/`)."""
