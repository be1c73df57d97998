"""The JSON API under /api/v1/: statuses, shapes, roles, pages and refusals."""

import base64
import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from engage.choices import Stage, State, TicketStatus
from engage.models import ApiToken, Conversation, FeedbackTicket, Source
from engage.services import conversations as services
from engage.services import feedback as feedback_services
from engage.services import tags as tag_services
from engage.services import tokens
from tests import factories

pytestmark = pytest.mark.django_db

API = "/api/v1"


def post(client, path, data=None, **extra):
    return client.post(API + path, data or {}, content_type="application/json", **extra)


def patch(client, path, data, **extra):
    return client.patch(API + path, data, content_type="application/json", **extra)


def get(client, path, **extra):
    return client.get(API + path, **extra)


def bearer(raw: str) -> dict:
    return {"headers": {"Authorization": f"Bearer {raw}"}}


def fields(response) -> set[str]:
    """The names of the invalid inputs a 422 response reports."""
    assert response.status_code == 422, response.content
    return {error["field"] for error in response.json()["detail"]}


def item_body(**overrides) -> dict:
    body = {
        "source": "api-test",
        "external_id": "tweet-1",
        "channel": "twitter",
        "author": {"handle": "@ada", "name": "Ada", "url": "https://example.com/ada"},
        "text": "Does the app export to CSV?",
        "url": "https://example.com/status/1",
    }
    body.update(overrides)
    return body


def in_interact(conversation, manager):
    services.assign(conversation.pk, manager, actor=manager)
    return services.advance(conversation.pk, actor=manager)


def in_react(conversation, manager):
    in_interact(conversation, manager)
    services.log_reply(conversation.pk, actor=manager, text="Thanks, looking into it.")
    return services.advance(conversation.pk, actor=manager)


# Authentication and roles ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/conversations"),
        ("get", "/conversations/1"),
        ("post", "/conversations/1/advance"),
        ("post", "/queue/claim"),
        ("get", "/feedback"),
        ("patch", "/feedback/1"),
    ],
)
def test_anonymous_requests_get_401(client, method, path):
    if method == "get":
        response = get(client, path)
    elif method == "post":
        response = post(client, path)
    else:
        response = patch(client, path, {})

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/conversations"),
        ("get", "/conversations/{id}"),
        ("post", "/conversations/{id}/advance"),
        ("post", "/conversations/{id}/notes"),
        ("get", "/feedback"),
        ("post", "/feedback"),
    ],
)
def test_an_outsider_without_a_role_gets_403_everywhere(
    client, outsider, conversation, method, path
):
    client.force_login(outsider)
    path = path.format(id=conversation.pk)
    body = {"notes": {"text": "hello"}, "feedback": {"title": "A ticket"}}.get(path.split("/")[-1])

    response = get(client, path) if method == "get" else post(client, path, body)

    assert response.status_code == 403
    assert response.json()["detail"]


def test_the_product_team_reads_conversations_but_cannot_advance_them(as_product, conversation):
    assert get(as_product, "/conversations").status_code == 200
    assert get(as_product, f"/conversations/{conversation.pk}").status_code == 200

    response = post(as_product, f"/conversations/{conversation.pk}/advance")

    assert response.status_code == 403
    assert "community managers" in response.json()["detail"]
    conversation.refresh_from_db()
    assert conversation.stage == Stage.LISTEN


def test_the_product_team_cannot_create_conversations(as_product):
    response = post(as_product, "/conversations", item_body())

    assert response.status_code == 403
    assert not Conversation.objects.exists()


def test_a_session_post_without_a_csrf_token_is_refused(manager, conversation):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    response = post(client, f"/conversations/{conversation.pk}/notes", {"text": "hello"})

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not conversation.notes.exists()


def test_a_bearer_token_authenticates_without_csrf_and_records_its_use(manager, conversation):
    token, raw = tokens.create_token(manager, name="script")
    assert token.last_used_at is None
    client = Client(enforce_csrf_checks=True)

    listed = get(client, "/conversations", **bearer(raw))
    noted = post(client, f"/conversations/{conversation.pk}/notes", {"text": "hi"}, **bearer(raw))

    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["items"]] == [conversation.pk]
    assert noted.status_code == 201
    assert noted.json()["author"] == manager.username
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_only_the_hash_of_a_token_is_stored(manager):
    token, raw = tokens.create_token(manager)

    stored = ApiToken.objects.values().get(pk=token.pk)

    assert raw not in {str(value) for value in stored.values()}
    assert stored["key_hash"] == tokens.digest(raw)


