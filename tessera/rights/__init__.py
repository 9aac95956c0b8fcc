"""The one authorization service: reach (what a caller may see), acting (what it may do), grants, scopes,
and quota (the remaining-quota formula and the locks that keep the rules true under concurrent writes).

Every route and, later, the workflows' approval validators ask here; nothing here imports FastAPI or Temporal.
The rule for answers: outside the caller's reach is `NotFound` (indistinguishable from missing), visible
but not allowed is `Forbidden`.
"""
