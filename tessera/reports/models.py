"""Tables of billing reports: recorded runs, which renewal rows each run billed or reversed, reseller changes, and
the billing line of every billable term."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tessera.models import Base, Subscription, SubscriptionTerm, new_id, utcnow


class Report(Base):
    """A recorded run: one per kind, period and scope (`all` for the whole vendor), whoever asks first.

    The unique key makes two concurrent runs of a period end with one record; the rows it billed are in
    `reported_renewal`, so the file can be written again byte for byte from what was recorded.
    """

    __tablename__ = "report"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(32), comment="YYYY-MM for renewals, YYYY-MM-DD for active")
    scope: Mapped[str] = mapped_column(String(40), comment="'all', or the reseller's id")
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date, comment="exclusive; the day after `on` for active reports")
    format: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str | None] = mapped_column(String(64), comment="of the file; empty until it is written")
    size: Mapped[int | None] = mapped_column(Integer)
    row_count: Mapped[int | None] = mapped_column(Integer)
    totals: Mapped[list[Any]] = mapped_column(default=list, comment="per currency: rows and net amount")
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("kind", "period", "scope"),)


class ReportedRowKind:
    renewal = "renewal"
    reversal = "reversal"


class ReportedRenewal(Base):
    """A renewal billed (`renewal`) or credited (`reversal`) by a recorded report.

    Unique on (term, kind): a renewal is billed at most once and reversed at most once, whoever runs when.
    """

    __tablename__ = "reported_renewal"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    report_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("report.id", ondelete="CASCADE"), index=True)
    subscription_term_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription_term.id", ondelete="CASCADE"))
    row_kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4), comment="as billed: negative for a reversal")
    currency: Mapped[str | None] = mapped_column(String(3))

    __table_args__ = (UniqueConstraint("subscription_term_id", "row_kind"),)


class ResellerChange(Base):
    """From `at` on, `reseller_id` bills the subscription (empty: the vendor sells it directly).

    The first change of a subscription also records who sold it before (since ever), so the reseller at
    any instant is the latest row at or before it; a subscription without rows never changed reseller.
    """

    __tablename__ = "reseller_change"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription.id", ondelete="CASCADE"))
    reseller_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organization.id"))
    at: Mapped[datetime]


class BillingLine(Base):
    """A billable term (a first term, an effective renewal, an ERP term) as the reports bill it, written when the
    term becomes billable (`tessera.reports.lines`).

    Besides the keys the reports filter and join on, it holds the term's own CSV cells, already quoted and
    defused as `tessera.reports.formats.csv_line` writes them: PostgreSQL then writes a report's records from one
    table, joining only the organizations' and the product's cells, which stay current (names may change; a
    term never does). One line per term, rewritten in place (`term_id` is the key), never a second one.
    """

    __tablename__ = "billing_line"

    term_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription_term.id", ondelete="CASCADE"), primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscription.id", ondelete="CASCADE"))
    term_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(comment="who ordered: the report names its end customer")
    product_id: Mapped[uuid.UUID]
    reseller_id: Mapped[uuid.UUID | None] = mapped_column(comment="the subscription's; its changes are looked up")
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    committed_at: Mapped[datetime | None]
    zone: Mapped[str] = mapped_column(String(64), comment="the vendor's time zone when the line was written")
    renewal_head: Mapped[str] = mapped_column(Text, comment="REN-subscription-term_no,renewal")
    reseller_cell: Mapped[str] = mapped_column(Text, comment="reseller_id as a cell, '' for a direct sale")
    committed_on_cell: Mapped[str] = mapped_column(Text, comment="the commitment's day in `zone`")
    subscription_cells: Mapped[str] = mapped_column(Text, comment="subscription_id,term_no")
    renewal_cells: Mapped[str] = mapped_column(
        Text, comment="quantity,previous_first_day,previous_valid_through,first_day,valid_through"
    )
    active_cells: Mapped[str] = mapped_column(Text, comment="quantity,first_day,valid_through")
    first_day_cell: Mapped[str] = mapped_column(Text)
    price_cells: Mapped[str] = mapped_column(Text, comment="currency,unit_price,net_amount,external_ref")
    written_at: Mapped[datetime] = mapped_column(
        index=True, comment="when the term became billable here: a renewal written late is billed by a later run"
    )


# Report queries select renewals by the start of their term, active subscriptions by the end of the term covering
# an instant and reversals by the revocation's instant: each walks one of these instead of the whole table.
Index("ix_subscription_term_kind_starts_at", SubscriptionTerm.kind, SubscriptionTerm.starts_at)
Index("ix_term_ends_at", SubscriptionTerm.ends_at)
Index("ix_subscription_revoked_at", Subscription.revoked_at)
Index("ix_reseller_change_subscription_at", ResellerChange.subscription_id, ResellerChange.at)
Index("ix_billing_line_kind_starts_at", BillingLine.kind, BillingLine.starts_at)
