"""Services: each write checks its rule once, changes state and records its Event."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from engage.choices import Direction, EventKind, Priority, Stage, State, TicketStatus
from engage.errors import Conflict, InvalidInput, TransitionNotAllowed, VersionConflict
from engage.models import (
    ApiToken,
    Conversation,
    Event,
    FeedbackLink,
    Message,
    Notification,
)
from engage.services import conversations as cs
from engage.services import feedback as fs
from engage.services import tokens
from tests import factories

pytestmark = pytest.mark.django_db


def kinds(conversation) -> list[str]:
    return list(conversation.events.order_by("id").values_list("kind", flat=True))


def to_react(conversation, actor):
    cs.assign(conversation.pk, actor, actor=actor)
    cs.advance(conversation.pk, actor=actor)
    cs.log_reply(conversation.pk, actor=actor, text="Thanks, we are looking into it.")
    return cs.advance(conversation.pk, actor=actor)


# Creating conversations


def test_create_is_idempotent_on_source_and_external_id(manager):
    item = factories.item(external_id="tw-1")
    first, created = cs.create_conversation(item, actor=manager)
    again, created_again = cs.create_conversation(
        factories.item(external_id="tw-1", text="edited elsewhere"), actor=manager
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert again.text == item.text
    assert Conversation.objects.count() == 1
    assert Message.objects.filter(conversation=first).count() == 1


def test_same_external_id_on_another_source_is_another_conversation(manager):
    cs.create_conversation(factories.item(source="a", external_id="1"), actor=manager)
    cs.create_conversation(factories.item(source="b", external_id="1"), actor=manager)
    assert Conversation.objects.count() == 2


def test_create_sets_the_first_response_target_from_the_priority(manager):
    received = timezone.now() - timedelta(hours=1)
    conversation, _ = cs.create_conversation(
        factories.item(created_at=received, priority="urgent"), actor=manager
    )
    assert conversation.priority == Priority.URGENT
    assert conversation.first_response_due_at == received + timedelta(hours=1)
    assert (conversation.stage, conversation.cycle, conversation.version) == (Stage.LISTEN, 1, 1)
    assert kinds(conversation) == [EventKind.CREATED]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"channel": "myspace"}, "channel"),
        ({"text": "  "}, "text"),
        ({"priority": "asap"}, "priority"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "example.com/no-scheme"}, "url"),
    ],
)
def test_create_refuses_bad_items_naming_the_field(manager, overrides, field):
    with pytest.raises(InvalidInput) as refused:
        cs.create_conversation(factories.item(**overrides), actor=manager)
    assert refused.value.field == field
    assert Conversation.objects.count() == 0


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "/relative"])
def test_a_reply_with_an_address_that_is_not_http_is_refused_and_not_logged(
    conversation, manager, url
):
    with pytest.raises(InvalidInput) as refused:
        cs.log_reply(conversation.pk, actor=manager, text="Done", url=url)

    assert refused.value.field == "url"
    assert not conversation.messages.filter(direction=Direction.OUTBOUND).exists()


def test_a_reply_keeps_its_http_address_trimmed(conversation, manager):
    message = cs.log_reply(
        conversation.pk, actor=manager, text="Done", url=" https://x.example/p/1 "
    )

    assert message.url == "https://x.example/p/1"


def test_the_database_refuses_a_duplicate_external_id(conversation):
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.create(
            source=conversation.source,
            external_id=conversation.external_id,
            channel="twitter",
            contact=conversation.contact,
            text="dup",
            received_at=timezone.now(),
            first_response_due_at=timezone.now(),
            stage_entered_at=timezone.now(),
        )


@pytest.mark.parametrize(
    ("field", "value"), [("stage", "buy"), ("state", "archived"), ("priority", 9), ("cycle", 0)]
)
def test_the_database_refuses_invalid_values(conversation, field, value):
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(**{field: value})


# The cycle through services


def test_the_full_cycle_records_one_event_per_step(manager):
    conversation = factories.conversation()
    to_react(conversation, manager)
    fs.create_ticket(
        actor=manager, title="Descaling alert", conversation_id=conversation.pk, quote="q"
    )
    sold = cs.advance(conversation.pk, actor=manager)
    assert sold.stage == Stage.SELL
    transitions = list(
        Event.objects.filter(conversation=conversation, kind=EventKind.STAGE_CHANGED)
        .order_by("id")
        .values_list("from_stage", "to_stage", "actor__username", "cycle")
    )
    assert transitions == [
        ("listen", "interact", "manager", 1),
        ("interact", "react", "manager", 1),
        ("react", "sell", "manager", 1),
    ]


def test_advance_needs_an_assignee(manager, conversation):
    with pytest.raises(TransitionNotAllowed) as refused:
        cs.advance(conversation.pk, actor=manager)
    assert "no assignee" in refused.value.message
    conversation.refresh_from_db()
    assert (conversation.stage, conversation.version) == (Stage.LISTEN, 1)
    assert kinds(conversation) == [EventKind.CREATED]


def test_advance_to_react_needs_a_reply_in_this_cycle(manager, conversation):
    cs.assign(conversation.pk, manager, actor=manager)
    cs.advance(conversation.pk, actor=manager)
    with pytest.raises(TransitionNotAllowed) as refused:
        cs.advance(conversation.pk, actor=manager)
    assert "Log a reply" in refused.value.message
    cs.log_reply(conversation.pk, actor=manager, text="Hello!")
    assert cs.advance(conversation.pk, actor=manager).stage == Stage.REACT


def test_a_reply_from_an_earlier_cycle_does_not_count(manager, conversation):
    to_react(conversation, manager)
    cs.restart(conversation.pk, actor=manager, reason="New complaint")
    cs.advance(conversation.pk, actor=manager)  # still assigned: listen → interact
    with pytest.raises(TransitionNotAllowed):
        cs.advance(conversation.pk, actor=manager)


def test_sell_needs_a_reaction_in_this_cycle(manager, conversation):
    to_react(conversation, manager)
    with pytest.raises(TransitionNotAllowed) as refused:
        cs.advance(conversation.pk, actor=manager)
    assert "no product change" in refused.value.message
    cs.record_no_change(conversation.pk, actor=manager, reason="Already possible in settings")
    assert cs.advance(conversation.pk, actor=manager).stage == Stage.SELL
    event = conversation.events.get(kind=EventKind.NO_CHANGE_RECORDED)
    assert (event.reason, event.cycle) == ("Already possible in settings", 1)


def test_no_change_is_decided_in_react_and_once(manager, conversation):
    with pytest.raises(TransitionNotAllowed):
        cs.record_no_change(conversation.pk, actor=manager, reason="n/a")
    to_react(conversation, manager)
    with pytest.raises(InvalidInput):
        cs.record_no_change(conversation.pk, actor=manager, reason=" ")
    cs.record_no_change(conversation.pk, actor=manager, reason="Works as intended")
    with pytest.raises(Conflict):
        cs.record_no_change(conversation.pk, actor=manager, reason="again")


def test_skipping_is_refused_with_the_missing_step(manager, conversation):
    cs.assign(conversation.pk, manager, actor=manager)
    with pytest.raises(TransitionNotAllowed) as refused:
        cs.advance(conversation.pk, actor=manager, to="sell")
    assert refused.value.message == (
        "Interact and react come before sell: this conversation is still in listen."
    )


def test_restart_starts_the_next_cycle_with_its_reason(manager, conversation):
    to_react(conversation, manager)
    restarted = cs.restart(conversation.pk, actor=manager, reason="Customer unhappy again")
    assert (restarted.stage, restarted.cycle) == (Stage.LISTEN, 2)
    event = conversation.events.get(kind=EventKind.RESTARTED)
    assert (event.from_stage, event.to_stage, event.reason, event.cycle) == (
        "react",
        "listen",
        "Customer unhappy again",
        2,
    )
    with pytest.raises(TransitionNotAllowed):
        cs.restart(conversation.pk, actor=manager, reason="")


def test_a_stale_version_is_refused_and_nothing_changes(manager, conversation):
    cs.assign(conversation.pk, manager, actor=manager)  # version 2
    with pytest.raises(VersionConflict):
        cs.advance(conversation.pk, actor=manager, expected_version=1)
    assert cs.advance(conversation.pk, actor=manager, expected_version=2).version == 3


def test_closed_conversations_do_not_move_until_reopened(manager, conversation):
    cs.assign(conversation.pk, manager, actor=manager)
    cs.set_state(conversation.pk, State.CLOSED, actor=manager)
    with pytest.raises(TransitionNotAllowed):
        cs.advance(conversation.pk, actor=manager)
    cs.set_state(conversation.pk, State.OPEN, actor=manager)
    assert cs.advance(conversation.pk, actor=manager).stage == Stage.INTERACT


# Assignment and claiming


def test_assign_records_who_and_bumps_the_version(manager, other_manager, conversation):
    cs.assign(conversation.pk, other_manager, actor=manager)
    same = cs.assign(conversation.pk, other_manager, actor=manager)  # no change, no event
    cs.assign(conversation.pk, None, actor=manager)
    assert same.version == 2
    assert kinds(conversation) == [EventKind.CREATED, EventKind.ASSIGNED, EventKind.UNASSIGNED]
    conversation.refresh_from_db()
    assert (conversation.assignee, conversation.version) == (None, 3)


def test_only_community_managers_can_be_assigned(manager, product, conversation):
    with pytest.raises(InvalidInput) as refused:
        cs.assign(conversation.pk, product, actor=manager)
    assert refused.value.field == "assignee"


def test_claim_next_takes_the_oldest_due_unassigned_open_conversation(manager, other_manager):
    now = timezone.now()
    later = factories.conversation(created_at=now - timedelta(hours=1))
    oldest = factories.conversation(created_at=now - timedelta(hours=5))
    taken = factories.conversation(created_at=now - timedelta(hours=9))
    cs.assign(taken.pk, other_manager, actor=other_manager)
    closed = factories.conversation(created_at=now - timedelta(hours=8))
    cs.set_state(closed.pk, State.CLOSED, actor=manager)

    assert cs.claim_next(actor=manager).pk == oldest.pk
    assert cs.claim_next(actor=manager).pk == later.pk
    assert cs.claim_next(actor=manager) is None
    oldest.refresh_from_db()
    assert oldest.assignee == manager
    assert oldest.events.filter(kind=EventKind.ASSIGNED, data__claimed=True).count() == 1


def test_claim_next_returns_the_conversation_as_stored_and_its_event(manager):
    conversation = factories.conversation(text="La macchina perde acqua")
    cs.restart(conversation.pk, actor=manager, reason="new need")  # cycle 2, version 2

    claimed = cs.claim_next(actor=manager)

    stored = Conversation.objects.get(pk=conversation.pk)
    # Every field the claim read back is the stored one (the statement returns raw columns).
    fields = [f.attname for f in Conversation._meta.concrete_fields]
    assert {f: getattr(claimed, f) for f in fields} == {f: getattr(stored, f) for f in fields}
    assert (claimed.assignee, claimed.version, claimed.cycle) == (manager, 3, 2)
    event = stored.events.get(kind=EventKind.ASSIGNED)
    assert (event.actor, event.cycle) == (manager, 2)
    assert abs(event.created_at - stored.updated_at) < timedelta(seconds=5)
    assert event.data == {"from": None, "to": manager.username, "claimed": True}


def test_claim_next_in_a_stage(manager):
    listening = factories.conversation()
    in_interact = factories.conversation()
    cs.assign(in_interact.pk, manager, actor=manager)
    cs.advance(in_interact.pk, actor=manager)
    cs.assign(in_interact.pk, None, actor=manager)
    assert cs.claim_next(actor=manager, stage=Stage.INTERACT).pk == in_interact.pk
    assert cs.claim_next(actor=manager, stage=Stage.INTERACT) is None
    assert cs.claim_next(actor=manager, stage=Stage.LISTEN).pk == listening.pk


# Replies, notes


def test_a_reply_sets_the_first_response_time_once(manager, conversation):
    first = cs.log_reply(
        conversation.pk, actor=manager, text="Ciao!", url="https://x.com/brand/status/1"
    )
    cs.log_reply(conversation.pk, actor=manager, text="Any news?")
    conversation.refresh_from_db()
    assert conversation.first_response_at == first.sent_at
    assert (first.direction, first.cycle, first.author_user) == (Direction.OUTBOUND, 1, manager)
    assert first.url == "https://x.com/brand/status/1"


def test_notes_do_not_change_the_version(manager, conversation):
    note = cs.add_note(conversation.pk, actor=manager, text="Called them, **VIP** customer")
    conversation.refresh_from_db()
    assert conversation.version == 1
    assert note.author == manager
    assert kinds(conversation)[-1] == EventKind.NOTE_ADDED
    with pytest.raises(InvalidInput):
        cs.add_note(conversation.pk, actor=manager, text="")


def test_mentions_in_a_note_notify_each_person_once(manager, other_manager, product, outsider):
    conversation = factories.conversation()
    note = cs.add_note(
        conversation.pk,
        actor=manager,
        text="@other and @product: see this. Not me@example.com, nor @outsider, nor @manager.",
    )
    notified = Notification.objects.order_by("user__username")
    assert [(n.user.username, n.conversation_id) for n in notified] == [
        ("other", conversation.pk),
        ("product", conversation.pk),
    ]
    assert "manager mentioned you" in notified[0].text
    event = conversation.events.get(kind=EventKind.NOTE_ADDED)
    assert event.data == {"note": note.pk, "mentions": ["other", "product"]}


def test_priority_moves_the_due_time(manager, conversation):
    updated = cs.set_priority(conversation.pk, "high", actor=manager)
    assert updated.first_response_due_at == conversation.received_at + timedelta(hours=4)
    with pytest.raises(InvalidInput):
        cs.set_priority(conversation.pk, "asap", actor=manager)


def test_priority_keeps_the_due_time_an_answer_was_measured_against(manager, conversation):
    cs.log_reply(conversation.pk, actor=manager, text="On it")
    updated = cs.set_priority(conversation.pk, "urgent", actor=manager)
    assert updated.priority == Priority.URGENT
    assert updated.first_response_due_at == conversation.first_response_due_at


def test_snooze_needs_a_future_time(manager, conversation):
    with pytest.raises(InvalidInput):
        cs.set_state(conversation.pk, State.SNOOZED, actor=manager)
    until = timezone.now() + timedelta(days=1)
    snoozed = cs.set_state(conversation.pk, State.SNOOZED, actor=manager, snoozed_until=until)
    assert (snoozed.state, snoozed.snoozed_until) == (State.SNOOZED, until)


# Roles


@pytest.mark.parametrize(
    "action",
    [
        lambda c, u: cs.advance(c.pk, actor=u),
        lambda c, u: cs.restart(c.pk, actor=u, reason="x"),
        lambda c, u: cs.assign(c.pk, None, actor=u),
        lambda c, u: cs.log_reply(c.pk, actor=u, text="x"),
        lambda c, u: cs.add_note(c.pk, actor=u, text="x"),
        lambda c, u: cs.claim_next(actor=u),
    ],
)
def test_product_team_cannot_work_conversations(product, conversation, action):
    with pytest.raises(PermissionDenied):
        action(conversation, product)


def test_outsiders_can_do_nothing(outsider, conversation):
    with pytest.raises(PermissionDenied):
        fs.create_ticket(actor=outsider, title="x")
    with pytest.raises(PermissionDenied):
        cs.add_note(conversation.pk, actor=outsider, text="x")


def test_community_managers_cannot_change_ticket_status(manager):
    ticket = fs.create_ticket(actor=manager, title="Dark mode")
    with pytest.raises(PermissionDenied):
        fs.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=manager)


# Feedback and closing the loop


def test_shipping_a_ticket_asks_to_tell_every_person_who_asked(manager, product):
    first, second, unrelated = (factories.conversation() for _ in range(3))
    cs.assign(first.pk, manager, actor=manager)
    ticket = fs.create_ticket(
        actor=manager, title="Quieter grinder", conversation_id=first.pk, quote="too loud"
    )
    fs.link_evidence(ticket.pk, second.pk, actor=product, quote="so noisy in the morning")

    fs.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product, note="In 2.1")

    flagged = set(Conversation.objects.filter(needs_follow_up=True).values_list("pk", flat=True))
    assert flagged == {first.pk, second.pk}
    assert unrelated.pk not in flagged
    for conversation in (first, second):
        event = conversation.events.get(kind=EventKind.FOLLOW_UP_FLAGGED)
        assert event.data["ticket"] == ticket.pk
    status_event = ticket.events.get(kind=EventKind.TICKET_STATUS_CHANGED)
    assert (status_event.data, status_event.reason) == ({"from": "new", "to": "shipped"}, "In 2.1")


def test_the_reply_that_tells_the_person_clears_the_follow_up(manager, product):
    conversation = factories.conversation()
    ticket = fs.create_ticket(actor=product, title="App login", conversation_id=conversation.pk)
    fs.change_ticket_status(ticket.pk, TicketStatus.DECLINED, actor=product)
    link = FeedbackLink.objects.get(ticket=ticket)
    assert link.told_at is None

    cs.log_reply(conversation.pk, actor=manager, text="We decided not to do it, here is why…")

    conversation.refresh_from_db()
    link.refresh_from_db()
    assert conversation.needs_follow_up is False
    assert link.told_at is not None
    assert kinds(conversation)[-1] == EventKind.FOLLOW_UP_CLEARED


def test_shipping_twice_flags_once_and_skips_people_already_told(manager, product):
    conversation = factories.conversation()
    ticket = fs.create_ticket(actor=product, title="Dark mode", conversation_id=conversation.pk)
    fs.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)
    fs.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)
    assert conversation.events.filter(kind=EventKind.FOLLOW_UP_FLAGGED).count() == 1
    cs.log_reply(conversation.pk, actor=manager, text="It shipped!")
    fs.change_ticket_status(ticket.pk, TicketStatus.IN_PROGRESS, actor=product)
    fs.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)
    conversation.refresh_from_db()
    assert conversation.needs_follow_up is False


def test_linking_evidence_twice_is_a_conflict(manager):
    conversation = factories.conversation()
    ticket = fs.create_ticket(actor=manager, title="Dark mode", conversation_id=conversation.pk)
    with pytest.raises(Conflict):
        fs.link_evidence(ticket.pk, conversation.pk, actor=manager, quote="again")
    with pytest.raises(InvalidInput):
        fs.link_evidence(ticket.pk, factories.conversation().pk, actor=manager, quote="")


def test_linking_to_a_shipped_ticket_asks_to_tell_at_once(manager, product):
    ticket = fs.create_ticket(actor=product, title="Dark mode")
    fs.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)
    late = factories.conversation()
    fs.link_evidence(ticket.pk, late.pk, actor=manager, quote="please add dark mode")
    late.refresh_from_db()
    assert late.needs_follow_up is True


def test_owner_must_be_product_team(manager, product):
    ticket = fs.create_ticket(actor=product, title="Dark mode")
    with pytest.raises(InvalidInput):
        fs.update_ticket(ticket.pk, actor=product, owner=manager)
    updated = fs.update_ticket(ticket.pk, actor=product, owner=product, product_area="App")
    assert (updated.owner, updated.product_area) == (product, "App")


# Tokens


def test_tokens_are_stored_hashed_and_can_be_revoked(manager):
    token, raw = tokens.create_token(manager, name="zapier")
    stored = ApiToken.objects.get()
    assert raw not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64
    assert tokens.authenticate(raw) == manager
    assert ApiToken.objects.get().last_used_at is not None
    assert tokens.authenticate(raw + "x") is None
    tokens.revoke(token.pk)
    assert tokens.authenticate(raw) is None
