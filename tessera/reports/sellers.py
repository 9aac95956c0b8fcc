"""Who sells what, as reports name them: the organization tree read once per report, the end customer of an
organization, the vendor's time zone, and the reseller of a subscription at an instant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.models import Organization, OrganizationKind
from tessera.reports.models import ResellerChange

Row = tuple[str, ...]
"""One report row: text in the order of its report's columns (decimal strings, ISO dates, '' for nothing).
Tuples, not dicts: building 100,000 dicts was a fifth of a report's time; formats that want names zip them."""


@dataclass(frozen=True)
class _Org:
    kind: str
    parent_id: str | None
    name: str
    erp_customer_no: str | None


class Organizations:
    """The organization tree, read once per report (it is small next to the subscriptions): names, ERP numbers,
    and each node's end customer (the nearest customer at or above it)."""

    def __init__(self, rows: dict[str, _Org]) -> None:
        self._rows = rows
        self._customers: dict[str, str] = {}
        self._described: dict[str | None, tuple[str, str, str]] = {}

    @classmethod
    async def load(cls, session: AsyncSession) -> Organizations:
        query = select(Organization.id, Organization.kind, Organization.parent_id, Organization.name,
                       Organization.erp_customer_no)  # fmt: skip
        rows = {
            str(row[0]): _Org(row[1], str(row[2]) if row[2] else None, row[3], row[4])
            for row in (await session.execute(query)).all()
        }
        return cls(rows)

    def customer_of(self, organization_id: str) -> str:
        found = self._customers.get(organization_id)
        if found is None:
            found, node = organization_id, self._rows.get(organization_id)
            cursor: str | None = organization_id
            while node is not None and cursor is not None:
                if node.kind == OrganizationKind.customer:
                    found = cursor
                    break
                cursor = node.parent_id
                node = self._rows.get(cursor) if cursor else None
            self._customers[organization_id] = found
        return found

    def describe(self, organization_id: str | None) -> tuple[str, str, str]:
        """(id, ERP number, name) of an organization; three empty cells for none."""
        found = self._described.get(organization_id)
        if found is None:
            node = self._rows.get(organization_id) if organization_id else None
            found = self._described[organization_id] = (
                organization_id or "",
                (node.erp_customer_no or "") if node else "",
                node.name if node else "",
            )
        return found


async def vendor_timezone(session: AsyncSession) -> str:
    zone = await session.scalar(select(Organization.timezone).where(Organization.kind == OrganizationKind.vendor))
    return zone or "UTC"


def reseller_at(subscription_id: Any, reseller_id: Any, instant: Any) -> ColumnElement[Any]:
    """Who sold the subscription at `instant`: the latest recorded change at or before it, else its reseller.

    Organizations holding subscriptions never move in the tree, so a reseller changes only by a recorded
    change (tessera.reports.resellers); a subscription without one has had its reseller all along.
    """
    latest = (
        select(ResellerChange.reseller_id)
        .where(ResellerChange.subscription_id == subscription_id, ResellerChange.at <= instant)
        .order_by(ResellerChange.at.desc())
        .limit(1)
        .scalar_subquery()
    )
    # IN, not a correlated EXISTS: the database hashes the few subscriptions that ever changed once per query
    # instead of probing the change table for every row.
    changed = subscription_id.in_(select(ResellerChange.subscription_id))
    return case((changed, latest), else_=reseller_id)
