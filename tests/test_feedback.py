"""Feedback services: merging duplicate tickets, status notes, merged tickets stay put."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from engage import queries
from engage.choices import EventKind, Role, TicketStatus
from engage.errors import Conflict, InvalidInput
from engage.models import Conversation, Event, FeedbackLink, FeedbackTicket, Notification
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from tests import factories
from tests.conftest import work
from tests.test_concurrency import run_in_threads

pytestmark = pytest.mark.django_db


def ticket_with(actor, title: str, *conversations, quote: str = "I need this", **fields):
    """A ticket whose evidence is `conversations`, each linked with `quote`."""
    ticket = feedback_services.create_ticket(actor=actor, title=title, **fields)
    for conversation in conversations:
        feedback_services.link_evidence(ticket.pk, conversation.pk, actor=actor, quote=quote)
    return ticket


def linked(ticket) -> dict[int, str]:
    """The ticket's evidence as {conversation id: quote}."""
    return dict(FeedbackLink.objects.filter(ticket=ticket).values_list("conversation_id", "quote"))


def fresh(model_instance):
    return type(model_instance).objects.get(pk=model_instance.pk)


def assigned_conversation(manager, **overrides) -> Conversation:
    conversation = factories.conversation(**overrides)
    conversation_services.assign(conversation.pk, manager, actor=manager)
    return fresh(conversation)


# Merging --------------------------------------------------------------------------------------


def test_merging_moves_the_evidence_and_the_duplicate_points_to_the_kept_ticket(manager, product):
    first, second, third = (factories.conversation() for _ in range(3))
    duplicate = ticket_with(manager, "Dark theme", first, second, quote="dark please")
    kept = ticket_with(manager, "Dark mode", third, quote="night mode?")

    result = feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)

    assert result.pk == kept.pk
    assert linked(kept) == {
        first.pk: "dark please",
        second.pk: "dark please",
        third.pk: "night mode?",
    }
    assert linked(duplicate) == {}
    assert fresh(duplicate).merged_into_id == kept.pk
    assert fresh(kept).merged_into_id is None
    on_duplicate = Event.objects.get(ticket=duplicate, kind=EventKind.TICKET_MERGED)
    on_kept = Event.objects.get(ticket=kept, kind=EventKind.TICKET_MERGED)
    assert on_duplicate.actor == product
    assert on_duplicate.data["into"] == kept.pk
    assert on_kept.data["from"] == duplicate.pk
    assert sorted(on_kept.data["moved"]) == sorted([first.pk, second.pk])
    assert on_kept.data["dropped"] == []
    assert queries.tickets().get(pk=kept.pk).demand == 3


def test_a_conversation_evidence_for_both_is_kept_once_and_the_dropped_quote_is_recorded(
    manager, product
):
    shared, other = factories.conversation(), factories.conversation()
    duplicate = ticket_with(manager, "Export to Excel", shared, other, quote="xlsx please")
    kept = ticket_with(manager, "CSV export", shared, quote="a CSV would do")

    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)

    assert linked(kept) == {shared.pk: "a CSV would do", other.pk: "xlsx please"}
    event = Event.objects.get(ticket=kept, kind=EventKind.TICKET_MERGED)
    assert event.data["dropped"] == [{"conversation": shared.pk, "quote": "xlsx please"}]
    assert event.data["moved"] == [other.pk]
    assert Event.objects.get(ticket=duplicate, kind=EventKind.TICKET_MERGED).data["dropped"] == [
        {"conversation": shared.pk, "quote": "xlsx please"}
    ]
    counted = queries.tickets().get(pk=kept.pk)
    assert (counted.demand, counted.evidence_count) == (2, 2)


def test_two_conversations_of_one_person_count_once_after_a_merge(manager, product):
    first = factories.conversation(handle="ada")
    second = factories.conversation(handle="ada")
    assert first.contact_id == second.contact_id
    duplicate = ticket_with(manager, "Dupe", first)
    kept = ticket_with(manager, "Kept", second)

    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)

    counted = queries.tickets().get(pk=kept.pk)
    assert (counted.demand, counted.evidence_count) == (1, 2)


