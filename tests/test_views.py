"""The HTML pages: access, every action form end to end, escaping, filters, query counts."""

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from engage.choices import EventKind, Priority, Stage, State
from engage.models import (
    Contact,
    Conversation,
    Event,
    FeedbackLink,
    FeedbackTicket,
    Message,
    Note,
)
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from tests import factories

ACTIONS = [
    "conversation_advance",
    "conversation_restart",
    "conversation_assign",
    "conversation_reply",
    "conversation_note",
    "conversation_no_change",
    "conversation_create_ticket",
    "conversation_link_ticket",
    "conversation_priority",
    "conversation_state",
]


def page_url(conversation) -> str:
    return reverse("conversation", args=[conversation.pk])


def action_url(name: str, conversation) -> str:
    return reverse(name, args=[conversation.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def post_and_follow(client, url, data):
    """POST, check the 303 back to the page, and return the page it leads to."""
    response = client.post(url, data)
    assert response.status_code == 303, response.content[:500]
    return client.get(response["Location"])


def fresh(conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def to_react(conversation, actor) -> Conversation:
    conversation_services.assign(conversation.pk, actor, actor=actor)
    conversation_services.advance(conversation.pk, actor=actor)
    conversation_services.log_reply(conversation.pk, actor=actor, text="Thanks, we are on it.")
    return conversation_services.advance(conversation.pk, actor=actor)


# Access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["home", "queue"])
def test_pages_need_login(client, db, name):
    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_conversation_page_and_actions_need_login(client, conversation):
    response = client.get(page_url(conversation))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))

    for name in ACTIONS:
        response = client.post(action_url(name, conversation), {})
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login")), name
    assert fresh(conversation).version == conversation.version


def test_outsider_is_refused_everywhere(client, outsider, conversation):
    client.force_login(outsider)

    for url in [reverse("home"), reverse("queue"), page_url(conversation)]:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Only community managers, the product team and staff can see this." in (
            response.content.decode()
        )
    assert client.post(reverse("claim_next")).status_code == 403


@pytest.mark.parametrize(
    ("who", "home"), [("manager", "queue"), ("staff", "queue"), ("product", "feedback_board")]
)
def test_home_sends_community_managers_to_the_queue_and_the_product_team_to_the_board(
    client, request, who, home
):
    client.force_login(request.getfixturevalue(who))

    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response["Location"] == reverse(home)


