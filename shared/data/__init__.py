"""Data: the database engine and session, SQLite helpers, Alembic wiring, the infrastructure
tables every service has (outbox, inbox, dead letters, audit, idempotency) and their pruning."""
