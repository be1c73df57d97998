"""The counts stored on a ticket (demand, evidence, told, latest evidence) follow its links:
the services recount them in the transaction that changes the links, the migration fills
them for existing data, the synthetic demo data gets them too."""

import importlib
import io
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from engage.choices import Role, TicketStatus
from engage.errors import Conflict
from engage.models import FeedbackLink, FeedbackTicket
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from engage.services.merge import merge
from tests import factories
from tests.conftest import run_in_threads

pytestmark = pytest.mark.django_db


def stored(ticket) -> dict:
    """The counts saved on the ticket's row."""
    return FeedbackTicket.objects.values(*FeedbackTicket.COUNTS).get(pk=ticket.pk)


def recounted(ticket) -> dict:
    """The counts as the links add up now."""
    return feedback_services.ticket_counts([ticket.pk]).get(
        ticket.pk, feedback_services.NO_EVIDENCE
    )


def counts(ticket) -> tuple:
    """(demand, evidence, told links, told people) as stored, after checking that they are
    what the links add up to."""
    row = stored(ticket)
    assert row == recounted(ticket)
    return row["demand"], row["evidence_count"], row["told_count"], row["told_people"]


def latest_link(ticket) -> FeedbackLink:
    return FeedbackLink.objects.filter(ticket=ticket).order_by("-created_at", "-pk").first()


def ticket_with(actor, title: str, *conversations, **fields) -> FeedbackTicket:
    ticket = feedback_services.create_ticket(actor=actor, title=title, **fields)
    for conversation in conversations:
        feedback_services.link_evidence(ticket.pk, conversation.pk, actor=actor, quote="I need it")
    return ticket


def assigned(manager, **overrides):
    conversation = factories.conversation(**overrides)
    conversation_services.assign(conversation.pk, manager, actor=manager)
    return conversation


# Linking --------------------------------------------------------------------------------------


def test_a_new_ticket_has_no_counts(manager):
    ticket = feedback_services.create_ticket(actor=manager, title="Dark mode")

    assert counts(ticket) == (0, 0, 0, 0)
    assert stored(ticket)["latest_evidence_at"] is None
    assert (ticket.demand, ticket.evidence_count, ticket.latest_evidence_at) == (0, 0, None)


def test_a_ticket_opened_from_a_conversation_counts_it(manager):
    conversation = factories.conversation()

    ticket = feedback_services.create_ticket(
        actor=manager, title="Dark mode", conversation_id=conversation.pk, quote="dark please"
    )

    assert counts(ticket) == (1, 1, 0, 0)
    # The ticket returned carries them too.
    assert (ticket.demand, ticket.evidence_count) == (1, 1)
    assert ticket.latest_evidence_at == latest_link(ticket).created_at


def test_demand_counts_people_and_evidence_counts_conversations(manager):
    ticket = ticket_with(manager, "Descaling reminder")
    ada_on_twitter = factories.conversation(handle="ada", channel="twitter")
    ada_again = factories.conversation(handle="ada", channel="twitter")
    ada_on_facebook = factories.conversation(handle="ada", channel="facebook")
    assert ada_on_twitter.contact_id == ada_again.contact_id != ada_on_facebook.contact_id

    feedback_services.link_evidence(ticket.pk, ada_on_twitter.pk, actor=manager, quote="q")
    assert counts(ticket) == (1, 1, 0, 0)
    feedback_services.link_evidence(ticket.pk, ada_again.pk, actor=manager, quote="q")
    assert counts(ticket) == (1, 2, 0, 0)
    # Another contact (the same name on another network is another contact).
    feedback_services.link_evidence(ticket.pk, ada_on_facebook.pk, actor=manager, quote="q")

    assert counts(ticket) == (2, 3, 0, 0)
    assert stored(ticket)["latest_evidence_at"] == latest_link(ticket).created_at


def test_linking_adds_to_the_counts_without_recounting_the_links(manager):
    ticket = ticket_with(
        manager, "Descaling reminder", *(factories.conversation() for _ in range(3))
    )
    conversation = factories.conversation()

    with CaptureQueriesContext(connection) as queries:
        feedback_services.link_evidence(ticket.pk, conversation.pk, actor=manager, quote="q")

    assert counts(ticket) == (4, 4, 0, 0)
    # A recount joins every link to its conversation: too slow for the most asked tickets.
    assert not [q["sql"] for q in queries if "COUNT(DISTINCT" in q["sql"].upper()]


