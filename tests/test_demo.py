"""`manage.py demo`: idempotent, believable, every stage reached by the rules; and the
synthetic rows obey the same rules as the ones the services write."""

import importlib
import re
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from engage import workflow
from engage.choices import Direction, EventKind, Role, Stage, TicketStatus
from engage.management.commands import demo
from engage.models import (
    FUNNEL_RECORD,
    Contact,
    Conversation,
    Event,
    FeedbackLink,
    FeedbackTicket,
    Message,
    Note,
    Notification,
    Source,
    Tag,
)
from engage.services.conversations import cycle_facts, first_response_due

User = get_user_model()
COUNTED = (Source, Contact, Tag, Conversation, Message, Note, Event, FeedbackTicket, FeedbackLink,
           Notification, User)  # fmt: skip
LOGIN = re.compile(r"^  (\w+)\s+(\S+)\s", re.MULTILINE)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run_demo(*args) -> str:
    out = StringIO()
    call_command("demo", *args, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


def assert_cycle_rules_hold(conversations) -> None:
    """Every stage a conversation is in was reachable: each guard on the way is met."""
    for conversation in conversations:
        facts = cycle_facts(conversation)
        reached = workflow.ORDER.index(Stage(conversation.stage))
        for stage in workflow.ORDER[1 : reached + 1]:
            assert workflow.missing_for(facts, stage) is None, (conversation.external_id, stage)


def test_demo_loads_once_and_a_second_run_adds_nothing(db):
    first = run_demo()
    after_first = counts()
    second = run_demo()

    assert after_first == counts()
    assert after_first["Conversation"] == len(demo.POSTS) >= 40
    assert f"Demo data: {len(demo.POSTS)} new conversation(s)" in first
    assert "Demo data: 0 new conversation(s)" in second
    assert "Open http://127.0.0.1:8000/ and log in as" in second


def test_demo_covers_every_stage_through_the_rules(db):
    run_demo()
    conversations = Conversation.objects.all()

    assert set(conversations.values_list("stage", flat=True)) == set(Stage.values)
    assert set(conversations.values_list("language", flat=True)) == {"it", "en"}
    assert set(conversations.values_list("channel", flat=True)) >= {
        "twitter", "facebook", "instagram", "blog", "forum", "review", "email",
    }  # fmt: skip
    assert_cycle_rules_hold(conversations)
    # Each stage past listen was entered by an advance, one step at a time.
    for conversation in conversations.filter(cycle=1).exclude(stage=Stage.LISTEN):
        moves = list(
            conversation.events.filter(kind=EventKind.STAGE_CHANGED, cycle=1).values_list(
                "from_stage", "to_stage"
            )
        )
        reached = workflow.ORDER.index(Stage(conversation.stage))
        assert moves == [(workflow.ORDER[i], workflow.ORDER[i + 1]) for i in range(reached)]


def test_demo_has_restarted_conversations_with_a_reason(db):
    run_demo()

    restarted = Conversation.objects.filter(cycle=2)
    assert restarted.count() >= 2
    for conversation in restarted:
        event = conversation.events.get(kind=EventKind.RESTARTED)
        assert event.reason
        assert event.to_stage == Stage.LISTEN
    assert restarted.exclude(stage=Stage.LISTEN).exists()


def test_demo_has_a_shipped_ticket_whose_people_are_being_told(db):
    run_demo()

    shipped = FeedbackTicket.objects.get(status=TicketStatus.SHIPPED)
    links = shipped.links.select_related("conversation")
    assert links.count() >= 2
    told = [link for link in links if link.told_at is not None]
    untold = [link for link in links if link.told_at is None]
    assert len(told) == 1
    assert not told[0].conversation.needs_follow_up
    assert untold
    assert all(link.conversation.needs_follow_up for link in untold)
    assert Event.objects.filter(kind=EventKind.FOLLOW_UP_CLEARED).count() == 1
    # Several tickets, some backed by more than one person, in several statuses.
    assert FeedbackTicket.objects.count() >= 4
    assert len(set(FeedbackTicket.objects.values_list("status", flat=True))) >= 4
    assert any(ticket.links.count() >= 2 for ticket in FeedbackTicket.objects.all())


def test_demo_users_have_their_roles_and_can_log_in_with_the_printed_passwords(db, client):
    run_demo()
    logins = dict(LOGIN.findall(run_demo()))  # the second run must print usable logins too

    assert set(logins) == {"admin", "manager", "giulia", "product"}
    for username, password in logins.items():
        assert client.login(username=username, password=password), username
        client.logout()
    groups = {user.username: set(user.groups.values_list("name", flat=True))
              for user in User.objects.all()}  # fmt: skip
    assert groups["manager"] == groups["giulia"] == {Role.COMMUNITY_MANAGER}
    assert groups["product"] == {Role.PRODUCT_TEAM}
    assert User.objects.get(username="admin").is_superuser
    assert not User.objects.get(username="manager").is_staff


def test_password_option_sets_the_same_password_for_everyone(db, client):
    run_demo("--password", "caffe-aurora-demo")

    for username in ("admin", "manager", "giulia", "product"):
        assert client.login(username=username, password="caffe-aurora-demo")


def synthetic():
    return Conversation.objects.filter(external_id__startswith="synthetic-")


def assert_synthetic_rows_are_valid(expected: int, *, history_times: bool = True) -> None:
    rows = synthetic().select_related("source")
    assert rows.count() == expected
    assert not rows.filter(stage__in=[Stage.INTERACT, Stage.REACT, Stage.SELL],
                           assignee__isnull=True).exists()  # fmt: skip
    assert_cycle_rules_hold(rows)
    for conversation in rows:
        opening = conversation.messages.get(direction=Direction.INBOUND)
        assert opening.external_id == conversation.external_id
        assert opening.text == conversation.text
        assert conversation.contact.channel == conversation.channel == conversation.source.channel
        assert conversation.first_response_due_at == first_response_due(
            conversation.received_at, conversation.priority
        )
        assert conversation.events.filter(kind=EventKind.CREATED).count() == 1
        if conversation.stage in (Stage.REACT, Stage.SELL):
            reply = conversation.messages.get(direction=Direction.OUTBOUND)
            assert conversation.first_response_at == reply.sent_at
            logged = conversation.events.get(kind=EventKind.REPLY_LOGGED)
            assert logged.data == {"message": reply.pk}
    if history_times:
        assert_funnel_record_matches_the_history(rows)


FUNNEL_RECORD = list(FUNNEL_RECORD)


def assert_funnel_record_matches_the_history(rows) -> None:
    """The funnel's record the generator writes is the one migration 0009 works out from the
    Events it writes (which is how the services keep it)."""
    written = {row["pk"]: row for row in rows.values("pk", *FUNNEL_RECORD)}
    assert any(row["time_in_listen"] for row in written.values())
    rows.update(**dict.fromkeys(FUNNEL_RECORD))
    migration = importlib.import_module("engage.migrations.0009_funnel_record")
    migration.record_funnel(django_apps, SimpleNamespace(connection=connection))
    assert {row["pk"]: row for row in rows.values("pk", *FUNNEL_RECORD)} == written


def test_synthetic_conversations_are_added_in_batches_and_obey_the_rules(db):
    run_demo()
    before = Conversation.objects.count()

    out = run_demo("--conversations", "200", "--batch-size", "64", "--seed", "7")

    assert Conversation.objects.count() == before + 200
    assert "Added 200 synthetic conversations" in out
    assert "rows/s" in out
    assert_synthetic_rows_are_valid(200)
    assert set(synthetic().values_list("stage", flat=True)) == set(Stage.values)
    assert set(synthetic().values_list("language", flat=True)) == {"it", "en"}

    run_demo("--conversations", "50", "--seed", "7")  # same seed: ids must not collide
    assert synthetic().count() == 250


def test_synthetic_conversations_arrive_over_the_days_asked_for(db):
    run_demo("--conversations", "40", "--days", "2", "--seed", "5")

    earliest = synthetic().order_by("received_at").values_list("received_at", flat=True)[0]
    assert timezone.now() - earliest <= timedelta(days=2)
    with pytest.raises(CommandError, match="--days"):
        run_demo("--conversations", "1", "--days", "0")


def test_synthetic_tickets_and_evidence(db):
    run_demo("--conversations", "120", "--seed", "4")
    before = FeedbackTicket.objects.count(), FeedbackLink.objects.count()

    out = run_demo("--tickets", "12", "--links", "30", "--seed", "4")

    assert "Added 12 synthetic tickets and 30 evidence links" in out
    tickets = FeedbackTicket.objects.order_by("-pk")[:12]
    assert FeedbackTicket.objects.count() == before[0] + 12
    assert FeedbackLink.objects.count() == before[1] + 30
    for ticket in tickets:
        assert ticket.events.filter(kind=EventKind.TICKET_CREATED).count() == 1
        changed = ticket.events.filter(kind=EventKind.TICKET_STATUS_CHANGED)
        assert changed.count() == (1 if ticket.status in {"shipped", "declined"} else 0)
    links = FeedbackLink.objects.order_by("-pk")[:30]
    for link in links:
        # Evidence from a conversation that reached react, with its Event, told only after
        # a ship or a decline.
        assert link.conversation.stage in {Stage.REACT, Stage.SELL}
        linked = link.conversation.events.filter(kind=EventKind.FEEDBACK_LINKED)
        assert linked.filter(data__link=link.pk).count() == 1
        assert link.told_at is None or link.ticket.status in {"shipped", "declined"}
    # Demand follows a power law: a few tickets draw most of the evidence.
    demand = sorted(
        (FeedbackLink.objects.filter(ticket=ticket).count() for ticket in tickets), reverse=True
    )
    assert demand[0] >= 3 * demand[len(demand) // 2]
    with pytest.raises(CommandError, match="--links needs --tickets"):
        run_demo("--links", "3")


def test_synthetic_rows_are_valid_with_the_portable_writer_too(db, monkeypatch):
    monkeypatch.setattr(demo, "CopyWriter", demo.OrmWriter)
    monkeypatch.setattr(demo, "SqliteWriter", demo.OrmWriter)

    out = run_demo("--conversations", "60", "--batch-size", "25", "--seed", "3")

    assert "(bulk_create)" in out
    # bulk_create stamps the Events with the time of loading (auto_now_add), so their
    # history does not hold the story's times the funnel's record was written from.
    assert_synthetic_rows_are_valid(60, history_times=False)