@pytest.mark.parametrize(
    "header",
    ["Bearer eng_not-a-real-token", "Bearer ", "Bearer", "Token abc", "Basic Zm9vOmJhcg=="],
)
def test_a_wrong_token_gets_401(client, manager, header):
    tokens.create_token(manager)

    response = get(client, "/conversations", headers={"Authorization": header})

    assert response.status_code == 401


def test_a_revoked_token_gets_401(client, manager):
    token, raw = tokens.create_token(manager)
    tokens.revoke(token.pk)

    assert get(client, "/conversations", **bearer(raw)).status_code == 401


def test_the_token_of_an_outsider_authenticates_but_sees_nothing(client, outsider):
    _token, raw = tokens.create_token(outsider)

    assert get(client, "/conversations", **bearer(raw)).status_code == 403


def test_bearer_authentication_and_roles_cost_a_constant_few_queries(client, manager):
    _token, raw = tokens.create_token(manager)
    factories.conversation()
    get(client, "/conversations", **bearer(raw))  # records last_used_at once

    with CaptureQueriesContext(connection) as few:
        assert get(client, "/conversations", **bearer(raw)).status_code == 200
    for _ in range(20):
        factories.conversation()
    with CaptureQueriesContext(connection) as many:
        assert get(client, "/conversations", **bearer(raw)).status_code == 200

    # token + user (one join), roles, page (waiting rows, then answered ones), tags.
    assert len(few) == len(many) <= 5


# Creating conversations --------------------------------------------------------------------


def test_posting_an_item_creates_a_conversation_once(as_manager):
    body = item_body(priority="high", created_at="2026-01-02T03:04:05+01:00")

    first = post(as_manager, "/conversations", body)
    again = post(as_manager, "/conversations", body)

    assert first.status_code == 201
    assert again.status_code == 200
    created = first.json()
    assert again.json()["id"] == created["id"]
    assert Conversation.objects.count() == 1
    assert created["stage"] == "listen"
    assert created["cycle"] == 1
    assert created["version"] == 1
    assert created["priority"] == "high"
    assert created["source"] == "api-test"
    assert created["external_id"] == "tweet-1"
    assert created["contact"]["handle"] == "@ada"
    assert created["contact"]["url"] == "https://example.com/ada"
    assert created["received_at"] == "2026-01-02T02:04:05Z"
    assert Source.objects.get(name="api-test").kind == "api"


def test_a_numeric_external_id_is_accepted_as_text(as_manager):
    response = post(as_manager, "/conversations", item_body(external_id=1234567890123))

    assert response.status_code == 201
    assert response.json()["external_id"] == "1234567890123"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"channel": "myspace"}, "channel"),
        ({"priority": "whenever"}, "priority"),
        ({"author": {"name": "No handle"}}, "author.handle"),
        ({"author": {"handle": "   "}}, "author.handle"),
        ({"text": ""}, "text"),
        ({"text": "nul \x00 byte"}, "text"),
        ({"text": "lone \ud800 surrogate"}, "text"),
        ({"source": "s" * 201}, "source"),
        ({"external_id": None}, "external_id"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"created_at": "2026-01-02T03:04:05"}, "created_at"),
        ({"created_at": "9999-12-31T23:59:59-05:00"}, "created_at"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"sentiment": "positive"}, "sentiment"),
    ],
)
def test_an_invalid_item_is_refused_with_422_naming_the_field(as_manager, overrides, field):
    response = post(as_manager, "/conversations", item_body(**overrides))

    assert field in fields(response)
    assert not Conversation.objects.exists()


# Reading conversations ----------------------------------------------------------------------


