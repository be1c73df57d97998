"""Enrichment after storage: language, sentiment, default priority and due time, routing,
round robin, and negative feedback restarting the cycle. Each job runs twice."""

from datetime import UTC, datetime, timedelta

import pytest

from engage import analysis, tasks
from engage.choices import EventKind, Priority, Role, Sentiment, Stage
from engage.items import parse_item
from engage.models import Availability, Conversation, Message, Notification, RoutingRule, Tag, Team
from engage.services import conversations as services
from engage.services import enrichment
from engage.services.ingest import ingest
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def stored(external_id, text, *, handle="@ada", **fields) -> Conversation:
    body = {
        "source": fields.pop("source", "push"),
        "external_id": external_id,
        "channel": fields.pop("channel", "twitter"),
        "author": {"handle": handle},
        "text": text,
        "created_at": fields.pop("at", T0).isoformat(),
        **fields,
    }
    outcome = ingest([parse_item(body)])[0]
    return Conversation.objects.get(pk=outcome.conversation)


def enrich_all() -> int:
    """Run the enrichment job for everything stored, twice: the second run must do nothing."""
    ids = list(Message.objects.values_list("pk", flat=True))
    done = tasks.enrich_messages(ids)
    assert tasks.enrich_messages(ids) == 0
    return done


def available(user, max_open=None):
    return Availability.objects.create(user=user, is_available=True, max_open=max_open)


def test_an_angry_italian_refund_request_becomes_urgent_and_due_within_the_hour():
    conversation = stored("1", "Pessimo servizio, il pacco è arrivato rotto: voglio un rimborso!")

    assert enrich_all() == 1

    conversation.refresh_from_db()
    assert conversation.language == "it"
    assert conversation.sentiment == Sentiment.NEGATIVE
    assert conversation.priority == Priority.URGENT
    assert conversation.first_response_due_at == T0 + timedelta(hours=1)
    event = conversation.events.get(kind=EventKind.PRIORITY_CHANGED)
    assert event.data == {"from": "normal", "to": "urgent", "by": "signals"}
    assert Message.objects.get().enriched_at is not None


def test_a_happy_english_post_stays_normal():
    conversation = stored("1", "Love the new caramel latte, great job!")

    enrich_all()

    conversation.refresh_from_db()
    assert (conversation.language, conversation.sentiment) == ("en", Sentiment.POSITIVE)
    assert conversation.priority == Priority.NORMAL
    assert conversation.first_response_due_at == T0 + timedelta(hours=24)
    assert not conversation.events.filter(kind=EventKind.PRIORITY_CHANGED).exists()


def test_writing_again_before_any_answer_raises_the_priority():
    conversation = stored("1", "What time do you open on Sundays?")
    stored(
        "2", "Hello? What time do you open on Sunday?", in_reply_to="1", at=T0 + timedelta(hours=3)
    )

    enrich_all()

    conversation.refresh_from_db()
    assert conversation.priority >= Priority.HIGH


def test_negative_feedback_past_listen_restarts_the_cycle_and_tells_the_assignee(manager):
    conversation = stored("1", "Do you ship to Milan?")
    enrich_all()
    services.assign(conversation.pk, manager, actor=manager)
    services.advance(conversation.pk, actor=manager)
    services.log_reply(conversation.pk, actor=manager, text="Yes, in two days.")

    stored("2", "Terrible: it took two weeks and arrived broken. Never again.", in_reply_to="1")
    enrich_all()

    conversation.refresh_from_db()
    assert conversation.stage == Stage.LISTEN
    assert conversation.cycle == 2
    restart = conversation.events.get(kind=EventKind.RESTARTED)
    assert (restart.reason, restart.from_stage, restart.actor) == (
        "negative feedback",
        "interact",
        None,
    )
    notice = Notification.objects.get(user=manager)
    assert f"#{conversation.pk}" in notice.text
    assert "negative feedback" in notice.text


def test_the_negative_restart_can_be_turned_off(manager, settings):
    settings.ENGAGE_RESTART_ON_NEGATIVE = False
    conversation = stored("1", "Do you ship to Milan?")
    services.assign(conversation.pk, manager, actor=manager)
    services.advance(conversation.pk, actor=manager)

    stored("2", "Terrible: it arrived broken. Never again.", in_reply_to="1")
    enrich_all()

    conversation.refresh_from_db()
    assert conversation.stage == Stage.INTERACT
    assert conversation.sentiment == Sentiment.NEGATIVE


def test_a_negative_first_message_stays_in_listen_without_a_restart():
    conversation = stored("1", "Worst coffee ever, never again")

    enrich_all()

    conversation.refresh_from_db()
    assert (conversation.stage, conversation.cycle) == (Stage.LISTEN, 1)
    assert not conversation.events.filter(kind=EventKind.RESTARTED).exists()


