"""Who may do what: API keys (stored hashed) and the scopes they grant."""