def test_a_conversation_reads_back_with_its_thread_notes_history_and_feedback(
    as_manager, manager, conversation
):
    in_react(conversation, manager)
    services.add_note(conversation.pk, actor=manager, text="Ask the mobile team")
    ticket = feedback_services.create_ticket(
        actor=manager, title="CSV export", conversation_id=conversation.pk, quote="export"
    )

    response = get(as_manager, f"/conversations/{conversation.pk}")

    assert response.status_code == 200
    data = response.json()
    assert data["stage"] == "react"
    assert data["assignee"] == manager.username
    assert data["next_stage"] == "sell"
    assert data["advance_blocked_by"] is None
    assert [m["direction"] for m in data["messages"]] == ["inbound", "outbound"]
    assert data["messages"][1]["logged_by"] == manager.username
    assert data["notes"][0]["author"] == manager.username
    assert data["notes"][0]["text"] == "Ask the mobile team"
    assert [e["kind"] for e in data["events"]][:3] == ["created", "assigned", "stage_changed"]
    assert data["events"][2]["from_stage"] == "listen"
    assert data["events"][2]["to_stage"] == "interact"
    assert data["events"][2]["actor"] == manager.username
    assert data["feedback"] == [
        {"ticket": ticket.pk, "title": "CSV export", "status": "new", "quote": "export", "cycle": 1}
    ]


def test_the_detail_says_what_the_next_advance_needs(as_manager, conversation):
    data = get(as_manager, f"/conversations/{conversation.pk}").json()

    assert data["next_stage"] == "interact"
    assert "Assign someone" in data["advance_blocked_by"]


@pytest.mark.parametrize("conversation_id", ["999999", "99999999999999999999999999", "0", "-1"])
def test_an_unknown_conversation_is_404(as_manager, conversation_id):
    response = get(as_manager, f"/conversations/{conversation_id}")

    assert response.status_code == 404
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("advance", {}),
        ("restart", {"reason": "r"}),
        ("assign", {"assignee": None}),
        ("replies", {"text": "t"}),
        ("notes", {"text": "t"}),
        ("no-change", {"reason": "r"}),
        ("priority", {"priority": "low"}),
        ("state", {"state": "open"}),
    ],
)
def test_writing_to_an_unknown_conversation_is_404(as_manager, path, body):
    response = post(as_manager, f"/conversations/424242/{path}", body)

    assert response.status_code == 404, response.content


def test_an_unknown_api_address_is_a_json_404(as_manager):
    response = get(as_manager, "/nothing/here")

    assert response.status_code == 404
    assert response.json()["detail"]


# The cycle ------------------------------------------------------------------------------------


def test_skipping_from_listen_to_sell_is_refused_with_409_naming_the_missing_steps(
    as_manager, manager, conversation
):
    services.assign(conversation.pk, manager, actor=manager)

    response = post(as_manager, f"/conversations/{conversation.pk}/advance", {"to": "sell"})

    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Interact and react come before sell: this conversation is still in listen."
    )
    conversation.refresh_from_db()
    assert conversation.stage == Stage.LISTEN


def test_advancing_without_an_assignee_is_refused_with_409(as_manager, conversation):
    response = post(as_manager, f"/conversations/{conversation.pk}/advance")

    assert response.status_code == 409
    assert "Assign someone" in response.json()["detail"]


def test_advancing_to_react_without_a_reply_is_refused_with_409(as_manager, manager, conversation):
    in_interact(conversation, manager)

    response = post(as_manager, f"/conversations/{conversation.pk}/advance", {"to": "react"})

    assert response.status_code == 409
    assert "Log a reply" in response.json()["detail"]


def test_advancing_to_sell_without_a_reaction_is_refused_with_409(
    as_manager, manager, conversation
):
    in_react(conversation, manager)

    response = post(as_manager, f"/conversations/{conversation.pk}/advance")

    assert response.status_code == 409
    assert "feedback ticket" in response.json()["detail"]


def test_advance_moves_one_step_and_returns_the_new_state(as_manager, manager, conversation):
    services.assign(conversation.pk, manager, actor=manager)
    before = Conversation.objects.get(pk=conversation.pk)

    response = post(
        as_manager,
        f"/conversations/{conversation.pk}/advance",
        {"to": "interact", "version": before.version},
    )

    assert response.status_code == 200
    assert response.json()["stage"] == "interact"
    assert response.json()["version"] == before.version + 1
    assert Conversation.objects.get(pk=conversation.pk).stage == Stage.INTERACT


