"""Writes on product feedback: tickets, evidence links, status changes and the loop back."""

from functools import partial

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from engage import history, permissions, tasks
from engage.choices import CLOSED_TICKET_STATUSES, EventKind, TicketStatus
from engage.errors import Conflict, InvalidInput
from engage.models import Conversation, Event, FeedbackLink, FeedbackTicket

User = get_user_model()


def _lock_ticket(ticket_id: int) -> FeedbackTicket:
    try:
        return FeedbackTicket.objects.select_for_update().get(pk=ticket_id)
    except FeedbackTicket.DoesNotExist:
        raise InvalidInput(
            _("Ticket %(id)s does not exist.") % {"id": ticket_id}, field="ticket"
        ) from None


def _lock_conversation(conversation_id: int) -> Conversation:
    try:
        return Conversation.objects.select_for_update().get(pk=conversation_id)
    except Conversation.DoesNotExist:
        raise InvalidInput(
            _("Conversation %(id)s does not exist.") % {"id": conversation_id}, field="conversation"
        ) from None


@transaction.atomic
def create_ticket(
    *,
    actor,
    title: str,
    problem: str = "",
    product_area: str = "",
    conversation_id: int | None = None,
    quote: str = "",
) -> FeedbackTicket:
    """Open a ticket; from a conversation, that conversation becomes its first evidence."""
    permissions.require_link_evidence(actor)
    if not title or not title.strip():
        raise InvalidInput(_("A ticket needs a title."), field="title")
    ticket = FeedbackTicket.objects.create(
        title=title.strip(),
        problem=problem.strip(),
        product_area=product_area.strip(),
        created_by=actor,
    )
    history.record(
        EventKind.TICKET_CREATED, ticket=ticket, actor=actor, data={"title": ticket.title}
    )
    if conversation_id is not None:
        _link(ticket, conversation_id, quote=quote or ticket.title, actor=actor)
    return ticket


@transaction.atomic
def link_evidence(ticket_id: int, conversation_id: int, *, actor, quote: str) -> FeedbackLink:
    """Link a conversation to a ticket with the quote that shows the need.

    The link counts as the reaction of the conversation's current cycle. Linking to a
    ticket that already shipped or was declined asks for the person to be told at once.
    Raises Conflict when the conversation is already evidence for this ticket.
    """
    permissions.require_link_evidence(actor)
    ticket = _lock_ticket(ticket_id)
    return _link(ticket, conversation_id, quote=quote, actor=actor)


def _link(ticket: FeedbackTicket, conversation_id: int, *, quote: str, actor) -> FeedbackLink:
    if not quote or not quote.strip():
        raise InvalidInput(_("Quote the words that show the need."), field="quote")
    conversation = _lock_conversation(conversation_id)
    try:
        with transaction.atomic():
            link = FeedbackLink.objects.create(
                ticket=ticket,
                conversation=conversation,
                quote=quote.strip(),
                cycle=conversation.cycle,
                created_by=actor,
            )
    except IntegrityError:
        raise Conflict(
            _("Conversation %(conversation)s is already evidence for this ticket.")
            % {"conversation": conversation.pk}
        ) from None
    history.record(
        EventKind.FEEDBACK_LINKED,
        conversation=conversation,
        actor=actor,
        data={"ticket": ticket.pk, "title": ticket.title, "link": link.pk},
    )
    if ticket.status in CLOSED_TICKET_STATUSES:
        _flag_follow_ups(ticket, [conversation.pk], actor=actor)
    transaction.on_commit(partial(tasks.enqueue, tasks.notify_new_evidence, link.pk))
    return link


def _flag_follow_ups(ticket: FeedbackTicket, conversation_ids: list[int], *, actor) -> None:
    """Mark conversations as waiting to be told about the ticket, with one Event each."""
    if not conversation_ids:
        return
    # Lock in primary-key order so two tickets shipping at once cannot deadlock.
    locked = list(
        Conversation.objects.filter(pk__in=conversation_ids).order_by("pk").select_for_update()
    )
    Conversation.objects.filter(pk__in=conversation_ids).update(
        needs_follow_up=True, version=F("version") + 1, updated_at=timezone.now()
    )
    history.record_many(
        [
            Event(
                kind=EventKind.FOLLOW_UP_FLAGGED,
                conversation=conversation,
                actor=actor,
                cycle=conversation.cycle,
                data={"ticket": ticket.pk, "title": ticket.title, "status": ticket.status},
            )
            for conversation in locked
        ]
    )
    transaction.on_commit(partial(tasks.enqueue, tasks.notify_follow_ups, ticket.pk))


@transaction.atomic
def change_ticket_status(ticket_id: int, status: str, *, actor, note: str = "") -> FeedbackTicket:
    """Move a ticket to `status`. Shipping or declining asks for every person who asked
    (and has not been told yet) to be told: their conversations get a follow-up."""
    permissions.require_manage_tickets(actor)
    if status not in TicketStatus.values:
        raise InvalidInput(
            _("“%(status)s” is not a ticket status: use %(choices)s.")
            % {"status": status, "choices": ", ".join(TicketStatus.values)},
            field="status",
        )
    ticket = _lock_ticket(ticket_id)
    if ticket.status == status:
        return ticket
    previous = ticket.status
    ticket.status, ticket.status_changed_at = status, timezone.now()
    ticket.save(update_fields=["status", "status_changed_at", "updated_at"])
    history.record(
        EventKind.TICKET_STATUS_CHANGED,
        ticket=ticket,
        actor=actor,
        reason=note.strip(),
        data={"from": previous, "to": status},
    )
    if status in CLOSED_TICKET_STATUSES:
        untold = ticket.links.filter(told_at__isnull=True).values_list("conversation_id", flat=True)
        _flag_follow_ups(ticket, list(untold), actor=actor)
    return ticket


@transaction.atomic
def update_ticket(
    ticket_id: int,
    *,
    actor,
    title: str | None = None,
    problem: str | None = None,
    product_area: str | None = None,
    owner=None,
    clear_owner: bool = False,
) -> FeedbackTicket:
    """Edit a ticket's text or owner. Only the fields given change."""
    permissions.require_manage_tickets(actor)
    ticket = _lock_ticket(ticket_id)
    changes = {}
    if title is not None:
        if not title.strip():
            raise InvalidInput(_("A ticket needs a title."), field="title")
        changes["title"] = title.strip()
    if problem is not None:
        changes["problem"] = problem.strip()
    if product_area is not None:
        changes["product_area"] = product_area.strip()
    if owner is not None or clear_owner:
        if owner is not None and not permissions.can_manage_tickets(owner):
            raise InvalidInput(
                _("%(user)s cannot own tickets: only the product team can.")
                % {"user": owner.get_username()},
                field="owner",
            )
        changes["owner"] = owner
    changed = {name: value for name, value in changes.items() if getattr(ticket, name) != value}
    if not changed:
        return ticket
    for name, value in changed.items():
        setattr(ticket, name, value)
    ticket.save(update_fields=[*changed, "updated_at"])
    history.record(
        EventKind.TICKET_UPDATED,
        ticket=ticket,
        actor=actor,
        data={
            name: (value.get_username() if name == "owner" and value else value)
            for name, value in changed.items()
        },
    )
    return ticket
