"""Sign-in: invitations, passwords, personal keys, rate limits, and the ring of deployment secrets."""