def test_untold_evidence_moved_onto_a_shipped_ticket_gets_a_follow_up_with_the_note(
    manager, product, django_capture_on_commit_callbacks, queue
):
    waiting = assigned_conversation(manager)
    already = assigned_conversation(manager)
    kept = ticket_with(manager, "Oat milk", already)
    feedback_services.change_ticket_status(
        kept.pk, TicketStatus.SHIPPED, actor=product, note="On the menu from Monday"
    )
    duplicate = ticket_with(manager, "Plant milk", waiting)
    assert not fresh(waiting).needs_follow_up

    with django_capture_on_commit_callbacks(execute=True):
        feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)
    work(queue)

    assert fresh(waiting).needs_follow_up
    flagged = Event.objects.get(conversation=waiting, kind=EventKind.FOLLOW_UP_FLAGGED)
    assert flagged.data["ticket"] == kept.pk
    assert flagged.data["status"] == TicketStatus.SHIPPED
    assert flagged.data["note"] == "On the menu from Monday"
    assert Notification.objects.filter(user=manager, conversation=waiting, ticket=kept).exists()

    # Telling the person clears it, and the kept ticket counts them as told.
    conversation_services.log_reply(waiting.pk, actor=manager, text="It shipped!")
    assert not fresh(waiting).needs_follow_up
    assert queries.tickets().get(pk=kept.pk).told_people == 1


def test_a_person_told_about_the_same_outcome_stays_told_and_others_are_asked_again(
    manager, product
):
    told_shipped = assigned_conversation(manager)
    told_declined = assigned_conversation(manager)
    shipped_dupe = ticket_with(manager, "Decaf", told_shipped)
    declined_dupe = ticket_with(manager, "No caffeine", told_declined)
    feedback_services.change_ticket_status(shipped_dupe.pk, TicketStatus.SHIPPED, actor=product)
    feedback_services.change_ticket_status(declined_dupe.pk, TicketStatus.DECLINED, actor=product)
    for conversation in (told_shipped, told_declined):
        conversation_services.log_reply(conversation.pk, actor=manager, text="Told you")
    kept = ticket_with(manager, "Decaffeinated coffee")
    feedback_services.change_ticket_status(kept.pk, TicketStatus.SHIPPED, actor=product)

    feedback_services.merge_tickets(shipped_dupe.pk, kept.pk, actor=product)
    feedback_services.merge_tickets(declined_dupe.pk, kept.pk, actor=product)

    links = {link.conversation_id: link for link in FeedbackLink.objects.filter(ticket=kept)}
    # Told it shipped, and the kept ticket shipped: nothing more to say.
    assert links[told_shipped.pk].told_at is not None
    assert not fresh(told_shipped).needs_follow_up
    # Told it was declined, but the kept ticket shipped: they must hear the news.
    assert links[told_declined.pk].told_at is None
    assert fresh(told_declined).needs_follow_up
    assert queries.tickets().get(pk=kept.pk).told_people == 1


def test_merging_onto_an_open_ticket_flags_nothing(manager, product):
    conversation = assigned_conversation(manager)
    duplicate = ticket_with(manager, "Dupe", conversation)
    kept = ticket_with(manager, "Kept")
    feedback_services.change_ticket_status(kept.pk, TicketStatus.PLANNED, actor=product)

    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)

    assert not fresh(conversation).needs_follow_up
    assert not Event.objects.filter(kind=EventKind.FOLLOW_UP_FLAGGED).exists()


