"""The only code that writes Events: the append-only history of conversations and tickets."""

import functools
import json

from django.db import connection

from engage.choices import EventKind
from engage.models import Conversation, Event, FeedbackTicket


def record(
    kind: EventKind,
    *,
    conversation: Conversation | None = None,
    ticket: FeedbackTicket | None = None,
    actor=None,
    from_stage: str = "",
    to_stage: str = "",
    reason: str = "",
    data: dict | None = None,
) -> Event:
    return Event.objects.create(
        kind=kind,
        conversation=conversation,
        ticket=ticket,
        actor=actor,
        from_stage=from_stage,
        to_stage=to_stage,
        cycle=conversation.cycle if conversation is not None else None,
        reason=reason,
        data=data or {},
    )


def record_many(events: list[Event]) -> list[Event]:
    """Bulk form for changes that touch many conversations at once (a ticket shipping)."""
    return Event.objects.bulk_create(events)


def stage_change(conversation: Conversation, previous: str, *, actor, reason: str = "") -> Event:
    kind = EventKind.RESTARTED if reason else EventKind.STAGE_CHANGED
    return record(
        kind,
        conversation=conversation,
        actor=actor,
        from_stage=previous,
        to_stage=conversation.stage,
        reason=reason,
    )


def insert_for_each(rows: str, kind: EventKind, *, actor, data: dict, at) -> tuple[str, list]:
    """The SQL (and its parameters) that records one `kind` Event for each conversation the
    common table expression `rows` returns (its `id` and `cycle`): for a write made in a
    single statement, whose Event must be written by that same statement."""
    return _insert_for_each_sql(rows), [kind, actor.pk if actor else None, json.dumps(data), at]


@functools.cache
def _insert_for_each_sql(rows: str) -> str:
    meta = Event._meta
    quote = connection.ops.quote_name
    names = ("conversation", "ticket", "kind", "actor", "from_stage", "to_stage", "cycle")
    names += ("reason", "data", "created_at")
    columns = ", ".join(quote(meta.get_field(name).column) for name in names)
    # Table and column names come from the model; `rows` is the caller's own CTE name.
    return (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608
        f"SELECT {rows}.id, NULL, %s, %s, '', '', {rows}.cycle, '', %s::jsonb, %s FROM {rows}"
    )