def test_routing_rules_set_priority_tags_and_assignee():
    giulia = factories.user("giulia", role=Role.COMMUNITY_MANAGER)
    refund = Tag.objects.create(name="refund")
    rule = RoutingRule.objects.create(
        name="Italian refunds",
        position=1,
        language="it",
        keywords="rimborso, soldi indietro",
        set_priority=Priority.HIGH,
        assignee=giulia,
    )
    rule.add_tags.add(refund)
    match = stored("1", "Vorrei il rimborso dell'ordine 123, grazie")
    other = stored("2", "I would like a refund for order 123", handle="@bob")

    enrich_all()

    match.refresh_from_db()
    other.refresh_from_db()
    assert match.assignee == giulia
    assert match.priority == Priority.HIGH
    assert list(match.tags.values_list("name", flat=True)) == ["refund"]
    assert match.events.get(kind=EventKind.ASSIGNED).data["routed"] == "Italian refunds"
    assert other.assignee is None
    assert not other.tags.exists()


def test_new_conversations_go_round_robin_to_available_managers_up_to_their_cap():
    anna = factories.user("anna", role=Role.COMMUNITY_MANAGER)
    bruno = factories.user("bruno", role=Role.COMMUNITY_MANAGER)
    away = factories.user("carla", role=Role.COMMUNITY_MANAGER)
    available(anna, max_open=1)
    available(bruno, max_open=2)
    Availability.objects.create(user=away, is_available=False)
    product = factories.user("pat", role=Role.PRODUCT_TEAM)
    available(product)

    for n in range(5):
        stored(str(n), f"Question number {n} about opening hours", handle=f"@p{n}")
    enrich_all()

    owners = list(Conversation.objects.order_by("pk").values_list("assignee__username", flat=True))
    assert owners.count("anna") == 1
    assert owners.count("bruno") == 2
    assert owners.count(None) == 2
    assert "carla" not in owners
    assert "pat" not in owners
    # Alternating while both have room: anna first (never given one), then bruno.
    assert owners[:2] == ["anna", "bruno"]


def test_a_team_rule_shares_its_conversations_among_the_available_team_members():
    team = Team.objects.create(name="Reviews")
    dario, elena = (factories.user(n, role=Role.COMMUNITY_MANAGER) for n in ("dario", "elena"))
    outsider = factories.user("fabio", role=Role.COMMUNITY_MANAGER)
    team.members.add(dario, elena)
    for person in (dario, elena, outsider):
        available(person)
    RoutingRule.objects.create(name="Review sites", channel="review", team=team)

    for n in range(4):
        stored(str(n), f"Review number {n}: decent place", handle=f"@r{n}", channel="review")
    enrich_all()

    owners = sorted(Conversation.objects.values_list("assignee__username", flat=True))
    assert owners == ["dario", "dario", "elena", "elena"]


def test_a_job_that_dies_half_way_writes_nothing_and_its_retry_does_it_once(monkeypatch):
    stored("1", "Ottimo caffè, complimenti!")
    stored("2", "Servizio pessimo, mai più", handle="@bob")
    real = analysis.sentiment
    calls = []

    def dies_on_the_second(text, language):
        calls.append(text)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real(text, language)

    monkeypatch.setattr(analysis, "sentiment", dies_on_the_second)
    ids = list(Message.objects.values_list("pk", flat=True))
    with pytest.raises(RuntimeError):
        enrichment.enrich(ids)

    assert not Message.objects.filter(enriched_at__isnull=False).exists()
    assert not Conversation.objects.exclude(sentiment="").exists()

    monkeypatch.setattr(analysis, "sentiment", real)
    assert enrichment.enrich(ids) == 2
    assert enrichment.enrich(ids) == 0
    assert sorted(Conversation.objects.values_list("sentiment", flat=True)) == [
        "negative",
        "positive",
    ]
    events = Conversation.objects.get(external_id="2").events
    assert events.filter(kind=EventKind.PRIORITY_CHANGED).count() == 1


def test_stored_items_are_enriched_by_the_queued_job(
    queue, client, manager, django_capture_on_commit_callbacks
):
    from tests.conftest import work

    with django_capture_on_commit_callbacks(execute=True):
        ingest(
            [
                parse_item(
                    {
                        "source": "s",
                        "external_id": "1",
                        "channel": "twitter",
                        "author": "@x",
                        "text": "Il caffè è freddo e cattivo",
                    }
                )
            ]
        )
    work(queue)

    conversation = Conversation.objects.get()
    assert (conversation.language, conversation.sentiment) == ("it", Sentiment.NEGATIVE)


def test_the_conversation_page_tells_how_it_was_routed_and_why_its_priority_rose(client):
    anna = factories.user("anna", role=Role.COMMUNITY_MANAGER)
    available(anna)
    conversation = stored("1", "Ancora nessuna risposta: voglio il rimborso!")
    stored("2", "Ancora nessuna risposta: voglio il rimborso!", at=T0 + timedelta(minutes=1))
    enrich_all()

    client.force_login(anna)
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()

    assert "to anna, by round robin" in page
    assert "(from what the message says)" in page
    assert "repeats 1 word for word" in page