def test_tickets_merged_into_the_duplicate_earlier_now_point_to_the_kept_one(manager, product):
    oldest, middle, kept = (ticket_with(manager, title) for title in ("A", "B", "C"))
    feedback_services.merge_tickets(oldest.pk, middle.pk, actor=product)

    feedback_services.merge_tickets(middle.pk, kept.pk, actor=product)

    assert fresh(oldest).merged_into_id == kept.pk
    assert fresh(middle).merged_into_id == kept.pk


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("itself", InvalidInput, "cannot be merged into itself"),
        ("unknown kept", InvalidInput, "does not exist"),
        ("unknown duplicate", InvalidInput, "does not exist"),
        ("duplicate already merged", Conflict, "was already merged into"),
        ("into a merged ticket", Conflict, "merge into that one instead"),
    ],
)
def test_merging_refuses_with_a_clear_message_and_changes_nothing(
    manager, product, case, error, message
):
    conversation = factories.conversation()
    duplicate = ticket_with(manager, "Dupe", conversation)
    kept = ticket_with(manager, "Kept")
    elsewhere = ticket_with(manager, "Elsewhere")
    pair = {
        "itself": (duplicate.pk, duplicate.pk),
        "unknown kept": (duplicate.pk, 424242),
        "unknown duplicate": (424242, kept.pk),
        "duplicate already merged": (duplicate.pk, kept.pk),
        "into a merged ticket": (duplicate.pk, kept.pk),
    }[case]
    if case == "duplicate already merged":
        feedback_services.merge_tickets(duplicate.pk, elsewhere.pk, actor=product)
    if case == "into a merged ticket":
        feedback_services.merge_tickets(kept.pk, elsewhere.pk, actor=product)
    before = (
        sorted(FeedbackLink.objects.values_list("ticket_id", "conversation_id")),
        sorted(FeedbackTicket.objects.values_list("pk", "merged_into_id")),
        Event.objects.count(),
    )

    with pytest.raises(error, match=message) as raised:
        feedback_services.merge_tickets(*pair, actor=product)

    if case in ("itself", "unknown kept"):
        assert raised.value.field == "into"
    if case == "unknown duplicate":
        assert raised.value.field == "ticket"
    after = (
        sorted(FeedbackLink.objects.values_list("ticket_id", "conversation_id")),
        sorted(FeedbackTicket.objects.values_list("pk", "merged_into_id")),
        Event.objects.count(),
    )
    assert after == before


@pytest.mark.parametrize("who", ["manager", "outsider"])
def test_only_the_product_team_and_staff_merge(request, manager, product, staff, who):
    duplicate = ticket_with(manager, "Dupe", factories.conversation())
    kept = ticket_with(manager, "Kept")

    with pytest.raises(PermissionDenied):
        feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=request.getfixturevalue(who))
    assert fresh(duplicate).merged_into_id is None

    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=staff)
    assert fresh(duplicate).merged_into_id == kept.pk


def test_a_merged_ticket_takes_no_more_evidence_or_changes(manager, product):
    duplicate = ticket_with(manager, "Dupe")
    kept = ticket_with(manager, "Kept")
    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)
    conversation = factories.conversation()

    calls = [
        lambda: feedback_services.link_evidence(
            duplicate.pk, conversation.pk, actor=manager, quote="q"
        ),
        lambda: feedback_services.change_ticket_status(
            duplicate.pk, TicketStatus.PLANNED, actor=product
        ),
        lambda: feedback_services.update_ticket(duplicate.pk, actor=product, title="Renamed"),
    ]
    for call in calls:
        with pytest.raises(Conflict, match=f"merged into #{kept.pk}"):
            call()
    assert fresh(duplicate).title == "Dupe"
    assert not FeedbackLink.objects.filter(conversation=conversation).exists()


def test_merged_tickets_leave_the_ticket_list(manager, product):
    duplicate = ticket_with(manager, "Dupe", factories.conversation())
    kept = ticket_with(manager, "Kept")
    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)

    assert [ticket.pk for ticket in queries.ticket_list()] == [kept.pk]


# The status note -------------------------------------------------------------------------------


