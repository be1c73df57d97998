"""The react step from the conversation page: similar tickets, search and link, the reaction
that moves the cycle on, and what to tell the person when their ticket ships.

Run on SQLite and on PostgreSQL (DATABASE_URL): similar_tickets has one path for each.
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from engage import queries
from engage.choices import EventKind, Stage, State, TicketStatus
from engage.models import Conversation, Event, FeedbackLink, FeedbackTicket
from engage.services import conversations as cs
from engage.services import feedback as fs
from tests import factories

pytestmark = pytest.mark.django_db

DESCALING = "Could you add a descaling reminder in the app? I always forget. Thanks!"


def page_url(conversation) -> str:
    return reverse("conversation", args=[conversation.pk])


def link_url(conversation) -> str:
    return reverse("conversation_link_ticket", args=[conversation.pk])


def search_url(conversation) -> str:
    return reverse("conversation_ticket_search", args=[conversation.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def fresh(conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def in_interact(actor, **overrides) -> Conversation:
    conversation = factories.conversation(**overrides)
    cs.assign(conversation.pk, actor, actor=actor)
    return cs.advance(conversation.pk, actor=actor)


def in_react(actor, **overrides) -> Conversation:
    conversation = in_interact(actor, **overrides)
    cs.log_reply(conversation.pk, actor=actor, text="Thanks, we are on it.")
    return cs.advance(conversation.pk, actor=actor)


@pytest.fixture
def descaling_tickets(manager):
    """The ticket a descaling conversation should find, and one it should not."""
    wanted = fs.create_ticket(
        actor=manager,
        title="App reminder for descaling",
        problem="People forget to descale the machine until the coffee tastes bitter.",
    )
    unrelated = fs.create_ticket(
        actor=manager,
        title="Quieter grinder",
        problem="The grinder wakes the whole house in the morning.",
    )
    return wanted, unrelated


# Similar tickets ----------------------------------------------------------------------------


def test_a_descaling_conversation_suggests_the_descaling_ticket_not_the_grinder(
    descaling_tickets, django_assert_num_queries
):
    wanted, unrelated = descaling_tickets
    conversation = factories.conversation(text="descaling reminder in the app")

    with django_assert_num_queries(1):
        found = queries.similar_tickets(conversation)

    assert found == [wanted], connection.vendor
    assert found[0].demand == 0


def test_similar_tickets_rank_title_matches_first_and_match_word_forms(manager):
    in_problem = fs.create_ticket(
        actor=manager, title="Water tank", problem="A reminder when the tank is nearly empty."
    )
    in_title = fs.create_ticket(actor=manager, title="Reminders to descale", problem="")
    conversation = factories.conversation(text="I would love a reminder for descaling, please")

    found = queries.similar_tickets(conversation)

    # "reminder" meets "Reminders", "descaling" meets "descale"; the title weighs more.
    assert found == [in_title, in_problem]


def test_similar_tickets_leave_out_merged_long_declined_and_already_linked_ones(manager, product):
    open_one = fs.create_ticket(actor=manager, title="Descaling reminder in the app")
    duplicate = fs.create_ticket(actor=manager, title="Descaling reminder")
    fs.merge_tickets(duplicate.pk, open_one.pk, actor=product)
    shipped_long_ago = fs.create_ticket(actor=manager, title="Descaling guide in the app")
    declined_lately = fs.create_ticket(actor=manager, title="Descaling timer")
    declined_long_ago = fs.create_ticket(actor=manager, title="Descaling alarm")
    for ticket, status in [
        (shipped_long_ago, TicketStatus.SHIPPED),
        (declined_lately, TicketStatus.DECLINED),
        (declined_long_ago, TicketStatus.DECLINED),
    ]:
        fs.change_ticket_status(ticket.pk, status, actor=product)
    FeedbackTicket.objects.filter(pk__in=[shipped_long_ago.pk, declined_long_ago.pk]).update(
        status_changed_at=timezone.now() - timedelta(days=400)
    )
    already = fs.create_ticket(actor=manager, title="Reminder for descaling the machine")
    conversation = factories.conversation(text="descaling reminder in the app")
    fs.link_evidence(already.pk, conversation.pk, actor=manager, quote="descaling reminder")

    found = queries.similar_tickets(conversation, limit=10)

    # A shipped one stays: linking to it asks for the person to be told that it exists.
    assert set(found) == {open_one, shipped_long_ago, declined_lately}
    assert found[0] == open_one


def test_a_text_without_significant_words_costs_no_query(manager, django_assert_num_queries):
    fs.create_ticket(actor=manager, title="Thanks for all")
    conversation = factories.conversation(text="Thanks for that! 100 :)")

    with django_assert_num_queries(0):
        assert queries.similar_tickets(conversation) == []


def test_the_page_suggests_similar_tickets_with_a_prefilled_quote(
    client, manager, descaling_tickets
):
    wanted, unrelated = descaling_tickets
    conversation = in_react(manager, text=DESCALING)
    client.force_login(manager)

    body = client.get(page_url(conversation)).text

    similar = body.split("Similar tickets", 1)[1].split("Create a ticket from this conversation")[0]
    assert f"#{wanted.pk} App reminder for descaling" in similar
    assert f'<a href="{reverse("feedback_ticket", args=[wanted.pk])}">' in similar
    assert "Quieter grinder" not in similar
    assert "0 people asked" in similar
    assert f'name="suggested-ticket" value="{wanted.pk}"' in similar
    assert "Link with this quote" in similar
    # The quote starts as the first sentence of the conversation, in an editable box.
    quote = re.search(
        r'<textarea name="suggested-quote"[^>]*id="id_suggested-quote">\n(.*?)<', similar
    )
    assert quote.group(1) == "Could you add a descaling reminder in the app?"
    assert '<label for="id_suggested-quote">Quote:</label>' in similar


def test_one_click_links_a_suggestion_and_moves_on_to_sell(client, manager, descaling_tickets):
    wanted, _unrelated = descaling_tickets
    conversation = in_react(manager, text=DESCALING)
    client.force_login(manager)

    response = client.post(
        link_url(conversation),
        {"suggested-ticket": wanted.pk, "suggested-quote": "  a descaling reminder in the app "},
    )

    assert response.status_code == 303
    link = FeedbackLink.objects.get()
    assert (link.ticket, link.conversation_id, link.quote) == (
        wanted,
        conversation.pk,
        "a descaling reminder in the app",
    )
    assert fresh(conversation).stage == Stage.SELL
    page = client.get(response["Location"])
    assert messages_of(page) == [
        "Linked to ticket “App reminder for descaling”.",
        "Moved to sell.",
    ]
    # Linked now, so no longer suggested.
    assert f'name="suggested-ticket" value="{wanted.pk}"' not in page.text


def test_an_emptied_suggestion_quote_is_shown_again_with_its_error(
    client, manager, descaling_tickets
):
    wanted, _unrelated = descaling_tickets
    conversation = in_react(manager, text=DESCALING)
    client.force_login(manager)

    response = client.post(
        link_url(conversation), {"suggested-ticket": wanted.pk, "suggested-quote": " "}
    )

    assert response.status_code == 422
    similar = response.text.split("Similar tickets", 1)[1].split("Create a ticket")[0]
    assert "This field is required." in similar
    assert FeedbackLink.objects.count() == 0
    assert fresh(conversation).stage == Stage.REACT


# Search and link ----------------------------------------------------------------------------


def test_search_lists_matching_tickets_with_status_and_demand_without_javascript(
    client, manager, product, descaling_tickets
):
    wanted, unrelated = descaling_tickets
    fs.change_ticket_status(wanted.pk, TicketStatus.PLANNED, actor=product)
    for _ in range(2):
        fs.link_evidence(wanted.pk, factories.conversation().pk, actor=manager, quote="q")
    conversation = in_interact(manager, text="Something else entirely")
    client.force_login(manager)

    # The search form's own action: the page, with the results in the link form.
    body = client.get(page_url(conversation) + "?ticket_q=DESCALE the").text

    results = body.split('id="ticket-results"', 1)[1].split("</details>")[0]
    assert f"#{wanted.pk} App reminder for descaling" in results
    assert "Planned" in results
    assert "2 people asked" in results
    assert f'name="ticket" value="{wanted.pk}"' in results
    assert "Quieter grinder" not in results
    assert '<input type="hidden" name="ticket_q" value="DESCALE the">' in results
    assert '<details id="link-ticket" open>' in body

    by_number = client.get(page_url(conversation) + f"?ticket_q=%23{unrelated.pk}").text
    assert f"#{unrelated.pk} Quieter grinder" in by_number

    nothing = client.get(page_url(conversation) + "?ticket_q=espresso").text
    assert "No ticket matches “espresso”." in nothing


def test_search_as_you_type_answers_with_the_results_fragment(client, manager, descaling_tickets):
    wanted, _unrelated = descaling_tickets
    conversation = factories.conversation()
    client.force_login(manager)

    fragment = client.get(
        search_url(conversation), {"ticket_q": "grinder"}, headers={"HX-Request": "true"}
    )

    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "Quieter grinder" in fragment.text
    assert "App reminder" not in fragment.text
    assert '<input type="hidden" name="ticket_q" value="grinder">' in fragment.text

    # Without htmx (a bookmark, a link opened in a new tab) the search is the page itself.
    plain = client.get(search_url(conversation), {"ticket_q": "grinder"})
    assert plain.status_code == 302
    assert plain["Location"] == page_url(conversation) + "?ticket_q=grinder#link-ticket"


def test_the_page_carries_the_htmx_search_hooks(client, manager, conversation):
    client.force_login(manager)
    body = client.get(page_url(conversation)).text
    assert f'hx-get="{search_url(conversation)}"' in body
    assert 'hx-target="#ticket-results"' in body
    assert f'<form method="get" action="{page_url(conversation)}#link-ticket"' in body
    assert "style=" not in body


def test_search_is_for_community_managers_only(client, product, outsider, conversation):
    for user in (product, outsider):
        client.force_login(user)
        response = client.get(
            search_url(conversation), {"ticket_q": "x"}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 403
    assert client.post(search_url(conversation)).status_code == 405


def test_merged_tickets_are_not_offered(client, manager, product):
    kept = fs.create_ticket(actor=manager, title="Descaling reminder")
    duplicate = fs.create_ticket(actor=manager, title="Descaling alert")
    fs.merge_tickets(duplicate.pk, kept.pk, actor=product)
    conversation = factories.conversation()
    client.force_login(manager)

    results = client.get(page_url(conversation) + "?ticket_q=descaling").text

    assert f'name="ticket" value="{kept.pk}"' in results
    assert f'name="ticket" value="{duplicate.pk}"' not in results


def test_link_from_search_in_interact_records_evidence_without_moving_on(
    client, manager, descaling_tickets
):
    wanted, _unrelated = descaling_tickets
    conversation = in_interact(manager)
    client.force_login(manager)

    response = client.post(
        link_url(conversation), {"ticket": wanted.pk, "quote": "remind me", "ticket_q": "desc"}
    )

    assert response.status_code == 303
    assert FeedbackLink.objects.get().quote == "remind me"
    assert fresh(conversation).stage == Stage.INTERACT
    page = client.get(response["Location"])
    assert messages_of(page) == ["Linked to ticket “App reminder for descaling”."]


def test_a_search_link_error_lists_the_results_again(client, manager, descaling_tickets):
    wanted, _unrelated = descaling_tickets
    conversation = in_react(manager)
    client.force_login(manager)

    response = client.post(
        link_url(conversation), {"ticket": wanted.pk, "quote": "", "ticket_q": "descaling"}
    )

    assert response.status_code == 422
    link_part = response.text.split('<details id="link-ticket" open>', 1)[1]
    assert "This field is required." in link_part
    assert f'name="ticket" value="{wanted.pk}"' in link_part
    assert fresh(conversation).stage == Stage.REACT


def test_linking_a_missing_ticket_is_a_form_error(client, manager):
    conversation = in_react(manager)
    client.force_login(manager)

    response = client.post(link_url(conversation), {"ticket": 424242, "quote": "q"})

    assert response.status_code == 422
    assert "Ticket 424242 does not exist." in response.text
    assert fresh(conversation).stage == Stage.REACT


def test_the_product_team_gets_no_suggestions_search_or_link_forms(
    client, manager, product, descaling_tickets
):
    conversation = in_react(manager, text=DESCALING)
    client.force_login(product)

    body = client.get(page_url(conversation) + "?ticket_q=descaling").text

    assert "Similar tickets" not in body
    assert search_url(conversation) not in body
    assert link_url(conversation) not in body
    wanted = descaling_tickets[0]
    response = client.post(link_url(conversation), {"ticket": wanted.pk, "quote": "q"})
    assert response.status_code == 403
    assert FeedbackLink.objects.count() == 0


# The reaction moves the cycle on --------------------------------------------------------------


def test_creating_a_ticket_in_react_moves_on_to_sell(client, manager):
    conversation = in_react(manager)
    client.force_login(manager)

    response = client.post(
        reverse("conversation_create_ticket", args=[conversation.pk]), {"title": "Bigger tank"}
    )

    assert response.status_code == 303
    assert fresh(conversation).stage == Stage.SELL
    assert messages_of(client.get(response["Location"])) == [
        "Ticket “Bigger tank” created with this conversation as evidence.",
        "Moved to sell.",
    ]
    kinds = list(
        Event.objects.filter(conversation=conversation)
        .order_by("id")
        .values_list("kind", "to_stage")[3:]
    )
    assert kinds[-2:] == [(EventKind.FEEDBACK_LINKED, ""), (EventKind.STAGE_CHANGED, Stage.SELL)]


def test_creating_a_ticket_in_listen_keeps_the_stage(client, manager, conversation):
    client.force_login(manager)

    response = client.post(
        reverse("conversation_create_ticket", args=[conversation.pk]), {"title": "Bigger tank"}
    )

    assert response.status_code == 303
    assert fresh(conversation).stage == Stage.LISTEN
    assert FeedbackLink.objects.filter(conversation=conversation).exists()
    assert messages_of(client.get(response["Location"])) == [
        "Ticket “Bigger tank” created with this conversation as evidence."
    ]


def test_no_change_in_react_moves_on_to_sell(client, manager):
    conversation = in_react(manager)
    client.force_login(manager)

    response = client.post(
        reverse("conversation_no_change", args=[conversation.pk]), {"reason": "Just a question"}
    )

    assert response.status_code == 303
    after = fresh(conversation)
    assert (after.stage, after.cycle) == (Stage.SELL, 1)
    assert messages_of(client.get(response["Location"])) == [
        "Recorded that no product change is needed in this cycle.",
        "Moved to sell.",
    ]


def test_a_closed_conversation_keeps_its_reaction_and_says_why_it_stays(client, manager):
    conversation = in_react(manager)
    cs.set_state(conversation.pk, State.CLOSED, actor=manager)
    ticket = fs.create_ticket(actor=manager, title="Bigger tank")
    client.force_login(manager)

    response = client.post(link_url(conversation), {"ticket": ticket.pk, "quote": "q"})

    assert response.status_code == 303
    assert FeedbackLink.objects.filter(conversation=conversation).exists()
    assert fresh(conversation).stage == Stage.REACT
    assert messages_of(client.get(response["Location"])) == [
        "Linked to ticket “Bigger tank”.",
        "This conversation is closed: reopen it before moving it on.",
    ]


def test_linking_in_sell_or_a_second_ticket_does_not_move_anything(client, manager):
    conversation = in_react(manager)
    first, second = (fs.create_ticket(actor=manager, title=t) for t in ("One", "Two"))
    client.force_login(manager)
    client.post(link_url(conversation), {"ticket": first.pk, "quote": "q"})
    version = fresh(conversation).version

    response = client.post(link_url(conversation), {"ticket": second.pk, "quote": "q"})

    assert response.status_code == 303
    after = fresh(conversation)
    assert (after.stage, after.version) == (Stage.SELL, version)
    assert FeedbackLink.objects.filter(conversation=conversation).count() == 2


# Follow-up: what to tell the person -----------------------------------------------------------


def test_a_follow_up_shows_the_ticket_its_status_and_the_product_note(client, manager, product):
    conversation = in_react(manager, text=DESCALING)
    ticket = fs.create_ticket(
        actor=manager, title="App reminder for descaling", conversation_id=conversation.pk
    )
    fs.change_ticket_status(
        ticket.pk, TicketStatus.SHIPPED, actor=product, note="In version 2.3 of the app."
    )
    client.force_login(manager)

    body = client.get(page_url(conversation)).text

    thread = body.split('id="thread-heading"', 1)[1].split('id="notes-heading"')[0]
    tell = thread.split("Tell them:", 1)[1].split("Log a reply")[0]
    assert "“App reminder for descaling” is now shipped." in tell
    assert "The product team's note:" in tell
    assert "In version 2.3 of the app." in tell

    client.post(
        reverse("conversation_reply", args=[conversation.pk]),
        {"text": "It shipped in 2.3: update the app!"},
    )
    after = client.get(page_url(conversation)).text
    assert "Tell them:" not in after
    assert FeedbackLink.objects.get().told_at is not None


def test_a_follow_up_without_a_note_names_the_tickets_only(client, manager, product):
    conversation = factories.conversation()
    ticket = fs.create_ticket(actor=manager, title="Dark mode", conversation_id=conversation.pk)
    told_before = fs.create_ticket(actor=manager, title="Old news")
    fs.link_evidence(told_before.pk, conversation.pk, actor=manager, quote="q")
    fs.change_ticket_status(told_before.pk, TicketStatus.DECLINED, actor=product)
    cs.log_reply(conversation.pk, actor=manager, text="Sorry, not planned.")
    fs.change_ticket_status(ticket.pk, TicketStatus.DECLINED, actor=product)
    client.force_login(product)

    body = client.get(page_url(conversation)).text

    tell = body.split("Tell them:", 1)[1].split("</div>")[0]
    assert "“Dark mode” is now declined." in tell
    assert "Old news" not in tell
    assert "note:" not in tell


def test_the_page_costs_the_same_queries_with_suggestions_and_follow_ups(client, manager, product):
    conversation = in_react(manager, text=DESCALING)
    client.force_login(manager)

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(page_url(conversation)).status_code == 200
        return len(captured)

    client.get(page_url(conversation))  # the viewer's presence row exists from now on
    before = count()
    for i in range(5):
        ticket = fs.create_ticket(actor=manager, title=f"Descaling reminder {i}")
        fs.link_evidence(ticket.pk, factories.conversation().pk, actor=manager, quote="q")
    linked = fs.create_ticket(actor=manager, title="Reminder", conversation_id=conversation.pk)
    fs.change_ticket_status(linked.pk, TicketStatus.SHIPPED, actor=product, note="Out now")
    assert len(queries.similar_tickets(fresh(conversation))) == 5

    assert count() == before
