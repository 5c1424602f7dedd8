"""The authority service: settings, database, PKI service, HTTP API and CLI (composition root)."""
