"""engage.copy: new rows in bulk (COPY on PostgreSQL), with their ids, and Django's errors."""

import pytest
from django.db import IntegrityError, transaction

from engage import copy
from engage.choices import Direction, EventKind
from engage.models import Event, Message
from tests import factories

pytestmark = pytest.mark.django_db


def test_rows_get_their_ids_and_later_rows_can_point_to_them():
    conversation = factories.conversation()
    first, second = (
        Message(
            conversation=conversation,
            source_id=conversation.source_id,
            external_id=f"copy-{n}",
            direction=Direction.INBOUND,
            text=f"Message {n}",
            sent_at=conversation.received_at,
            cycle=1,
        )
        for n in (1, 2)
    )
    copy.insert([first, second])
    duplicate = Message(
        conversation=conversation,
        source_id=conversation.source_id,
        duplicate_of=first,
        direction=Direction.INBOUND,
        text="Message 1",
        sent_at=conversation.received_at,
        cycle=1,
    )
    copy.insert([duplicate])
    copy.insert_rows(
        Event,
        [
            {
                "conversation_id": conversation.pk,
                "ticket_id": None,
                "kind": EventKind.DUPLICATE_RECEIVED,
                "actor_id": None,
                "from_stage": "",
                "to_stage": "",
                "cycle": 1,
                "reason": "",
                "data": {"duplicate_of": "copy-1"},
                "created_at": conversation.received_at,
            }
        ],
    )

    assert Message.objects.get(pk=duplicate.pk).duplicate_of_id == first.pk
    assert Message.objects.get(pk=second.pk).text == "Message 2"
    event = Event.objects.get(conversation=conversation, kind=EventKind.DUPLICATE_RECEIVED)
    assert event.data == {"duplicate_of": "copy-1"}


def test_a_constraint_refusal_is_djangos_integrity_error():
    # The ingest service retries a batch on IntegrityError (a concurrent writer stored the
    # same id first): COPY's refusals must be that error too, not the driver's.
    conversation = factories.conversation()
    again = Message(
        conversation=conversation,
        source_id=conversation.source_id,
        external_id=conversation.external_id,
        direction=Direction.INBOUND,
        text="The same id again",
        sent_at=conversation.received_at,
        cycle=1,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        copy.insert([again])
