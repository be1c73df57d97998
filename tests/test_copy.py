"""engage.copy: rows in bulk (COPY and UPDATE from arrays on PostgreSQL), with their ids and
Django's errors; engage.lookups' field__any."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from engage import copy
from engage.choices import Direction, EventKind, State
from engage.models import Conversation, Event, Message
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


def test_update_saves_the_named_fields_of_each_row_and_leaves_the_rest():
    first, second, untouched = (factories.conversation() for _ in range(3))
    answered = first.received_at + timedelta(hours=1)
    first.first_response_at, first.state, first.text = answered, State.CLOSED, "not saved"
    second.first_response_at, second.state = None, State.SNOOZED
    second.snoozed_until = second.received_at + timedelta(days=1)

    copy.update([first, second], ["first_response_at", "state", "snoozed_until"])

    rows = Conversation.objects.in_bulk([first.pk, second.pk, untouched.pk])
    assert (rows[first.pk].first_response_at, rows[first.pk].state) == (answered, State.CLOSED)
    assert rows[first.pk].text != "not saved"
    assert (rows[second.pk].state, rows[second.pk].snoozed_until) == (
        State.SNOOZED,
        second.snoozed_until,
    )
    assert rows[second.pk].first_response_at is None
    assert rows[untouched.pk].state == State.OPEN


def test_any_finds_what_in_finds():
    conversations = [factories.conversation() for _ in range(3)]
    ids = [c.pk for c in conversations]
    external_ids = [c.external_id for c in conversations[:2]]

    def found(**lookup):
        return sorted(Conversation.objects.filter(**lookup).values_list("pk", flat=True))

    assert found(pk__any=[ids[0], ids[2], ids[2], None]) == [ids[0], ids[2]]
    assert found(external_id__any=[*external_ids, "none-such"]) == sorted(ids[:2])
    assert found(pk__any=[]) == []
    assert found(pk__any=[None]) == []
