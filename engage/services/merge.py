"""Merging two conversations that are the same matter (one person on two channels, a
double post): everything moves to the one that stays; the other points to it."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from engage import history, permissions, workflow
from engage.choices import EventKind, State
from engage.errors import Conflict, InvalidInput
from engage.models import Conversation, Event, FeedbackLink, Message, Note, Presence
from engage.services import retry_on_deadlock
from engage.services.feedback import refresh_ticket_counts


@retry_on_deadlock
@transaction.atomic
def merge(
    duplicate_id: int,
    into_id: int,
    *,
    actor,
    expected_version: int | None = None,
) -> Conversation:
    """Move the messages, notes, evidence, tags and history of `duplicate_id` into `into_id`.

    The duplicate is closed and points to the conversation it was merged into; the kept
    conversation keeps its own stage, cycle and assignee, takes the earlier first response
    and any pending follow-up. Evidence for a ticket both were linked to is kept once
    (the kept conversation's quote). `expected_version` is the duplicate's, as the person
    saw it. Raises InvalidInput, Conflict or VersionConflict; nothing moves if it raises.
    """
    permissions.require_work(actor)
    if duplicate_id == into_id:
        raise InvalidInput(_("A conversation cannot be merged into itself."), field="into")
    # Lock both rows in primary-key order so two opposite merges cannot deadlock.
    locked = {
        conversation.pk: conversation
        for conversation in Conversation.objects.select_for_update()
        .filter(pk__in=[duplicate_id, into_id])
        .order_by("pk")
    }
    if into_id not in locked:
        raise InvalidInput(_("Conversation %(id)s does not exist.") % {"id": into_id}, field="into")
    if duplicate_id not in locked:
        raise InvalidInput(
            _("Conversation %(id)s does not exist.") % {"id": duplicate_id},
            field="conversation",
        )
    duplicate, kept = locked[duplicate_id], locked[into_id]
    workflow.check_version(duplicate.version, expected_version)
    for conversation in (duplicate, kept):
        if conversation.merged_into_id is not None:
            raise Conflict(
                _("Conversation #%(id)s was already merged into #%(into)s.")
                % {"id": conversation.pk, "into": conversation.merged_into_id}
            )

    moved = {
        "messages": Message.objects.filter(conversation=duplicate).update(conversation=kept),
        "notes": Note.objects.filter(conversation=duplicate).update(conversation=kept),
    }
    # The tickets the duplicate is evidence for: their links move to the kept conversation
    # (whose person may be another, or already counted) or are dropped. They are recounted.
    recount = list(
        FeedbackLink.objects.filter(conversation=duplicate).values_list("ticket", flat=True)
    )
    shared_tickets = FeedbackLink.objects.filter(conversation=kept).values("ticket_id")
    dropped_links = list(
        FeedbackLink.objects.filter(conversation=duplicate, ticket_id__in=shared_tickets).values(
            "ticket_id", "quote"
        )
    )
    FeedbackLink.objects.filter(conversation=duplicate, ticket_id__in=shared_tickets).delete()
    moved["evidence"] = FeedbackLink.objects.filter(conversation=duplicate).update(
        conversation=kept
    )
    refresh_ticket_counts(recount)
    moved["events"] = Event.objects.filter(conversation=duplicate).update(conversation=kept)
    kept.tags.add(*duplicate.tags.all())
    Presence.objects.filter(conversation=duplicate).delete()

    kept_fields = kept.absorb_funnel(duplicate)
    if duplicate.first_response_at and (
        kept.first_response_at is None or duplicate.first_response_at < kept.first_response_at
    ):
        kept.first_response_at = duplicate.first_response_at
        kept_fields.append("first_response_at")
    if duplicate.needs_follow_up and not kept.needs_follow_up:
        kept.needs_follow_up = True
        kept_fields.append("needs_follow_up")
    kept.version += 1
    kept.save(update_fields=[*kept_fields, "version", "updated_at"])

    duplicate.merged_into = kept
    duplicate.state, duplicate.snoozed_until = State.CLOSED, None
    duplicate.needs_follow_up = False
    duplicate.version += 1
    duplicate.updated_at = timezone.now()
    duplicate.save(
        update_fields=[
            "merged_into",
            "state",
            "snoozed_until",
            "needs_follow_up",
            "version",
            "updated_at",
        ]
    )

    data = {
        "duplicate": duplicate.pk,
        "into": kept.pk,
        "moved": moved,
        "dropped_evidence": dropped_links,
    }
    history.record(EventKind.MERGED, conversation=kept, actor=actor, data=data)
    history.record(EventKind.MERGED, conversation=duplicate, actor=actor, data=data)
    return kept
