"""WebhookDeliveryWorkflow: one event to one endpoint, at least once, retried with backoff for a bounded time.

Each attempt is one activity that sends, records the attempt and decides, in one transaction, whether the
delivery is over (delivered; refused for good; out of retry time; endpoint disabled) or how long to wait. The
workflow draws the jitter of every wait from `workflow.random()`, so replays wait exactly as the first run did,
and the waits are durable timers: a delivery survives restarts of workers and of the Temporal server.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

# Passed through the sandbox by name (workflows/worker.py PURE_MODULES).
from tessera.webhooks.schedule import planned_delay
from tessera.webhooks.status import DeliveryStatus
from workflows import search_attributes as sa
from workflows.webhook_models import AttemptInput, AttemptResult, DeliveryInput, DeliveryResult

# One attempt is bounded by the send timeout (at most 120 s by its setting) plus a database write.
ATTEMPT_TIMEOUT = timedelta(minutes=3)
# Retries of the activity itself: only infrastructure failures (the database briefly away) raise.
ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@workflow.defn(name="WebhookDeliveryWorkflow")
class WebhookDeliveryWorkflow:
    """Delivers one event to one endpoint: attempt, wait with backoff and jitter, attempt again, until done."""

    def __init__(self) -> None:
        self._status = DeliveryStatus.pending
        self._attempts = 0

    @workflow.run
    async def run(self, request: DeliveryInput) -> DeliveryResult:
        schedule = request.schedule
        deadline = workflow.now() + timedelta(seconds=schedule.retry_for_seconds)
        random = workflow.random()
        while True:
            self._attempts += 1
            fraction = random.random()
            result = await workflow.execute_activity(
                "webhooks.attempt",
                AttemptInput(
                    delivery_id=request.delivery_id,
                    attempt=self._attempts,
                    planned_delay_seconds=planned_delay(
                        self._attempts, schedule.base_seconds, schedule.max_interval_seconds, fraction
                    ),
                    remaining_seconds=(deadline - workflow.now()).total_seconds(),
                    retry_after_max_seconds=schedule.retry_after_max_seconds,
                ),
                result_type=AttemptResult,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            if result.status != DeliveryStatus.pending:
                self._status = result.status
                workflow.upsert_search_attributes([sa.STATUS.value_set(result.status.value)])
                return DeliveryResult(status=result.status, attempts=self._attempts, status_code=result.status_code)
            await workflow.sleep(timedelta(seconds=result.next_delay_seconds))

    @workflow.query
    def status(self) -> DeliveryResult:
        """The delivery's status and the attempts made so far."""
        return DeliveryResult(status=self._status, attempts=self._attempts)