def test_the_status_note_lands_in_the_status_event_and_every_follow_up(manager, product):
    first, second = assigned_conversation(manager), assigned_conversation(manager)
    ticket = ticket_with(manager, "Gluten-free pastries", first, second)

    feedback_services.change_ticket_status(
        ticket.pk, TicketStatus.SHIPPED, actor=product, note="  In every shop from May 1  "
    )

    status_event = Event.objects.get(ticket=ticket, kind=EventKind.TICKET_STATUS_CHANGED)
    assert status_event.reason == "In every shop from May 1"
    assert status_event.data == {"from": "new", "to": "shipped"}
    flags = Event.objects.filter(kind=EventKind.FOLLOW_UP_FLAGGED).order_by("conversation_id")
    assert [(event.conversation_id, event.data["note"]) for event in flags] == [
        (first.pk, "In every shop from May 1"),
        (second.pk, "In every shop from May 1"),
    ]


def test_evidence_linked_after_shipping_gets_the_same_note(manager, product):
    ticket = ticket_with(manager, "Bigger cups")
    feedback_services.change_ticket_status(
        ticket.pk, TicketStatus.DECLINED, actor=product, note="The machines only fit 300 ml"
    )
    late = assigned_conversation(manager)

    feedback_services.link_evidence(ticket.pk, late.pk, actor=manager, quote="bigger please")

    flagged = Event.objects.get(conversation=late, kind=EventKind.FOLLOW_UP_FLAGGED)
    assert flagged.data["note"] == "The machines only fit 300 ml"
    assert fresh(late).needs_follow_up


def test_a_status_change_without_a_note_stores_no_note(manager, product):
    conversation = assigned_conversation(manager)
    ticket = ticket_with(manager, "Loyalty card", conversation)

    feedback_services.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)

    flagged = Event.objects.get(conversation=conversation, kind=EventKind.FOLLOW_UP_FLAGGED)
    assert "note" not in flagged.data
    assert Event.objects.get(ticket=ticket, kind=EventKind.TICKET_STATUS_CHANGED).reason == ""


# Closing the loop ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["closed", "snoozed"])
def test_shipping_reopens_a_closed_or_snoozed_conversation_so_its_follow_up_shows(
    manager, product, state
):
    conversation = assigned_conversation(manager)
    ticket = ticket_with(manager, "Oat milk", conversation)
    until = timezone.now() + timedelta(days=5) if state == "snoozed" else None
    conversation_services.set_state(conversation.pk, state, actor=manager, snoozed_until=until)
    open_one = assigned_conversation(manager)
    feedback_services.link_evidence(ticket.pk, open_one.pk, actor=manager, quote="me too")

    feedback_services.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)

    reopened = fresh(conversation)
    assert (reopened.state, reopened.snoozed_until, reopened.needs_follow_up) == (
        "open",
        None,
        True,
    )
    change = Event.objects.filter(conversation=conversation, kind=EventKind.STATE_CHANGED).last()
    assert change.data == {"from": state, "to": "open", "until": None}
    assert change.actor == product
    assert "Oat milk" in change.reason
    # An open one just gets its follow-up.
    assert not Event.objects.filter(conversation=open_one, kind=EventKind.STATE_CHANGED).exists()
    assert fresh(open_one).needs_follow_up


# Concurrency -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_merging_two_tickets_into_each_other_at_once_merges_one_way_only():
    manager = factories.user("manager")
    product = factories.user("product", role=Role.PRODUCT_TEAM)
    first = ticket_with(manager, "Dark mode", factories.conversation())
    second = ticket_with(manager, "Night theme", factories.conversation())
    pairs = [(first.pk, second.pk), (second.pk, first.pk)]

    results = run_in_threads(2, lambda i: feedback_services.merge_tickets(*pairs[i], actor=product))

    refused = [result for result in results if isinstance(result, Exception)]
    assert len(refused) == 1
    assert isinstance(refused[0], Conflict)
    merged = FeedbackTicket.objects.filter(merged_into__isnull=False)
    assert merged.count() == 1
    kept = FeedbackTicket.objects.get(merged_into__isnull=True)
    assert FeedbackLink.objects.filter(ticket=kept).count() == 2
    assert Event.objects.filter(kind=EventKind.TICKET_MERGED).count() == 2
