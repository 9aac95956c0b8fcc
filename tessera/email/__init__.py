"""E-mail: the SMTP settings, the messages built from outbox rows, their sending state, and template locales."""
