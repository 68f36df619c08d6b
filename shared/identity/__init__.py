"""Identity: who calls (``auth``: tokens, keys, scopes), who is meant (``identifiers``:
personnummer, organisationsnummer, kommunkod), the person key that finds a person's rows
without storing the personnummer in an index, and the audit log of every access."""