def test_a_stale_version_is_refused_with_409(as_manager, manager, conversation):
    seen = Conversation.objects.get(pk=conversation.pk).version
    services.assign(conversation.pk, manager, actor=manager)

    response = post(as_manager, f"/conversations/{conversation.pk}/advance", {"version": seen})

    assert response.status_code == 409
    assert "Someone else changed" in response.json()["detail"]
    assert Conversation.objects.get(pk=conversation.pk).stage == Stage.LISTEN


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "banana"}, "to"),
        ({"to": 3}, "to"),
        ({"version": "three"}, "version"),
        ({"version": 0}, "version"),
        ({"version": 10**30}, "version"),
        ({"verison": 3}, "verison"),
    ],
)
def test_invalid_advance_input_is_422(as_manager, manager, conversation, body, field):
    services.assign(conversation.pk, manager, actor=manager)

    response = post(as_manager, f"/conversations/{conversation.pk}/advance", body)

    assert fields(response) == {field}


def test_the_full_cycle_through_the_api(as_manager, manager, conversation):
    path = f"/conversations/{conversation.pk}"

    assert post(as_manager, f"{path}/assign", {"assignee": manager.username}).status_code == 200
    assert post(as_manager, f"{path}/advance").json()["stage"] == "interact"
    reply = post(as_manager, f"{path}/replies", {"text": "We hear you", "url": "https://x.com/1"})
    assert reply.status_code == 201
    assert reply.json()["direction"] == "outbound"
    assert reply.json()["logged_by"] == manager.username
    assert post(as_manager, f"{path}/advance").json()["stage"] == "react"
    no_change = post(as_manager, f"{path}/no-change", {"reason": "Already possible"})
    assert no_change.status_code == 201
    assert no_change.json()["stage"] == "react"
    sold = post(as_manager, f"{path}/advance", {"to": "sell"})
    assert sold.status_code == 200
    assert sold.json()["stage"] == "sell"

    restarted = post(as_manager, f"{path}/restart", {"reason": "New complaint"})

    assert restarted.status_code == 200
    assert restarted.json()["stage"] == "listen"
    assert restarted.json()["cycle"] == 2
    assert conversation.events.filter(kind="restarted", reason="New complaint").exists()


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}])
def test_a_restart_without_a_reason_is_422(as_manager, manager, conversation, body):
    in_interact(conversation, manager)

    response = post(as_manager, f"/conversations/{conversation.pk}/restart", body)

    assert fields(response) == {"reason"}
    assert Conversation.objects.get(pk=conversation.pk).cycle == 1


def test_no_change_outside_react_and_twice_is_409(as_manager, manager, conversation):
    path = f"/conversations/{conversation.pk}/no-change"
    assert post(as_manager, path, {"reason": "fine"}).status_code == 409
    in_react(conversation, manager)
    assert post(as_manager, path, {"reason": "fine"}).status_code == 201

    again = post(as_manager, path, {"reason": "fine"})

    assert again.status_code == 409
    assert "already" in again.json()["detail"]


# Assigning and claiming -------------------------------------------------------------------------


def test_assign_and_unassign(as_manager, other_manager, conversation):
    path = f"/conversations/{conversation.pk}/assign"

    assigned = post(as_manager, path, {"assignee": other_manager.username, "version": 1})
    unassigned = post(as_manager, path, {"assignee": None})

    assert assigned.status_code == 200
    assert assigned.json()["assignee"] == other_manager.username
    assert assigned.json()["version"] == 2
    assert unassigned.json()["assignee"] is None
    assert Conversation.objects.get(pk=conversation.pk).assignee is None


@pytest.mark.parametrize("assignee", ["nobody-by-that-name", "product"])
def test_assigning_to_an_unknown_or_unassignable_user_is_422(
    as_manager, product, conversation, assignee
):
    response = post(as_manager, f"/conversations/{conversation.pk}/assign", {"assignee": assignee})

    assert fields(response) == {"assignee"}
    assert Conversation.objects.get(pk=conversation.pk).assignee is None


def test_assign_needs_the_assignee_key(as_manager, conversation):
    response = post(as_manager, f"/conversations/{conversation.pk}/assign", {})

    assert fields(response) == {"assignee"}


def test_claim_gives_the_oldest_due_then_204_when_none_is_left(as_manager, manager):
    older = factories.conversation(created_at=timezone.now() - timedelta(hours=5))
    newer = factories.conversation(created_at=timezone.now() - timedelta(hours=1))

    first = post(as_manager, "/queue/claim")
    second = post(as_manager, "/queue/claim", {"stage": "listen"})
    none_left = post(as_manager, "/queue/claim")

    assert first.status_code == 200
    assert first.json()["id"] == older.pk
    assert first.json()["assignee"] == manager.username
    assert second.json()["id"] == newer.pk
    assert none_left.status_code == 204
    assert none_left.content == b""


