"""Temporal activities: thin wrappers around tessera services, one unit of work each."""
