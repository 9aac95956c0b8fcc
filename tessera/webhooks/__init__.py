"""Signed webhooks: endpoints, the event types they subscribe to, deliveries and their outbound HTTP."""
