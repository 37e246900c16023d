"""The HTTP server around the app: connection limits and timeouts (see ``connections``)."""
