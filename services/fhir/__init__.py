"""A FHIR R4 facade over one member's services (issue 23, ADR 0028).

Its own process per member, base URL ``<facade>/fhir/R4``. It keeps nothing of its own: each
request is translated to the member's referral, directory and consent APIs over HTTP with
the caller's own bearer token, so the same scopes, unit claim, consent decisions and audit
apply as to a caller of those APIs, and their problems come back as ``OperationOutcome``.
"""
