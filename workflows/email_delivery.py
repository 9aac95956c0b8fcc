"""EmailDeliveryWorkflow (`email-{event_id}`): one outbox notification, sent by e-mail with retries.

One workflow per outbox row, so an operator finds each message's attempts and last error in the Temporal UI, and a
server that is down for hours holds back only the messages that wait for it. Sending at most once per row is the
activity's business (claim and hand-over in the database), not the workflow's: a retry or a second worker finds the
row's state and does not send again.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import search_attributes as sa
from workflows.email_models import EmailInput, EmailResult

# Up to three times the SMTP timeout (at most 120 s) per attempt; heartbeats every few seconds, so a dead
# worker's attempt is retried elsewhere within HEARTBEAT_TIMEOUT.
ATTEMPT_TIMEOUT = timedelta(minutes=7)
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Like a mail server's queue: keep trying for days, backing off to one attempt every ten minutes.
GIVE_UP_AFTER = timedelta(days=3)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=10)
)


@workflow.defn(name="EmailDeliveryWorkflow")
class EmailDeliveryWorkflow:
    """Send one outbox notification by e-mail, retrying until the server takes it or refuses it for good."""

    @workflow.run
    async def run(self, request: EmailInput) -> EmailResult:
        workflow.upsert_search_attributes([sa.STATUS.value_set("sending")])
        result: EmailResult = await workflow.execute_activity(
            "email.send",
            request,
            result_type=EmailResult,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=GIVE_UP_AFTER,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RETRY,
        )
        workflow.upsert_search_attributes([sa.STATUS.value_set(result.outcome)])
        return result
