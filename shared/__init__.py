"""vardkedja's common library: config, db, events, outbox, auth, audit, errors, ids."""
