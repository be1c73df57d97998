"""Listening: the push API and the ingest service — once, threaded, deduplicated, nothing
lost. Enrichment itself is in test_enrichment.py."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from engage.choices import Direction, EventKind, SourceKind, State
from engage.items import ItemInvalid, parse_item
from engage.models import Contact, Conversation, Event, Message, Source
from engage.services import conversations as services
from engage.services import tokens
from engage.services.ingest import ingest

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def raw(external_id, text="Il mio ordine non è arrivato", **fields) -> dict:
    body = {
        "source": "push",
        "external_id": external_id,
        "channel": "twitter",
        "author": {"handle": fields.pop("handle", "@ada"), "name": "Ada"},
        "text": text,
        "created_at": fields.pop("at", T0).isoformat(),
    }
    body.update(fields)
    return body


def store(*bodies, actor=None):
    return ingest([parse_item(body) for body in bodies], actor=actor)


def push(client, token, items):
    return client.post(
        "/api/v1/ingest",
        {"items": items},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
def token(manager):
    return tokens.create_token(manager, name="integration")[1]


# The push API ------------------------------------------------------------------------------


def test_a_pushed_batch_answers_one_result_per_item_in_order(client, token):
    response = push(
        client,
        token,
        [
            raw("1"),
            raw("2", text="", handle="@bob"),
            "not an object",
            raw("3", channel="myspace", created_at="yesterday", handle="@cy"),
            raw("4", colour="blue", handle="@dee"),
            raw("1"),
        ],
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4, 5]
    assert [r["status"] for r in results] == [
        "created",
        "error",
        "error",
        "error",
        "error",
        "known",
    ]
    stored = Conversation.objects.get()
    assert results[0]["conversation"] == results[5]["conversation"] == stored.pk
    assert "errors" not in results[0]
    assert results[1]["errors"] == [
        {"field": "text", "message": "This field is required and may not be blank."}
    ]
    assert results[2]["errors"][0]["field"] == "item"
    assert {e["field"] for e in results[3]["errors"]} == {"channel", "created_at"}
    assert "“yesterday” is not a time" in str(results[3]["errors"])
    assert results[4]["errors"] == [{"field": "colour", "message": "Unknown field."}]
    assert "conversation" not in results[1]


def test_pushing_the_same_batch_again_adds_nothing(client, token):
    items = [raw(str(n), text=f"Post {n}", handle=f"@p{n}") for n in range(5)]
    first = push(client, token, items).json()["results"]
    again = push(client, token, items).json()["results"]

    assert {r["status"] for r in first} == {"created"}
    assert {r["status"] for r in again} == {"known"}
    assert [r["conversation"] for r in again] == [r["conversation"] for r in first]
    assert Conversation.objects.count() == 5
    assert Message.objects.count() == 5


def test_a_batch_over_the_limit_is_refused_whole_with_a_clear_error(client, token, settings):
    settings.ENGAGE_INGEST_BATCH_LIMIT = 1000
    response = push(client, token, [raw(str(n)) for n in range(1001)])

    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "items"
    assert not Conversation.objects.exists()


def test_pushing_needs_a_community_manager(client, product):
    denied = push(client, tokens.create_token(product)[1], [raw("1")])
    anonymous = client.post(
        "/api/v1/ingest", {"items": [raw("1")]}, content_type="application/json"
    )

    assert denied.status_code == 403
    assert anonymous.status_code == 401
    assert not Conversation.objects.exists()


def test_the_pushed_item_lands_with_its_contact_source_and_text(client, token):
    push(
        client,
        token,
        [
            raw(
                "t-1",
                text="Tom &amp; Jerry ☕ love it\x00",
                url="https://x.example/status/1",
                author={"handle": "@tom", "name": "Tom", "url": "https://x.example/tom"},
            )
        ],
    )

    conversation = Conversation.objects.select_related("contact", "source").get()
    assert conversation.text == "Tom & Jerry ☕ love it"
    assert conversation.received_at == T0
    assert conversation.contact.handle == "@tom"
    assert conversation.contact.profile_url == "https://x.example/tom"
    assert conversation.source.kind == SourceKind.API
    assert Event.objects.filter(conversation=conversation, kind=EventKind.CREATED).count() == 1


# Threading --------------------------------------------------------------------------------


def test_a_reply_joins_its_parents_conversation_and_ours_counts_as_first_response():
    store(raw("a", at=T0))
    store(
        raw("b", text="Any news?", at=T0 + timedelta(hours=1), in_reply_to="a"),
        raw(
            "c",
            text="We are on it",
            handle="@brand",
            direction="outbound",
            at=T0 + timedelta(hours=2),
            in_reply_to="b",
        ),
    )

    conversation = Conversation.objects.get()
    assert list(conversation.messages.values_list("external_id", flat=True)) == ["a", "b", "c"]
    assert conversation.first_response_at == T0 + timedelta(hours=2)
    kinds = list(conversation.events.values_list("kind", flat=True))
    assert kinds.count(EventKind.MESSAGE_RECEIVED) == 1
    assert kinds.count(EventKind.REPLY_LOGGED) == 1


def test_parent_and_reply_in_one_batch_thread_whatever_their_order():
    outcomes = store(
        raw("reply", text="Still broken", at=T0 + timedelta(hours=1), in_reply_to="root"),
        raw("root", at=T0),
    )

    conversation = Conversation.objects.get()
    assert conversation.external_id == "root"
    assert [o.conversation for o in outcomes] == [conversation.pk, conversation.pk]
    assert conversation.messages.count() == 2


def test_our_reply_that_arrives_before_its_parent_waits_then_joins_it():
    early = store(raw("r", text="Sorry!", handle="@brand", direction="outbound", in_reply_to="p"))
    assert early[0].status == "created"
    assert early[0].conversation is None
    assert not Conversation.objects.exists()
    assert Message.objects.get(external_id="r").conversation is None

    store(raw("p", at=T0 - timedelta(minutes=30)))

    conversation = Conversation.objects.get()
    assert set(conversation.messages.values_list("external_id", flat=True)) == {"p", "r"}
    assert conversation.first_response_at == T0


def test_a_persons_reply_that_came_first_is_joined_by_its_parent():
    store(raw("child", text="@brand answer me", handle="@ada", in_reply_to="parent"))
    first = Conversation.objects.get()

    outcome = store(
        raw("parent", text="Our new blend is out", handle="@ada", at=T0 - timedelta(hours=1))
    )

    assert outcome[0].conversation == first.pk
    assert Conversation.objects.count() == 1
    assert first.messages.count() == 2


def test_two_threads_become_one_when_the_message_between_them_arrives():
    store(raw("a", at=T0))
    store(raw("c", text="Hello??", at=T0 + timedelta(hours=2), in_reply_to="b"))
    kept, orphan = Conversation.objects.order_by("pk")

    store(
        raw(
            "b",
            text="Looking into it",
            handle="@brand",
            direction="outbound",
            at=T0 + timedelta(hours=1),
            in_reply_to="a",
        )
    )

    orphan.refresh_from_db()
    kept.refresh_from_db()
    assert orphan.merged_into_id == kept.pk
    assert orphan.state == State.CLOSED
    assert set(kept.messages.values_list("external_id", flat=True)) == {"a", "b", "c"}
    assert kept.first_response_at == T0 + timedelta(hours=1)


def test_a_new_message_reopens_a_closed_conversation():
    store(raw("a"))
    conversation = Conversation.objects.get()
    services.set_state(conversation.pk, State.CLOSED, actor=None)

    store(raw("b", text="Are you still there?", in_reply_to="a", at=T0 + timedelta(days=2)))

    conversation.refresh_from_db()
    assert conversation.state == State.OPEN
    assert conversation.events.filter(kind=EventKind.STATE_CHANGED).last().data["to"] == "open"


# Deduplication ------------------------------------------------------------------------------


def test_the_same_person_posting_the_same_text_twice_is_one_conversation_with_the_duplicate_recorded():
    store(raw("1", text="Refund please!", at=T0))
    outcome = store(raw("2", text="  refund   PLEASE! ", at=T0 + timedelta(minutes=3)))

    conversation = Conversation.objects.get()
    assert outcome[0].status == "known"
    assert outcome[0].duplicate
    assert outcome[0].conversation == conversation.pk
    duplicate = Message.objects.get(external_id="2")
    assert duplicate.duplicate_of == Message.objects.get(external_id="1")
    event = conversation.events.get(kind=EventKind.DUPLICATE_RECEIVED)
    assert event.data == {"external_id": "2", "duplicate_of": "1"}
    assert store(raw("2", text="Refund please!"))[0].status == "known"


def test_a_double_submit_inside_one_batch_is_caught_too():
    outcomes = store(raw("1", text="Refund please!"), raw("2", text="Refund please!"))

    assert [o.status for o in outcomes] == ["created", "known"]
    assert outcomes[1].duplicate
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize(
    "second",
    [
        {"at": T0 + timedelta(minutes=11)},
        {"handle": "@someone-else"},
        {"source": "another-source"},
        {"text": "Refund please, it is the third time"},
        {"in_reply_to": "an-answer-of-ours"},
    ],
    ids=["after the window", "another person", "another source", "other text", "another thread"],
)
def test_what_is_not_a_duplicate_is_a_conversation_of_its_own(second, settings):
    settings.ENGAGE_DUPLICATE_WINDOW_MINUTES = 10
    store(raw("1", text="Refund please!", at=T0))
    fields = {"text": "Refund please!", **second}
    outcome = store(raw("2", **fields))

    assert outcome[0].status == "created"
    assert not outcome[0].duplicate
    assert Conversation.objects.count() == 2


# Nothing lost ----------------------------------------------------------------------------------


def test_items_are_stored_when_redis_is_down_and_the_sweeper_enriches_them_later(
    client, token, monkeypatch, django_capture_on_commit_callbacks
):
    import redis

    from engage import tasks

    def redis_down(*args, **kwargs):
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5).ping()

    monkeypatch.setattr(tasks, "enqueue", redis_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = push(client, token, [raw("1", text="Pessimo servizio, voglio un rimborso")])

    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "created"
    message = Message.objects.get()
    assert message.enriched_at is None

    monkeypatch.undo()
    assert tasks.sweep_unenriched(older_than_seconds=0) == 1
    assert tasks.sweep_unenriched(older_than_seconds=0) == 0
    message.refresh_from_db()
    assert message.enriched_at is not None
    assert Conversation.objects.get().language == "it"


def test_a_contact_seen_again_keeps_one_row_with_the_latest_name():
    store(raw("1", author={"handle": "@ada", "name": "Ada"}))
    store(raw("2", text="other", author={"handle": "@ada", "name": "Ada Lovelace"}))

    assert Contact.objects.get().name == "Ada Lovelace"


def test_a_removed_source_refuses_new_items_with_a_clear_error():
    store(raw("1"))
    Source.objects.filter(name="push").update(removed_at=timezone.now())

    outcome = store(raw("2", text="new"))

    assert outcome[0].status == "error"
    assert outcome[0].errors[0].field == "source"
    assert "removed" in outcome[0].errors[0].message
    assert Conversation.objects.count() == 1


def test_an_outbound_only_message_never_reaches_the_queue_on_its_own():
    store(raw("r", direction="outbound", handle="@brand", in_reply_to="unknown"))

    assert Message.objects.get().direction == Direction.OUTBOUND
    assert not Conversation.objects.exists()


def test_files_may_carry_more_about_the_author_but_the_api_refuses_unknown_fields():
    body = raw("1", author={"handle": "@ada", "id": 42})

    assert parse_item(body, strict=False).author_handle == "@ada"
    with pytest.raises(ItemInvalid) as refused:
        parse_item(body)
    assert [e.field for e in refused.value.errors] == ["author.id"]
