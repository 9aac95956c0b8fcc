"""Orders: intake (validation, acting rule, quota reservation, idempotency) and reads of orders, licenses, events.

No FastAPI and no Temporal here: the API calls `accept_order`, commits, and hands the returned `OrderStart` to
`workflows.client_ops.start_order_workflow`.
"""
