"""Notify: unit inboxes, signed webhooks, functional e-mail, reminders."""
