"""The only code that writes Events: the append-only history of conversations and tickets."""

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
