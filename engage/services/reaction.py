"""React from a conversation, and let the reaction move the cycle on.

In react, the step is done by one of three reactions: a ticket created from the
conversation, a link to an existing ticket, or "no product change needed" with its reason.
Each function here records the reaction through its own service and, when the conversation
is in react, advances it to sell in the same transaction: no second click. Elsewhere
(listen, interact, sell) the reaction is recorded and the stage stays where it is.

The advance runs in a savepoint after the reaction. If the cycle refuses it (a closed
conversation), the reaction is kept and the refusal is returned for the person to read.
"""

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from engage import permissions
from engage.choices import Stage
from engage.errors import TransitionNotAllowed
from engage.models import Conversation
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services


@dataclass(frozen=True)
class Reaction:
    """What a reaction wrote, and what it did to the cycle."""

    result: Any  # the FeedbackTicket, FeedbackLink or Event recorded
    moved_on: Conversation | None = None  # the conversation, now in sell
    stays_because: str = ""  # why it stayed in react, when the advance was refused


def move_on(conversation_id: int, *, actor) -> tuple[Conversation | None, str]:
    """Advance a conversation in react to sell; elsewhere, or for someone who does not work
    conversations, do nothing. Returns (the conversation moved on, or None; the refusal).

    Call it inside the reaction's transaction: the reaction locked the conversation row, so
    the stage read here is the one the advance then checks again.
    """
    if actor is not None and not permissions.can_work(actor):
        return None, ""
    stage = Conversation.objects.filter(pk=conversation_id).values_list("stage", flat=True).first()
    if stage != Stage.REACT:
        return None, ""
    try:
        with transaction.atomic():
            moved = conversation_services.advance(conversation_id, actor=actor, to=Stage.SELL)
    except TransitionNotAllowed as refusal:
        return None, refusal.message
    return moved, ""


def _reacted(result, conversation_id: int, *, actor) -> Reaction:
    moved, refusal = move_on(conversation_id, actor=actor)
    return Reaction(result=result, moved_on=moved, stays_because=refusal)


@transaction.atomic
def create_ticket(
    conversation_id: int,
    *,
    actor,
    title: str,
    problem: str = "",
    product_area: str = "",
    quote: str = "",
) -> Reaction:
    """Open a ticket with the conversation as its first evidence; in react, move on to sell.

    Raises what feedback.create_ticket raises (InvalidInput, PermissionDenied).
    """
    ticket = feedback_services.create_ticket(
        actor=actor,
        title=title,
        problem=problem,
        product_area=product_area,
        conversation_id=conversation_id,
        quote=quote,
    )
    return _reacted(ticket, conversation_id, actor=actor)


@transaction.atomic
def link_evidence(ticket_id: int, conversation_id: int, *, actor, quote: str) -> Reaction:
    """Link the conversation to a ticket with a quote; in react, move on to sell.

    Raises what feedback.link_evidence raises (InvalidInput, Conflict, PermissionDenied).
    """
    link = feedback_services.link_evidence(ticket_id, conversation_id, actor=actor, quote=quote)
    return _reacted(link, conversation_id, actor=actor)


@transaction.atomic
def record_no_change(conversation_id: int, *, actor, reason: str) -> Reaction:
    """Record that this cycle needs no product change, and move on to sell.

    Raises what conversations.record_no_change raises (it is only allowed in react).
    """
    event = conversation_services.record_no_change(conversation_id, actor=actor, reason=reason)
    return _reacted(event, conversation_id, actor=actor)
