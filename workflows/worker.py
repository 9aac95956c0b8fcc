"""The worker process: every workflow and activity of Tessera on one task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.email import EmailActivities
from activities.orders import OrderActivities
from activities.recovery import RecoveryActivities
from activities.reports import ReportActivities
from activities.subscriptions import SubscriptionActivities
from activities.system import SystemActivities
from activities.webhooks import WebhookActivities
from tessera.db import create_engine, create_session_factory
from tessera.email.delivery import mailer_from_settings
from tessera.orders.config import workflows_config
from tessera.processes.startup import load_configured_workflows
from tessera.settings import Settings
from workflows.activation_relay import FirstActivationRelay
from workflows.cancellation import CancellationWorkflow
from workflows.connection import connect_temporal_patiently
from workflows.email_delivery import EmailDeliveryWorkflow
from workflows.license_order import LicenseOrderWorkflow
from workflows.outbox_relay import build_relay
from workflows.recovery import RecoveryWorkflow
from workflows.report import ReportScheduleWorkflow, ReportWorkflow
from workflows.report_schedules import keep_report_schedules
from workflows.revocation import RevocationWorkflow
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription_ops import start_order_subscription
from workflows.system_check import SystemCheckWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

log = logging.getLogger(__name__)

# The sandbox re-imports every module a workflow uses for each run unless it is passed through, and only what it
# re-imports has its non-deterministic calls (datetime.now, uuid4, random, I/O) caught. So exactly the pure
# modules the workflows need are passed through (re-importing them per order was most of the worker's CPU time):
# the models, the condition language and the step language. The rest of tessera (database, codes, clock) is not:
# reached from workflow code by mistake, it is sandboxed and its first non-deterministic call fails the task.
PURE_MODULES = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "celpy",
    "lark",
    "tessera.processes",
    "tessera.orders.status",
    "workflows.order_models",
    "workflows.subscription_models",
    "workflows.email_models",
    "workflows.search_attributes",
    "tessera.webhooks.schedule",
    "tessera.webhooks.status",
    "workflows.webhook_models",
    "workflows.report_models",
    "tessera.reports.schedule_config",
)
RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(*PURE_MODULES)
WORKFLOW_RUNNER = SandboxedWorkflowRunner(restrictions=RESTRICTIONS)

WORKFLOWS: list[type] = [
    SystemCheckWorkflow,
    LicenseOrderWorkflow,
    SubscriptionWorkflow,
    CancellationWorkflow,
    RevocationWorkflow,
    RecoveryWorkflow,
    WebhookDeliveryWorkflow,
    EmailDeliveryWorkflow,
    ReportWorkflow,
    ReportScheduleWorkflow,
]


def build_worker(
    client: Client,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    webhooks: WebhookActivities | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """A worker with every workflow and activity of Tessera."""
    system = SystemActivities(session_factory)
    webhooks = webhooks or WebhookActivities.from_settings(session_factory, settings)

    async def start_subscription(session: AsyncSession, order_id: uuid.UUID) -> None:
        await start_order_subscription(client, settings.task_queue, session, order_id)

    templates = settings.config_dir / "templates"
    secret = settings.resolved_secret_key()
    orders = OrderActivities(session_factory, secret, templates, settings.portal_url, on_fulfilled=start_subscription)
    subscriptions = SubscriptionActivities(
        session_factory, secret, templates, settings.portal_url, lambda: workflows_config(settings)
    )
    email = EmailActivities(session_factory, mailer_from_settings(settings))
    reports = ReportActivities(
        session_factory, settings.resolved_reports_dir, settings.config_dir / "reports", settings.portal_url
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[
            system.check,
            *orders.all(),
            *subscriptions.all(),
            *webhooks.all(),
            email.send,
            *RecoveryActivities(session_factory).all(),
            *reports.all(),
        ],
        workflow_runner=WORKFLOW_RUNNER,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_seconds),
        max_cached_workflows=settings.worker_max_cached_workflows,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout_seconds),
        max_concurrent_local_activities=settings.worker_max_local_activities,
        interceptors=interceptors,
    )


async def run_worker(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then finish running activities and stop.

    An invalid workflows.yaml raises ConfigError before anything connects: a worker never runs on a file that
    `tessera workflows check` would refuse.
    """
    load_configured_workflows(settings)
    client = await connect_temporal_patiently(settings)
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    webhooks = WebhookActivities.from_settings(sessions, settings)
    worker = build_worker(client, settings, sessions, webhooks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        log.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_address)
        await keep_report_schedules(client, sessions, workflows_config(settings), settings.task_queue)
        # Every worker runs a relay too: dispatching is idempotent, so several relays only share the work.
        relay = asyncio.create_task(build_relay(client, sessions, settings).run(stop))
        interval = settings.outbox_relay_interval_seconds
        first_activations = asyncio.create_task(
            FirstActivationRelay(client, sessions, interval_seconds=interval).run(stop)
        )
        await stop.wait()
        await relay
        await first_activations
    await webhooks.close()
    await engine.dispose()
    log.info("worker stopped")