def test_login_page_logs_in_and_logout_is_post_only(client, manager):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'name="username"' in page.content
    assert b'for="id_username"' in page.content

    response = client.post(
        reverse("login"), {"username": "manager", "password": "pw-manager", "next": "/queue/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/queue/"
    assert client.get(reverse("queue")).status_code == 200

    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get(reverse("queue")).status_code == 302


def test_wrong_password_shows_an_error(client, manager):
    response = client.post(reverse("login"), {"username": "manager", "password": "nope"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_product_team_reads_but_gets_no_forms_and_403_on_every_action(client, product, manager):
    conversation = factories.conversation()
    to_react(conversation, manager)
    ticket = feedback_services.create_ticket(actor=manager, title="Dark mode")
    client.force_login(product)

    queue = client.get(reverse("queue"))
    assert queue.status_code == 200
    assert reverse("claim_next").encode() not in queue.content

    page = client.get(page_url(conversation))
    assert page.status_code == 200
    assert b'method="post" action="/conversations/' not in page.content
    assert "only community managers change it" in page.content.decode()

    before = fresh(conversation)
    payloads = {
        "conversation_advance": {"version": before.version},
        "conversation_restart": {"reason": "x", "version": before.version},
        "conversation_assign": {"action": "me"},
        "conversation_reply": {"text": "hi"},
        "conversation_note": {"text": "hi"},
        "conversation_no_change": {"reason": "fine"},
        "conversation_create_ticket": {"title": "New"},
        "conversation_link_ticket": {"ticket": ticket.pk, "quote": "q"},
        "conversation_priority": {"priority": "high"},
        "conversation_state": {"state": "closed"},
    }
    assert set(payloads) == set(ACTIONS)
    for name, data in payloads.items():
        response = client.post(action_url(name, conversation), data)
        assert response.status_code == 403, name
    assert client.post(reverse("claim_next")).status_code == 403

    after = fresh(conversation)
    assert after.version == before.version
    assert Note.objects.count() == 0
    assert FeedbackTicket.objects.count() == 1
    assert FeedbackLink.objects.count() == 0


def test_actions_are_post_only(client, manager, conversation):
    client.force_login(manager)

    for name in ACTIONS:
        assert client.get(action_url(name, conversation)).status_code == 405, name


def test_unknown_conversation_is_404(client, manager):
    client.force_login(manager)

    assert client.get("/conversations/999999/").status_code == 404
    assert client.post("/conversations/999999/reply/", {"text": "hi"}).status_code == 404


# Queue -----------------------------------------------------------------------------------


def test_queue_lists_conversations_with_their_columns(client, manager):
    overdue = factories.conversation(
        text="Where is my order?", created_at=timezone.now() - timedelta(days=3)
    )
    flagged = factories.conversation(text="Any news on dark mode?")
    conversation_services.assign(flagged.pk, manager, actor=manager)
    conversation_services.set_priority(flagged.pk, "urgent", actor=manager)
    Conversation.objects.filter(pk=flagged.pk).update(needs_follow_up=True)
    client.force_login(manager)

    response = client.get(reverse("queue"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Queue</h1>" in body
    assert "Where is my order?" in body
    assert "Any news on dark mode?" in body
    assert page_url(overdue) in body
    assert "overdue" in body
    assert "Urgent" in body
    assert "Tell the person" in body
    assert '<th scope="col">First response due</th>' in body


def test_queue_filters_by_stage_assignee_priority_and_text(client, manager, other_manager):
    mine = factories.conversation(text="Battery drains fast")
    theirs = factories.conversation(text="Battery is great")
    nobodys = factories.conversation(text="Screen flickers")
    conversation_services.assign(mine.pk, manager, actor=manager)
    conversation_services.advance(mine.pk, actor=manager)
    conversation_services.assign(theirs.pk, other_manager, actor=other_manager)
    conversation_services.set_priority(nobodys.pk, "high", actor=manager)
    client.force_login(manager)

    def listed(query: str) -> set[int]:
        response = client.get(reverse("queue") + query)
        assert response.status_code == 200, response.content[:300]
        return {c.pk for c in response.context["page"].items}

    assert listed("") == {mine.pk, theirs.pk, nobodys.pk}
    assert listed("?stage=interact") == {mine.pk}
    assert listed("?assignee=me") == {mine.pk}
    assert listed("?assignee=none") == {nobodys.pk}
    assert listed("?assignee=other") == {theirs.pk}
    assert listed("?priority=high") == {nobodys.pk}
    assert listed("?q=battery") == {mine.pk, theirs.pk}
    assert listed("?channel=twitter&state=open") == {mine.pk, theirs.pk, nobodys.pk}
    assert listed("?channel=email") == set()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?stage=nowhere", "“nowhere” is not a stage."),
        ("?state=asleep", "“asleep” is not a state."),
        ("?priority=whenever", "“whenever” is not a priority."),
        ("?sort=sideways", "Unknown sort “sideways”"),
        ("?channel=pigeon", "“pigeon” is not a channel."),
        ("?follow_up=maybe", "Follow-up is “yes”, “no” or empty"),
        ("?cursor=not-a-cursor", "This cursor is not valid"),
    ],
)
def test_bad_filters_give_a_clear_message_not_a_500(client, manager, conversation, query, message):
    client.force_login(manager)

    response = client.get(reverse("queue") + query)

    assert response.status_code == 400
    assert message in response.content.decode()


def test_queue_pages_with_next_cursor_and_keeps_filters(client, manager, settings):
    settings.ENGAGE_PAGE_SIZE = 2
    made = [factories.conversation() for _ in range(5)]
    client.force_login(manager)

    seen, url = [], reverse("queue") + "?stage=listen&sort=oldest"
    while url:
        response = client.get(url)
        assert response.status_code == 200
        page = response.context["page"]
        seen += [c.pk for c in page.items]
        url = None
        if page.next_cursor:
            href = html.unescape(NEXT_LINK.search(response.content.decode()).group(1))
            assert href == f"/queue/?stage=listen&sort=oldest&cursor={page.next_cursor}"
            url = href

    oldest_first = sorted(made, key=lambda c: (c.received_at, c.pk))
    assert seen == [c.pk for c in oldest_first]


NEXT_LINK = re.compile(r'<a href="([^"]*)" rel="next">')


# The queue's query count is pinned in test_queue.py.


def test_claim_next_gives_the_oldest_due_then_says_nothing_is_left(client, manager):
    later = factories.conversation(created_at=timezone.now() - timedelta(minutes=1))
    first = factories.conversation(created_at=timezone.now() - timedelta(hours=5))
    client.force_login(manager)

    response = client.post(reverse("claim_next"))
    assert response.status_code == 303
    assert response["Location"] == page_url(first)
    assert fresh(first).assignee == manager

    response = client.post(reverse("claim_next"))
    assert response["Location"] == page_url(later)

    page = post_and_follow(client, reverse("claim_next"), {})
    assert "Nothing left to claim." in messages_of(page)
    assert page.request["PATH_INFO"] == reverse("queue")


# Conversation page -------------------------------------------------------------------------


def test_conversation_page_shows_thread_contact_notes_history_and_cycle(client, manager):
    conversation = factories.conversation(text="The app crashes on start", handle="ada")
    other = factories.conversation(text="Loved the update", handle="ada")
    conversation_services.assign(conversation.pk, manager, actor=manager)
    conversation_services.log_reply(
        conversation.pk, actor=manager, text="Sorry! A fix is coming.", url="https://x.test/r/1"
    )
    conversation_services.add_note(conversation.pk, actor=manager, text="Crash **again**")
    client.force_login(manager)

    response = client.get(page_url(conversation))

    body = response.content.decode()
    assert response.status_code == 200
    assert '<li class="message inbound">' in body
    assert '<li class="message outbound">' in body
    assert "The app crashes on start" in body
    assert "Sorry! A fix is coming." in body
    assert "logged by manager" in body
    assert 'href="https://x.test/r/1" rel="noopener noreferrer nofollow"' in body
    assert page_url(other) in body
    assert "Loved the update" in body
    assert "<strong>again</strong>" in body
    for kind in ["Created", "Assigned", "Reply logged", "Note added"]:
        assert f"<strong>{kind}</strong>" in body
    assert 'class="step current" aria-current="step"' in body
    assert "Next step: Interact." in body


def test_next_step_says_what_it_still_needs(client, manager, conversation):
    client.force_login(manager)
    body = client.get(page_url(conversation)).content.decode()
    assert "Assign someone before moving to interact" in body

    conversation_services.assign(conversation.pk, manager, actor=manager)
    conversation_services.advance(conversation.pk, actor=manager)
    body = client.get(page_url(conversation)).content.decode()
    assert "Log a reply before moving to react" in body

    conversation_services.log_reply(conversation.pk, actor=manager, text="Hello")
    conversation_services.advance(conversation.pk, actor=manager)
    body = client.get(page_url(conversation)).content.decode()
    assert "Link a feedback ticket or record that no product change is needed" in body
    assert action_url("conversation_no_change", conversation) in body


def test_no_change_form_is_only_offered_in_react(client, manager, conversation):
    client.force_login(manager)

    body = client.get(page_url(conversation)).content.decode()

    assert action_url("conversation_no_change", conversation) not in body


def test_advance_moves_one_step_and_records_it(client, manager, conversation):
    conversation_services.assign(conversation.pk, manager, actor=manager)
    before = fresh(conversation)
    client.force_login(manager)

    page = post_and_follow(
        client,
        action_url("conversation_advance", conversation),
        {"version": before.version},
    )

    after = fresh(conversation)
    assert (before.stage, after.stage) == (Stage.LISTEN, Stage.INTERACT)
    assert "Moved to interact." in messages_of(page)
    assert Event.objects.filter(
        conversation=conversation, kind=EventKind.STAGE_CHANGED, to_stage=Stage.INTERACT
    ).exists()


def test_advance_without_assignee_shows_the_refusal(client, manager, conversation):
    client.force_login(manager)

    page = post_and_follow(
        client, action_url("conversation_advance", conversation), {"version": conversation.version}
    )

    assert fresh(conversation).stage == Stage.LISTEN
    assert any("Assign someone before moving to interact" in m for m in messages_of(page))
    assert "Assign someone before moving to interact" in page.content.decode()


def test_a_stale_version_shows_that_someone_else_changed_it(client, manager, other_manager):
    conversation = factories.conversation()
    seen = fresh(conversation).version
    conversation_services.assign(conversation.pk, other_manager, actor=other_manager)
    client.force_login(manager)

    page = post_and_follow(
        client, action_url("conversation_advance", conversation), {"version": seen}
    )

    assert fresh(conversation).stage == Stage.LISTEN
    assert any("Someone else changed this conversation" in m for m in messages_of(page))


def test_restart_needs_a_reason_then_starts_the_next_cycle(client, manager, conversation):
    conversation_services.assign(conversation.pk, manager, actor=manager)
    conversation_services.advance(conversation.pk, actor=manager)
    client.force_login(manager)
    url = action_url("conversation_restart", conversation)

    refused = client.post(url, {"reason": "  ", "version": fresh(conversation).version})
    assert refused.status_code == 422
    assert "a reason is required" in refused.content.decode()
    assert fresh(conversation).stage == Stage.INTERACT

    page = post_and_follow(
        client, url, {"reason": "They were unhappy", "version": fresh(conversation).version}
    )
    after = fresh(conversation)
    assert (after.stage, after.cycle) == (Stage.LISTEN, 2)
    assert "Back to listen: cycle 2 begins." in messages_of(page)
    assert "They were unhappy" in page.content.decode()


def test_assign_to_me_to_someone_and_to_nobody(client, manager, other_manager, conversation):
    client.force_login(manager)
    url = action_url("conversation_assign", conversation)

    page = post_and_follow(client, url, {"action": "me", "version": fresh(conversation).version})
    assert fresh(conversation).assignee == manager
    assert "Assigned to manager." in messages_of(page)

    post_and_follow(
        client,
        url,
        {"action": "choose", "assignee": "other", "version": fresh(conversation).version},
    )
    assert fresh(conversation).assignee == other_manager

    page = post_and_follow(client, url, {"action": "none", "version": fresh(conversation).version})
    assert fresh(conversation).assignee is None
    assert "Nobody is assigned now." in messages_of(page)


def test_assign_refuses_someone_who_is_not_a_community_manager(
    client, manager, product, conversation
):
    client.force_login(manager)

    response = client.post(
        action_url("conversation_assign", conversation),
        {"action": "choose", "assignee": "product", "version": fresh(conversation).version},
    )

    assert response.status_code == 422
    assert fresh(conversation).assignee is None
    missing = client.post(
        action_url("conversation_assign", conversation), {"action": "choose", "assignee": ""}
    )
    assert "Choose the community manager to assign." in missing.content.decode()


def test_log_reply_with_its_url(client, manager, conversation):
    client.force_login(manager)

    page = post_and_follow(
        client,
        action_url("conversation_reply", conversation),
        {"text": "We are looking into it", "url": "https://twitter.example/reply/1"},
    )

    reply = Message.objects.get(conversation=conversation, direction="outbound")
    assert (reply.text, reply.url, reply.author_user) == (
        "We are looking into it",
        "https://twitter.example/reply/1",
        manager,
    )
    assert "Reply logged." in messages_of(page)
    assert fresh(conversation).first_response_at is not None


def test_reply_form_errors_keep_the_text(client, manager, conversation):
    client.force_login(manager)

    response = client.post(
        action_url("conversation_reply", conversation),
        {"text": "Keep me", "url": "javascript:alert(1)"},
    )

    assert response.status_code == 422
    assert "Keep me</textarea>" in response.content.decode()
    assert Message.objects.filter(direction="outbound").count() == 0


def test_add_note(client, manager, conversation):
    client.force_login(manager)

    page = post_and_follow(
        client, action_url("conversation_note", conversation), {"text": "Call them *tomorrow*"}
    )

    assert Note.objects.get(conversation=conversation).text == "Call them *tomorrow*"
    assert "Note added." in messages_of(page)
    assert "<em>tomorrow</em>" in page.content.decode()


def test_record_no_product_change(client, manager, conversation):
    to_react(conversation, manager)
    client.force_login(manager)
    url = action_url("conversation_no_change", conversation)

    page = post_and_follow(client, url, {"reason": "They only asked a question"})
    assert Event.objects.filter(
        conversation=conversation,
        kind=EventKind.NO_CHANGE_RECORDED,
        reason="They only asked a question",
    ).exists()
    assert "Recorded that no product change is needed in this cycle." in messages_of(page)
    # In react the reaction moves the cycle on at once (tests/test_react.py has the rest).
    assert "Moved to sell." in messages_of(page)
    assert fresh(conversation).stage == Stage.SELL

    again = post_and_follow(client, url, {"reason": "Twice"})
    assert any("is decided in react" in m for m in messages_of(again))
    assert Event.objects.filter(kind=EventKind.NO_CHANGE_RECORDED).count() == 1


def test_no_change_outside_react_is_refused(client, manager, conversation):
    client.force_login(manager)

    page = post_and_follow(
        client, action_url("conversation_no_change", conversation), {"reason": "Nothing to do"}
    )

    assert any("is decided in react" in m for m in messages_of(page))
    assert not Event.objects.filter(kind=EventKind.NO_CHANGE_RECORDED).exists()


def test_create_ticket_from_the_conversation(client, manager, conversation):
    client.force_login(manager)

    page = post_and_follow(
        client,
        action_url("conversation_create_ticket", conversation),
        {
            "title": "Export to CSV",
            "problem": "People need their data",
            "product_area": "reports",
            "quote": "I want a CSV",
        },
    )

    ticket = FeedbackTicket.objects.get()
    assert (ticket.title, ticket.product_area, ticket.created_by) == (
        "Export to CSV",
        "reports",
        manager,
    )
    link = FeedbackLink.objects.get()
    assert (link.conversation_id, link.quote) == (conversation.pk, "I want a CSV")
    assert "Ticket “Export to CSV” created with this conversation as evidence." in messages_of(page)
    assert "I want a CSV" in page.content.decode()


def test_create_ticket_needs_a_title(client, manager, conversation):
    client.force_login(manager)

    response = client.post(action_url("conversation_create_ticket", conversation), {"title": ""})

    assert response.status_code == 422
    assert FeedbackTicket.objects.count() == 0


def test_link_to_an_existing_ticket_and_twice_is_a_conflict(client, manager, conversation):
    ticket = feedback_services.create_ticket(actor=manager, title="Offline mode")
    client.force_login(manager)
    found = client.get(page_url(conversation) + "?ticket_q=offline").content.decode()
    assert f'name="ticket" value="{ticket.pk}"' in found
    url = action_url("conversation_link_ticket", conversation)

    page = post_and_follow(client, url, {"ticket": ticket.pk, "quote": "Works on the train?"})
    assert FeedbackLink.objects.get().quote == "Works on the train?"
    assert "Linked to ticket “Offline mode”." in messages_of(page)

    again = post_and_follow(client, url, {"ticket": ticket.pk, "quote": "again"})
    assert any("already evidence for this ticket" in m for m in messages_of(again))
    assert FeedbackLink.objects.count() == 1


def test_link_to_an_unknown_ticket_is_a_form_error(client, manager, conversation):
    client.force_login(manager)

    response = client.post(
        action_url("conversation_link_ticket", conversation), {"ticket": 424242, "quote": "q"}
    )

    assert response.status_code == 422
    assert FeedbackLink.objects.count() == 0


def test_set_priority(client, manager, conversation):
    client.force_login(manager)

    page = post_and_follow(
        client,
        action_url("conversation_priority", conversation),
        {"priority": "urgent", "version": fresh(conversation).version},
    )

    assert fresh(conversation).priority == Priority.URGENT
    assert "Priority is now urgent." in messages_of(page)


def test_set_state_snooze_close_and_reopen(client, manager, conversation):
    client.force_login(manager)
    url = action_url("conversation_state", conversation)

    missing = client.post(url, {"state": "snoozed", "version": fresh(conversation).version})
    assert missing.status_code == 422
    assert "Say until when to snooze." in missing.content.decode()

    past = client.post(
        url,
        {
            "state": "snoozed",
            "snoozed_until": "2001-01-01T10:00",
            "version": fresh(conversation).version,
        },
    )
    assert past.status_code == 422
    assert "Snooze until a time in the future." in past.content.decode()

    until = (timezone.localtime() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    page = post_and_follow(
        client,
        url,
        {"state": "snoozed", "snoozed_until": until, "version": fresh(conversation).version},
    )
    snoozed = fresh(conversation)
    assert snoozed.state == State.SNOOZED
    assert snoozed.snoozed_until > timezone.now()
    assert "The conversation is now snoozed." in messages_of(page)

    post_and_follow(client, url, {"state": "closed", "version": fresh(conversation).version})
    assert fresh(conversation).state == State.CLOSED
    body = client.get(page_url(conversation)).content.decode()
    assert "This conversation is closed: reopen it before moving it on." in body

    post_and_follow(client, url, {"state": "open", "version": fresh(conversation).version})
    assert (fresh(conversation).state, fresh(conversation).snoozed_until) == (State.OPEN, None)


# Untrusted text ----------------------------------------------------------------------------

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_untrusted_text_is_escaped_everywhere(client, manager):
    conversation = factories.conversation(
        text=f"Post {XSS}",
        author=conversation_services.Author(handle="mallory", name=f"Mallory {XSS}"),
    )
    # The services refuse such addresses; rows stored before that check may hold them.
    Conversation.objects.filter(pk=conversation.pk).update(url="javascript:alert(2)")
    Message.objects.filter(conversation=conversation).update(url="javascript:alert(2)")
    Contact.objects.filter(pk=conversation.contact_id).update(profile_url="javascript:alert(1)")
    conversation_services.add_note(
        conversation.pk, actor=manager, text=f"Note {XSS} [x](javascript:alert(3))"
    )
    conversation_services.log_reply(conversation.pk, actor=manager, text=f"Reply {XSS}")
    client.force_login(manager)

    for url in [page_url(conversation), reverse("queue")]:
        body = client.get(url).content.decode()
        assert "<script>alert" not in body, url
        assert "<img src=x" not in body, url
        assert '<img src="x"' not in body, url
        assert "javascript:" not in body, url
        assert "&lt;script&gt;" in body, url
    assert "Mallory &lt;script&gt;" in body


def test_pages_have_no_inline_styles_or_unnonced_scripts(client, manager, conversation):
    client.force_login(manager)

    for url in [reverse("queue"), page_url(conversation), reverse("login")]:
        body = client.get(url).content.decode()
        assert "style=" not in body, url
        assert "<style" not in body, url
        assert body.count("<script") == body.count('<script src="/static/'), url


# Query counts ------------------------------------------------------------------------------


def _conversation_queries(client, conversation, manager, extra: int) -> int:
    for i in range(extra):
        conversation_services.log_reply(conversation.pk, actor=manager, text=f"Reply {i}")
        conversation_services.add_note(conversation.pk, actor=manager, text=f"Note {i}")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(page_url(conversation))
    assert response.status_code == 200
    return len(queries)


def test_conversation_page_query_count_does_not_grow_with_its_history(client, manager):
    feedback_services.create_ticket(actor=manager, title="Something")
    small = factories.conversation(handle="same")
    large = factories.conversation(handle="same")
    factories.conversation(handle="same")
    conversation_services.assign(large.pk, manager, actor=manager)
    client.force_login(manager)

    few = _conversation_queries(client, small, manager, 1)
    many = _conversation_queries(client, large, manager, 15)

    assert Event.objects.filter(conversation=large).count() >= 30
    assert few == many
    # Session, user, roles, unread notifications; the conversation, tags, messages, notes,
    # events, links; the contact's other conversations, similar tickets (the search runs
    # only with ?ticket_q=, in place of the old list of tickets to link), community
    # managers, tag suggestions, saved replies; presence (upsert, who else is here); the
    # header's availability toggle.
    assert few == 18