def test_claim_refuses_an_unknown_stage_and_the_product_team(client, product, manager):
    factories.conversation()
    client.force_login(manager)
    assert fields(post(client, "/queue/claim", {"stage": "dance"})) == {"stage"}

    client.force_login(product)

    assert post(client, "/queue/claim").status_code == 403


# Replies, notes, priority and state ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("replies", {}, "text"),
        ("replies", {"text": "  "}, "text"),
        ("replies", {"text": "ok", "url": "not a url"}, "url"),
        ("notes", {"text": ""}, "text"),
        ("notes", {"text": 42}, "text"),
        ("priority", {"priority": "asap"}, "priority"),
        ("priority", {"priority": 4}, "priority"),
        ("state", {"state": "sleeping"}, "state"),
        ("state", {"state": "snoozed"}, "snoozed_until"),
        ("state", {"state": "snoozed", "snoozed_until": "2001-01-01T00:00:00Z"}, "snoozed_until"),
    ],
)
def test_invalid_writes_are_422_naming_the_field(as_manager, conversation, path, body, field):
    response = post(as_manager, f"/conversations/{conversation.pk}/{path}", body)

    assert fields(response) == {field}


def test_a_note_is_added(as_manager, manager, conversation):
    response = post(
        as_manager, f"/conversations/{conversation.pk}/notes", {"text": " @other look "}
    )

    assert response.status_code == 201
    assert response.json()["text"] == "@other look"
    assert conversation.notes.get().author == manager


def test_priority_changes_and_the_due_time_follows(as_manager, conversation):
    before = get(as_manager, f"/conversations/{conversation.pk}").json()

    response = post(
        as_manager, f"/conversations/{conversation.pk}/priority", {"priority": "urgent"}
    )

    assert response.status_code == 200
    assert response.json()["priority"] == "urgent"
    assert response.json()["first_response_due_at"] < before["first_response_due_at"]


def test_priority_with_a_stale_version_is_409(as_manager, conversation):
    response = post(
        as_manager, f"/conversations/{conversation.pk}/priority", {"priority": "low", "version": 7}
    )

    assert response.status_code == 409


def test_snooze_then_close_and_a_closed_conversation_does_not_advance(
    as_manager, manager, conversation
):
    services.assign(conversation.pk, manager, actor=manager)
    until = (timezone.now() + timedelta(days=1)).isoformat()
    path = f"/conversations/{conversation.pk}/state"

    snoozed = post(as_manager, path, {"state": "snoozed", "snoozed_until": until})
    closed = post(as_manager, path, {"state": "closed", "version": snoozed.json()["version"]})
    refused = post(as_manager, f"/conversations/{conversation.pk}/advance")

    assert snoozed.status_code == 200
    assert snoozed.json()["state"] == "snoozed"
    assert snoozed.json()["snoozed_until"] is not None
    assert closed.json()["state"] == "closed"
    assert closed.json()["snoozed_until"] is None
    assert refused.status_code == 409
    assert "closed" in refused.json()["detail"]
    assert Conversation.objects.get(pk=conversation.pk).state == State.CLOSED


# The queue: filters and keyset pages -------------------------------------------------------------


