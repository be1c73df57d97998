"""Concurrency on PostgreSQL: row locks, SKIP LOCKED and versions keep racing users apart."""

import pytest
from django.db import connection

from engage.choices import EventKind, Stage
from engage.errors import TransitionNotAllowed, VersionConflict
from engage.models import Conversation, Event
from engage.services import conversations as cs
from tests import factories
from tests.conftest import run_in_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks and SKIP LOCKED need PostgreSQL; CI runs this with DATABASE_URL set",
    ),
]


def test_eight_claimers_get_distinct_conversations():
    managers = [factories.user(f"claimer{i}") for i in range(8)]
    for _ in range(100):
        factories.conversation()

    def claim_until_empty(i):
        claimed = []
        while (conversation := cs.claim_next(actor=managers[i])) is not None:
            claimed.append(conversation.pk)
        return claimed

    results = run_in_threads(8, claim_until_empty)

    assert not [r for r in results if isinstance(r, Exception)]
    every_claim = [pk for claimed in results for pk in claimed]
    assert len(every_claim) == 100
    assert len(set(every_claim)) == 100
    assert Conversation.objects.filter(assignee__isnull=True).count() == 0
    assert Event.objects.filter(kind=EventKind.ASSIGNED).count() == 100


def test_two_concurrent_advances_produce_one_event():
    manager = factories.user("racer")
    conversation = factories.conversation()
    cs.assign(conversation.pk, manager, actor=manager)  # version 2

    results = run_in_threads(
        2, lambda i: cs.advance(conversation.pk, actor=manager, expected_version=2)
    )

    winners = [r for r in results if isinstance(r, Conversation)]
    losers = [r for r in results if isinstance(r, VersionConflict)]
    assert (len(winners), len(losers)) == (1, 1)
    conversation.refresh_from_db()
    assert (conversation.stage, conversation.version) == (Stage.INTERACT, 3)
    assert (
        Event.objects.filter(conversation=conversation, kind=EventKind.STAGE_CHANGED).count() == 1
    )


def test_two_concurrent_advances_to_the_same_stage_without_versions_move_once():
    manager = factories.user("racer")
    conversation = factories.conversation()
    cs.assign(conversation.pk, manager, actor=manager)

    results = run_in_threads(
        2, lambda i: cs.advance(conversation.pk, actor=manager, to=Stage.INTERACT)
    )

    assert sum(isinstance(r, Conversation) for r in results) == 1
    assert sum(isinstance(r, TransitionNotAllowed) for r in results) == 1
    assert (
        Event.objects.filter(conversation=conversation, kind=EventKind.STAGE_CHANGED).count() == 1
    )


def test_concurrent_creates_of_one_item_store_it_once():
    item = factories.item(external_id="race-1")
    results = run_in_threads(6, lambda i: cs.create_conversation(item))
    assert not [r for r in results if isinstance(r, Exception)]
    assert sum(created for _conversation, created in results) == 1
    assert len({conversation.pk for conversation, _created in results}) == 1
    assert Conversation.objects.count() == 1


def test_four_integrations_pushing_the_same_batch_at_once_store_each_item_once():
    from engage.items import parse_item
    from engage.models import Contact, Message
    from engage.services.ingest import ingest

    batch = [
        parse_item(
            {
                "source": "race",
                "external_id": str(n),
                "channel": "twitter",
                "author": {"handle": f"@p{n % 40}"},
                "text": f"Post number {n}",
                "in_reply_to": str(n - 1) if n % 5 else "",
            }
        )
        for n in range(300)
    ]

    results = run_in_threads(4, lambda i: ingest(batch))

    assert not [r for r in results if isinstance(r, Exception)]
    assert Message.objects.count() == 300
    assert Contact.objects.count() == 40
    # Every caller learns the same conversation for each item, whoever stored it.
    by_item = [{outcomes[n].conversation for outcomes in results} for n in range(300)]
    assert all(len(ids) == 1 for ids in by_item)
    # Each thread of five posts is one conversation.
    assert Conversation.objects.count() == 60
    assert Event.objects.filter(kind=EventKind.CREATED).count() == 60


def test_a_deadlock_between_linking_and_merging_ends_with_both_writes_answered(monkeypatch):
    """link_evidence locks the ticket, then the conversation; merge locks the conversations,
    then the tickets of the duplicate's evidence. Forced to meet half-way, they deadlock:
    PostgreSQL aborts one, services.retry_on_deadlock runs it again, and neither user gets
    an error page; the ticket's stored counts are still what its links say."""
    import threading

    from engage.errors import Conflict
    from engage.models import FeedbackLink
    from engage.services import feedback as fs
    from engage.services import merge as merge_service

    manager = factories.user("merger")
    duplicate, kept = factories.conversation(), factories.conversation()
    ticket = fs.create_ticket(actor=manager, title="Battery drains")
    fs.link_evidence(ticket.pk, duplicate.pk, actor=manager, quote="drains")
    halfway = threading.Barrier(2, timeout=20)
    waited = set()

    def meet_halfway(function):
        def locked_one_wants_the_other(*args, **kwargs):
            if threading.get_ident() not in waited:  # the first attempt only
                waited.add(threading.get_ident())
                halfway.wait()
            return function(*args, **kwargs)

        return locked_one_wants_the_other

    monkeypatch.setattr(fs, "lock_conversation", meet_halfway(fs.lock_conversation))
    monkeypatch.setattr(
        merge_service, "refresh_ticket_counts", meet_halfway(merge_service.refresh_ticket_counts)
    )

    def write(i):
        if i == 0:
            return fs.link_evidence(ticket.pk, kept.pk, actor=manager, quote="same")
        return merge_service.merge(duplicate.pk, kept.pk, actor=manager)

    linked, merged = run_in_threads(2, write)

    # The link ran first, or after the merge had moved the duplicate's evidence to `kept`.
    assert isinstance(linked, FeedbackLink | Conflict), linked
    assert isinstance(merged, Conversation), merged
    assert list(FeedbackLink.objects.values_list("ticket", "conversation")) == [
        (ticket.pk, kept.pk)
    ]
    ticket.refresh_from_db()
    counts = fs.ticket_counts([ticket.pk])[ticket.pk]
    assert {name: getattr(ticket, name) for name in counts} == counts