def test_a_refused_link_changes_no_count(manager):
    conversation = factories.conversation()
    ticket = ticket_with(manager, "Dark mode", conversation)

    with pytest.raises(Conflict):
        feedback_services.link_evidence(ticket.pk, conversation.pk, actor=manager, quote="again")

    assert counts(ticket) == (1, 1, 0, 0)


# Telling the people -----------------------------------------------------------------------------


def test_telling_a_person_counts_the_link_and_the_person_once(manager, product):
    first = assigned(manager, handle="ada")
    second = assigned(manager, handle="ada")
    other = assigned(manager, handle="bob")
    ticket = ticket_with(manager, "Oat milk", first, second, other)
    feedback_services.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)
    assert counts(ticket) == (2, 3, 0, 0)

    conversation_services.log_reply(first.pk, actor=manager, text="It shipped!")
    assert counts(ticket) == (2, 3, 1, 1)
    conversation_services.log_reply(second.pk, actor=manager, text="It shipped!")
    assert counts(ticket) == (2, 3, 2, 1)
    conversation_services.log_reply(other.pk, actor=manager, text="It shipped!")
    assert counts(ticket) == (2, 3, 3, 2)


def test_linking_to_a_shipped_ticket_counts_the_person_untold_until_told(manager, product):
    ticket = ticket_with(manager, "Oat milk", assigned(manager))
    feedback_services.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)
    late = assigned(manager)

    feedback_services.link_evidence(ticket.pk, late.pk, actor=manager, quote="oat milk?")
    assert counts(ticket) == (2, 2, 0, 0)
    conversation_services.log_reply(late.pk, actor=manager, text="It is there already")

    assert counts(ticket) == (2, 2, 1, 1)


# Merging tickets --------------------------------------------------------------------------------


def test_merging_tickets_recounts_both(manager, product):
    shared = factories.conversation(handle="ada")
    ada_again = factories.conversation(handle="ada")
    bob = factories.conversation(handle="bob")
    duplicate = ticket_with(manager, "Dark theme", shared, ada_again, bob)
    kept = ticket_with(manager, "Dark mode", shared)
    assert counts(duplicate) == (2, 3, 0, 0)
    assert counts(kept) == (1, 1, 0, 0)

    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)

    # The shared conversation counts once; Ada once, however many conversations.
    assert counts(kept) == (2, 3, 0, 0)
    # The duplicate is left with nothing (and off the board anyway).
    assert counts(duplicate) == (0, 0, 0, 0)
    assert stored(duplicate)["latest_evidence_at"] is None
    assert stored(kept)["latest_evidence_at"] == latest_link(kept).created_at


def test_merging_onto_another_outcome_forgets_who_was_told(manager, product):
    told = assigned(manager)
    duplicate = ticket_with(manager, "No caffeine", told)
    feedback_services.change_ticket_status(duplicate.pk, TicketStatus.DECLINED, actor=product)
    conversation_services.log_reply(told.pk, actor=manager, text="Sorry, not planned")
    assert counts(duplicate) == (1, 1, 1, 1)
    kept = ticket_with(manager, "Decaf", assigned(manager))
    feedback_services.change_ticket_status(kept.pk, TicketStatus.SHIPPED, actor=product)

    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)

    # Told it was declined; the kept ticket shipped: they must hear again.
    assert counts(kept) == (2, 2, 0, 0)
    assert counts(duplicate) == (0, 0, 0, 0)


# Merging conversations ------------------------------------------------------------------------


def test_merging_conversations_of_two_people_counts_the_kept_person(manager):
    ada, ada_elsewhere = factories.conversation(handle="ada"), factories.conversation(handle="ada")
    bob = factories.conversation(handle="bob")
    ticket = ticket_with(manager, "Descaling reminder", ada, bob)
    other = ticket_with(manager, "Spare parts", bob)
    assert counts(ticket) == (2, 2, 0, 0)

    # Bob's conversation was Ada's all along (her other account): it goes into hers.
    merge(bob.pk, ada_elsewhere.pk, actor=manager)

    assert counts(ticket) == (1, 2, 0, 0)
    assert counts(other) == (1, 1, 0, 0)
    assert FeedbackLink.objects.get(ticket=other).conversation_id == ada_elsewhere.pk