def walk(client, query: str) -> list[int]:
    """Follow next_cursor from the first page to the last; return the ids in order."""
    ids, cursor = [], None
    for _page in range(100):
        suffix = f"&cursor={cursor}" if cursor else ""
        response = get(client, f"/conversations?{query}{suffix}")
        assert response.status_code == 200, response.content
        ids += [row["id"] for row in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("sort", ["due", "newest", "oldest", "priority"])
def test_keyset_pages_cover_every_conversation_once_in_order(as_manager, sort):
    now = timezone.now()
    for n, priority in enumerate(["low", "high", "normal", "urgent", "high", "low", "normal"]):
        factories.conversation(created_at=now - timedelta(minutes=7 * n), priority=priority)

    paged = walk(as_manager, f"sort={sort}&limit=3")
    whole = [row["id"] for row in get(as_manager, f"/conversations?sort={sort}").json()["items"]]

    assert paged == whole
    assert sorted(paged) == sorted(Conversation.objects.values_list("pk", flat=True))


@pytest.mark.parametrize("sort", ["due", "newest", "oldest"])
def test_keyset_pages_do_not_skip_or_repeat_rows_with_the_same_time(as_manager, sort):
    when = timezone.now().replace(microsecond=0)
    for _ in range(5):
        factories.conversation(created_at=when)

    paged = walk(as_manager, f"sort={sort}&limit=2")

    assert sorted(paged) == sorted(Conversation.objects.values_list("pk", flat=True))


def test_queue_filters(as_manager, manager, other_manager):
    now = timezone.now()
    mine = factories.conversation(text="The export button is broken", created_at=now)
    theirs = factories.conversation(channel="facebook", priority="urgent", created_at=now)
    waiting = factories.conversation(created_at=now)
    services.assign(mine.pk, manager, actor=manager)
    services.assign(theirs.pk, other_manager, actor=other_manager)

    def ids(query):
        response = get(as_manager, f"/conversations?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["items"]}

    assert ids("assignee=me") == {mine.pk}
    assert ids("assignee=none") == {waiting.pk}
    assert ids(f"assignee={other_manager.username}") == {theirs.pk}
    assert ids("channel=facebook") == {theirs.pk}
    assert ids("priority=urgent") == {theirs.pk}
    assert ids("stage=listen&state=open") == {mine.pk, theirs.pk, waiting.pk}
    assert ids("stage=sell") == set()
    assert ids("follow_up=false") == {mine.pk, theirs.pk, waiting.pk}
    assert ids("follow_up=true") == set()
    assert ids("q=export") == {mine.pk}
    tag_services.change_tags(theirs.pk, actor=manager, add=["descaling"])
    Conversation.objects.filter(pk=mine.pk).update(language="it", sentiment="negative")
    assert ids("tag=descaling") == {theirs.pk}
    assert ids("language=it&sentiment=negative") == {mine.pk}
    # Received just now: none is due yet until this one's due time is moved back.
    Conversation.objects.filter(pk=waiting.pk).update(
        first_response_due_at=timezone.now() - timedelta(minutes=5)
    )
    assert ids("overdue=true") == {waiting.pk}


def _cursor(value, pk) -> str:
    return base64.urlsafe_b64encode(json.dumps([value, pk]).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("stage=done", "stage"),
        ("state=asleep", "state"),
        ("channel=myspace", "channel"),
        ("priority=p1", "priority"),
        ("sort=random", "sort"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=many", "limit"),
        ("follow_up=perhaps", "follow_up"),
        ("q=%00", "q"),
        ("assignee=a%00b", "assignee"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=" + _cursor("2026-01-01T00:00:00+00:00", 10**30), "cursor"),
        ("cursor=" + _cursor("9999-12-31T23:59:59-05:00", 1), "cursor"),
        ("cursor=" + _cursor("2026-01-01T00:00:00", 1), "cursor"),
        ("sort=priority&cursor=" + _cursor(10**30, 1), "cursor"),
        ("sort=priority&cursor=" + _cursor("high", 1), "cursor"),
    ],
)
def test_invalid_queue_queries_are_422(as_manager, conversation, query, field):
    assert fields(get(as_manager, f"/conversations?{query}")) == {field}


def _count_queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = get(client, path)
    assert response.status_code == 200, response.content
    return len(context)


def test_the_queue_costs_the_same_queries_for_5_and_50_rows(as_manager, manager):
    def make(count):
        for _ in range(count):
            conversation = factories.conversation()
            services.assign(conversation.pk, manager, actor=manager)

    make(5)
    few = _count_queries(as_manager, "/conversations?limit=100")
    make(45)
    many = _count_queries(as_manager, "/conversations?limit=100")

    assert len(get(as_manager, "/conversations?limit=100").json()["items"]) == 50
    assert few == many


def test_the_feedback_board_costs_the_same_queries_for_5_and_50_tickets(
    as_product, manager, product
):
    def make(count):
        for n in range(count):
            conversation = factories.conversation()
            ticket = feedback_services.create_ticket(
                actor=manager, title=f"Ticket {n}", conversation_id=conversation.pk, quote="need"
            )
            feedback_services.update_ticket(ticket.pk, actor=product, owner=product)

    make(5)
    few = _count_queries(as_product, "/feedback?limit=100")
    make(45)
    many = _count_queries(as_product, "/feedback?limit=100")

    assert len(get(as_product, "/feedback?limit=100").json()["items"]) == 50
    assert few == many


# Feedback -------------------------------------------------------------------------------------


def test_a_community_manager_opens_a_ticket_from_a_conversation(as_manager, manager, conversation):
    response = post(
        as_manager,
        "/feedback",
        {
            "title": " CSV export ",
            "product_area": "exports",
            "conversation": conversation.pk,
            "quote": "Does it export?",
        },
    )

    assert response.status_code == 201
    data = response.json()
    assert data["title"] == "CSV export"
    assert data["status"] == "new"
    assert data["owner"] is None
    assert data["demand"] == 1
    assert data["evidence_count"] == 1
    assert data["told_count"] == 0
    assert data["evidence"][0]["conversation"] == conversation.pk
    assert data["evidence"][0]["quote"] == "Does it export?"
    assert data["evidence"][0]["contact_handle"] == conversation.contact.handle
    assert data["events"][0]["kind"] == "ticket_created"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": "  "}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"title": "ok", "conversation": 424242}, "conversation"),
        ({"title": "ok", "conversation": 10**30}, "conversation"),
        ({"title": "ok", "status": "shipped"}, "status"),
    ],
)
def test_an_invalid_ticket_is_422(as_manager, body, field):
    assert fields(post(as_manager, "/feedback", body)) == {field}
    assert not FeedbackTicket.objects.exists()


def test_the_board_lists_and_filters_tickets_by_demand(as_product, manager):
    popular = feedback_services.create_ticket(actor=manager, title="Dark mode", product_area="ui")
    for _ in range(2):
        feedback_services.link_evidence(
            popular.pk, factories.conversation().pk, actor=manager, quote="dark please"
        )
    quiet = feedback_services.create_ticket(
        actor=manager, title="CSV export", problem="Spreadsheets"
    )

    def titles(query=""):
        response = get(as_product, f"/feedback?{query}")
        assert response.status_code == 200, response.content
        return [row["title"] for row in response.json()["items"]]

    assert titles() == ["Dark mode", "CSV export"]
    assert titles("product_area=ui") == ["Dark mode"]
    assert titles("q=spreadsheet") == ["CSV export"]
    assert titles("status=new") == ["Dark mode", "CSV export"]
    assert titles("status=shipped") == []
    page = get(as_product, "/feedback?limit=1").json()
    assert page["next_offset"] == 1
    assert get(as_product, "/feedback?limit=1&offset=1").json()["items"][0]["id"] == quiet.pk
    assert fields(get(as_product, "/feedback?status=someday")) == {"status"}
    assert get(as_product, "/feedback/424242").status_code == 404


def test_the_product_team_ships_a_ticket_and_the_conversations_need_a_follow_up(
    as_product, manager, product, conversation
):
    ticket = feedback_services.create_ticket(
        actor=manager, title="Export", conversation_id=conversation.pk, quote="export?"
    )

    response = patch(
        as_product,
        f"/feedback/{ticket.pk}",
        {
            "status": "shipped",
            "note": "Released in 2.3",
            "owner": product.username,
            "title": "CSV export",
        },
    )

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["status"] == "shipped"
    assert data["owner"] == product.username
    assert data["title"] == "CSV export"
    assert Conversation.objects.get(pk=conversation.pk).needs_follow_up
    followed = get(as_product, "/conversations?follow_up=true").json()["items"]
    assert [row["id"] for row in followed] == [conversation.pk]

    cleared = patch(as_product, f"/feedback/{ticket.pk}", {"owner": None})

    assert cleared.json()["owner"] is None
    assert cleared.json()["status"] == "shipped"


def test_a_community_manager_cannot_change_a_ticket(as_manager, manager):
    ticket = feedback_services.create_ticket(actor=manager, title="Export")

    for body in ({"status": "planned"}, {"title": "Mine now"}, {}):
        response = patch(as_manager, f"/feedback/{ticket.pk}", body)
        assert response.status_code == 403
    ticket.refresh_from_db()
    assert (ticket.status, ticket.title) == (TicketStatus.NEW, "Export")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "done"}, "status"),
        ({"owner": "nobody-by-that-name"}, "owner"),
        ({"owner": "manager"}, "owner"),
        ({"title": ""}, "title"),
        ({"product_area": "a" * 101}, "product_area"),
    ],
)
def test_an_invalid_ticket_change_is_422_and_changes_nothing(as_product, manager, body, field):
    ticket = feedback_services.create_ticket(actor=manager, title="Export")

    response = patch(as_product, f"/feedback/{ticket.pk}", {"status": "planned", **body})

    assert fields(response) == {field}
    ticket.refresh_from_db()
    assert (ticket.status, ticket.owner) == (TicketStatus.NEW, None)


