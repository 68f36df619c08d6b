"""Messaging: how members talk. Kafka clients and the launcher, the outbox and the inbox, the
event catalogue (``events``), the trust layer that signs and seals every record, the worker
that runs a service's consumers and periodic jobs."""
