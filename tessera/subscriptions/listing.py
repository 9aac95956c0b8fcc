"""Terms as `tessera terms` prints them: an aligned text table or a JSON document."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tessera.subscriptions.terms import Term, TermPlan, utc

_HEADERS = ("term", "first day", "valid through", "ends at (UTC, exclusive)", "last day to cancel", "price")


def describe(plan: TermPlan) -> str:
    """One line saying which settings the listing follows."""
    settings = plan.settings
    parts = [f"term {settings.term}", f"alignment {settings.alignment.value}"]
    if settings.fiscal_year_start is not None:
        start = settings.fiscal_year_start
        parts.append(f"fiscal year from {start.month:02d}-{start.day:02d}")
    if plan.aligned:
        parts += [f"first term {settings.first_term.value}", f"cutoff {settings.cutoff_days} days"]
    parts += [f"notice {settings.notice_period}", f"time zone {plan.timezone}"]
    if plan.price is not None:
        parts.append(f"price {plan.price} {plan.currency} per term")
    return ", ".join(parts)


def table(plan: TermPlan, terms: Sequence[Term]) -> str:
    rows = [
        (
            str(term.number),
            term.first_day.isoformat(),
            term.valid_through.isoformat(),
            utc(term.ends_at),
            term.last_day_to_cancel.isoformat(),
            "" if term.price is None else f"{term.price} {term.currency}",
        )
        for term in terms
    ]
    widths = [max(len(row[column]) for row in [_HEADERS, *rows]) for column in range(len(_HEADERS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    header = "  ".join(cell.ljust(width) for cell, width in zip(_HEADERS, widths, strict=True)).rstrip()
    notes = [describe(plan)]
    if plan.has_stub:
        extended = ", extended to the following boundary (cutoff)" if plan.first_term_extended else ""
        notes.append(f"term 1 starts with a partial term of {plan.stub_days} day(s){extended}")
    late = [str(term.number) for term in terms if term.last_day_to_cancel < term.first_day]
    warnings = []
    if late:
        numbers = ", ".join(late)
        warnings.append(
            f"term {numbers}: the last day to cancel is before the term starts; its renewal is committed at once"
        )
    return "\n".join([*notes, "", header, *lines, *warnings])


def as_json(plan: TermPlan, terms: Sequence[Term]) -> str:
    document = {
        "settings": plan.settings.model_dump(mode="json"),
        "start": plan.start.isoformat(),
        "timezone": plan.timezone,
        "price": None if plan.price is None else str(plan.price),
        "currency": plan.currency,
        "stub_days": plan.stub_days,
        "first_term_extended": plan.first_term_extended,
        "terms": [
            {
                "number": term.number,
                "first_day": term.first_day.isoformat(),
                "valid_through": term.valid_through.isoformat(),
                "starts_at": utc(term.starts_at),
                "ends_at": utc(term.ends_at),
                "last_day_to_cancel": term.last_day_to_cancel.isoformat(),
                "cancel_deadline_at": utc(term.cancel_deadline_at),
                "price": None if term.price is None else str(term.price),
                "currency": term.currency,
            }
            for term in terms
        ],
    }
    return json.dumps(document, indent=2)
