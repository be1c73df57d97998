"""Merging two conversations that are the same matter."""

import pytest

from engage.choices import EventKind, State, TicketStatus
from engage.errors import Conflict, InvalidInput, VersionConflict
from engage.models import Conversation, Event, FeedbackLink, Message, Note
from engage.services import conversations as cs
from engage.services import feedback as fs
from engage.services import tags as tag_services
from engage.services.merge import merge
from tests import factories

pytestmark = pytest.mark.django_db


def test_everything_moves_to_the_kept_conversation(manager, product):
    kept, duplicate = factories.conversation(), factories.conversation()
    cs.log_reply(duplicate.pk, actor=manager, text="Answered on the other channel")
    cs.add_note(duplicate.pk, actor=manager, text="Same person as on Facebook")
    tag_services.change_tags(duplicate.pk, actor=manager, add=["descaling"])
    ticket = fs.create_ticket(actor=manager, title="Alert", conversation_id=duplicate.pk, quote="q")
    duplicate_events = set(
        Event.objects.filter(conversation=duplicate).values_list("pk", flat=True)
    )

    result = merge(duplicate.pk, kept.pk, actor=manager)

    assert result.pk == kept.pk
    assert Message.objects.filter(conversation=duplicate).count() == 0
    assert Message.objects.filter(conversation=kept).count() == 3  # two openings + the reply
    assert Note.objects.get().conversation_id == kept.pk
    assert FeedbackLink.objects.get(ticket=ticket).conversation_id == kept.pk
    assert duplicate_events <= set(
        Event.objects.filter(conversation=kept).values_list("pk", flat=True)
    )
    kept.refresh_from_db()
    duplicate.refresh_from_db()
    assert list(kept.tags.values_list("name", flat=True)) == ["descaling"]
    assert kept.first_response_at is not None
    assert (duplicate.merged_into_id, duplicate.state) == (kept.pk, State.CLOSED)
    assert duplicate.events.get().kind == EventKind.MERGED
    assert kept.events.filter(kind=EventKind.MERGED).count() == 1


def test_shared_evidence_is_kept_once_and_recorded(manager):
    kept, duplicate = factories.conversation(), factories.conversation()
    ticket = fs.create_ticket(actor=manager, title="Alert", conversation_id=kept.pk, quote="kept")
    fs.link_evidence(ticket.pk, duplicate.pk, actor=manager, quote="duplicate's words")

    merge(duplicate.pk, kept.pk, actor=manager)

    assert list(FeedbackLink.objects.values_list("conversation_id", "quote")) == [(kept.pk, "kept")]
    event = kept.events.get(kind=EventKind.MERGED)
    assert event.data["dropped_evidence"] == [
        {"ticket_id": ticket.pk, "quote": "duplicate's words"}
    ]


def test_a_pending_follow_up_moves_with_the_merge(manager, product):
    kept, duplicate = factories.conversation(), factories.conversation()
    ticket = fs.create_ticket(actor=product, title="Alert", conversation_id=duplicate.pk)
    fs.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)

    merge(duplicate.pk, kept.pk, actor=manager)

    kept.refresh_from_db()
    assert kept.needs_follow_up is True
    assert Conversation.objects.filter(needs_follow_up=True).count() == 1


@pytest.mark.parametrize("into", ["self", "missing"])
def test_refuses_merging_into_itself_or_nothing(manager, conversation, into):
    target = conversation.pk if into == "self" else 999_999
    with pytest.raises(InvalidInput) as refused:
        merge(conversation.pk, target, actor=manager)
    assert refused.value.field == "into"


def test_refuses_merging_twice_and_a_stale_version(manager):
    kept, duplicate, third = (factories.conversation() for _ in range(3))
    with pytest.raises(VersionConflict):
        merge(duplicate.pk, kept.pk, actor=manager, expected_version=7)
    merge(duplicate.pk, kept.pk, actor=manager, expected_version=1)
    with pytest.raises(Conflict):
        merge(duplicate.pk, third.pk, actor=manager)
    with pytest.raises(Conflict):
        merge(third.pk, duplicate.pk, actor=manager)


def test_product_team_cannot_merge(product):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        merge(factories.conversation().pk, factories.conversation().pk, actor=product)


def test_a_merged_conversation_cannot_be_reopened(manager):
    kept, duplicate = factories.conversation(), factories.conversation()
    merge(duplicate.pk, kept.pk, actor=manager)
    with pytest.raises(Conflict) as refused:
        cs.set_state(duplicate.pk, State.OPEN, actor=manager)
    assert f"merged into #{kept.pk}" in refused.value.message