def test_patching_an_unknown_ticket_is_404(as_product):
    assert patch(as_product, "/feedback/424242", {"status": "planned"}).status_code == 404
    assert patch(as_product, "/feedback/424242", {}).status_code == 404


def test_linking_evidence_once_then_409(as_manager, manager, conversation):
    ticket = feedback_services.create_ticket(actor=manager, title="Export")
    path = f"/feedback/{ticket.pk}/evidence"

    linked = post(as_manager, path, {"conversation": conversation.pk, "quote": "export please"})
    again = post(as_manager, path, {"conversation": conversation.pk, "quote": "export please"})

    assert linked.status_code == 201
    assert linked.json()["conversation"] == conversation.pk
    assert linked.json()["cycle"] == 1
    assert linked.json()["told_at"] is None
    assert again.status_code == 409
    assert "already" in again.json()["detail"]


def test_evidence_for_unknown_things(as_manager, manager, conversation):
    ticket = feedback_services.create_ticket(actor=manager, title="Export")

    unknown_ticket = post(
        as_manager, "/feedback/424242/evidence", {"conversation": conversation.pk, "quote": "q"}
    )
    unknown_conversation = post(
        as_manager, f"/feedback/{ticket.pk}/evidence", {"conversation": 424242, "quote": "q"}
    )

    assert unknown_ticket.status_code == 404
    assert fields(unknown_conversation) == {"conversation"}


