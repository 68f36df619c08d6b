"""The web edge: the app factory, problem+json errors, field types, limits on what a client
may make us hold, ETags, the outbound HTTP clients, CSV output, logs and metrics."""