def test_merging_a_conversation_into_one_linked_to_the_same_ticket_keeps_one_link(manager):
    kept, duplicate = factories.conversation(handle="ada"), factories.conversation(handle="bob")
    ticket = ticket_with(manager, "Descaling reminder", kept, duplicate)
    assert counts(ticket) == (2, 2, 0, 0)

    merge(duplicate.pk, kept.pk, actor=manager)

    assert counts(ticket) == (1, 1, 0, 0)


def test_a_merge_that_changes_no_count_writes_no_ticket(manager):
    kept, duplicate = factories.conversation(handle="ada"), factories.conversation(handle="ada")
    ticket = ticket_with(manager, "Descaling reminder", duplicate, factories.conversation())
    before = stored(ticket)

    with CaptureQueriesContext(connection) as queries:
        merge(duplicate.pk, kept.pk, actor=manager)

    assert stored(ticket) == before
    assert counts(ticket) == (2, 2, 0, 0)
    table = FeedbackTicket._meta.db_table
    assert not [q["sql"] for q in queries if q["sql"].startswith(f'UPDATE "{table}"')]


# Concurrency ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_people_told_at_the_same_time_are_all_counted():
    manager = factories.user("manager")
    product = factories.user("product", role=Role.PRODUCT_TEAM)
    # Three people, each in two conversations.
    conversations = [assigned(manager, handle=name) for name in ("ada", "bob", "cy") * 2]
    ticket = ticket_with(manager, "Oat milk", *conversations)
    feedback_services.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)

    results = run_in_threads(
        len(conversations),
        lambda i: conversation_services.log_reply(
            conversations[i].pk, actor=manager, text="Shipped!"
        ),
    )

    assert not [result for result in results if isinstance(result, Exception)]
    # Each waited for the others to commit: no count misses one, and each person's second
    # conversation found the first told.
    assert counts(ticket) == (3, 6, 6, 3)


# Filling existing data ------------------------------------------------------------------------


def test_the_migration_fills_the_counts_the_services_keep(manager, product):
    ada, ada_again, bob = (factories.conversation(handle=h) for h in ("ada", "ada", "bob"))
    told = assigned(manager, handle="cy")
    busy = ticket_with(manager, "Descaling reminder", ada, ada_again, bob, told)
    feedback_services.change_ticket_status(busy.pk, TicketStatus.SHIPPED, actor=product)
    conversation_services.log_reply(told.pk, actor=manager, text="It shipped!")
    single = ticket_with(manager, "Spare parts", bob)
    empty = ticket_with(manager, "Nobody asked")
    duplicate = ticket_with(manager, "Dupe", factories.conversation())
    feedback_services.merge_tickets(duplicate.pk, single.pk, actor=product)
    kept_by_services = {
        pk: row
        for pk, *row in FeedbackTicket.objects.order_by("pk").values_list(
            "pk", *FeedbackTicket.COUNTS
        )
    }
    # What a database that existed before the counts had: the columns' defaults.
    FeedbackTicket.objects.update(
        demand=0, evidence_count=0, told_count=0, told_people=0, latest_evidence_at=None
    )
    migration = importlib.import_module("engage.migrations.0010_ticket_counts")

    migration.count_evidence(django_apps, SimpleNamespace(connection=connection))

    filled = {
        pk: row
        for pk, *row in FeedbackTicket.objects.order_by("pk").values_list(
            "pk", *FeedbackTicket.COUNTS
        )
    }
    assert filled == kept_by_services
    assert filled[busy.pk][:4] == [3, 4, 1, 1]
    assert filled[single.pk][:4] == [2, 2, 0, 0]
    assert filled[empty.pk] == [0, 0, 0, 0, None]
    assert filled[duplicate.pk] == [0, 0, 0, 0, None]


# The synthetic demo data ----------------------------------------------------------------------


def test_the_synthetic_tickets_carry_their_counts(db):
    call_command("demo", "--conversations", "150", "--seed", "4", stdout=io.StringIO())
    before = set(FeedbackTicket.objects.values_list("pk", flat=True))

    call_command("demo", "--tickets", "15", "--links", "60", "--seed", "4", stdout=io.StringIO())

    tickets = list(FeedbackTicket.objects.exclude(pk__in=before))
    assert len(tickets) == 15
    assert sum(stored(ticket)["evidence_count"] for ticket in tickets) == 60
    for ticket in tickets:
        assert stored(ticket) == recounted(ticket)
    # The curated demo's tickets went through the services.
    for ticket in FeedbackTicket.objects.filter(pk__in=before):
        assert stored(ticket) == recounted(ticket)