# Robustness and documentation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b"null",
        b"42",
        b'"text"',
        b'{"text": null}',
        b'{"text": ["a"]}',
        b'{"text": {"nested": true}}',
        b'{"text": "a\\u0000b"}',
        b'{"text": "\\ud800"}',
        b'{"text": 1e400}',
        b'{"text": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
@pytest.mark.parametrize("path", ["/conversations", "/conversations/{id}/notes", "/feedback"])
def test_malformed_bodies_never_cause_a_500(as_manager, conversation, body, path):
    response = as_manager.post(
        API + path.format(id=conversation.pk), body, content_type="application/json"
    )

    assert response.status_code in {400, 422}, response.content
    assert response.json()["detail"]


def test_a_huge_body_is_refused_with_413(as_manager, conversation, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"text": "x" * 2000}

    response = post(as_manager, f"/conversations/{conversation.pk}/notes", body)

    assert response.status_code == 413
    assert response.json()["detail"]


def test_the_openapi_schema_and_the_docs_are_served(client):
    schema = client.get(f"{API}/openapi.json")
    docs = client.get(f"{API}/docs")

    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/conversations",
        "/api/v1/conversations/{conversation_id}",
        "/api/v1/conversations/{conversation_id}/advance",
        "/api/v1/conversations/{conversation_id}/restart",
        "/api/v1/conversations/{conversation_id}/assign",
        "/api/v1/conversations/{conversation_id}/replies",
        "/api/v1/conversations/{conversation_id}/notes",
        "/api/v1/conversations/{conversation_id}/no-change",
        "/api/v1/conversations/{conversation_id}/priority",
        "/api/v1/conversations/{conversation_id}/state",
        "/api/v1/queue/claim",
        "/api/v1/feedback",
        "/api/v1/feedback/{ticket_id}",
        "/api/v1/feedback/{ticket_id}/evidence",
    ]:
        assert path in paths
    assert set(schema.json()["components"]["securitySchemes"]) >= {"BearerToken", "SessionCookie"}
    assert docs.status_code == 200
    assert b"swagger-ui-bundle.js" in docs.content
    # Served from our static files, not a CDN (the CSP allows no other origin). Not a bare
    # "cdn" test: the page's random CSRF token may spell it.
    assert not re.search(rb'(src|href)="(https?:)?//', docs.content)
    assert b"/static/ninja/swagger-ui-bundle.js" in docs.content
