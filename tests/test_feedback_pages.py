"""The product team's pages: the board, a ticket, its actions, the CSV export, and the API list."""

import csv
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.http import urlencode

from engage.choices import EventKind, TicketStatus
from engage.models import Conversation, Event, FeedbackLink, FeedbackTicket
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from engage.views import feedback as feedback_views
from tests import factories

pytestmark = pytest.mark.django_db

API = "/api/v1"


def said(channel="twitter", language="", handle=None, sentiment="", manager=None, **overrides):
    """A conversation on `channel` in `language` (enrichment writes these: no service yet)."""
    fields = {"channel": channel}
    if handle:
        fields["handle"] = handle
    conversation = factories.conversation(**fields, **overrides)
    Conversation.objects.filter(pk=conversation.pk).update(language=language, sentiment=sentiment)
    if manager is not None:
        conversation_services.assign(conversation.pk, manager, actor=manager)
    return Conversation.objects.get(pk=conversation.pk)


def ticket_with(actor, title, *conversations, quote="I need this", **fields):
    ticket = feedback_services.create_ticket(actor=actor, title=title, **fields)
    for conversation in conversations:
        feedback_services.link_evidence(ticket.pk, conversation.pk, actor=actor, quote=quote)
    return ticket


def board_url(**query) -> str:
    return reverse("feedback_board") + (f"?{urlencode(query)}" if query else "")


def ticket_url(ticket) -> str:
    return reverse("feedback_ticket", args=[ticket.pk])


def columns(response) -> dict[str, list[int]]:
    """The board as {status: [ticket ids in order]}."""
    assert response.status_code == 200, response.content[:500]
    return {column.status: [t.pk for t in column.tickets] for column in response.context["columns"]}


def shown(response) -> list[int]:
    return [pk for ids in columns(response).values() for pk in ids]


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def post_and_follow(client, url, data):
    response = client.post(url, data)
    assert response.status_code == 303, response.content[:800]
    return client.get(response["Location"])


def text_of(response) -> str:
    """The page's text, tags and extra spaces removed."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", body)


def count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(context)


# The board --------------------------------------------------------------------------------------


def test_the_board_groups_tickets_by_status_in_the_cycle_order(as_product, manager, product):
    tickets = {}
    for status in TicketStatus:
        tickets[status] = ticket_with(manager, f"Ticket {status}", said())
        if status != TicketStatus.NEW:
            feedback_services.change_ticket_status(tickets[status].pk, status, actor=product)

    response = as_product.get(board_url())

    assert columns(response) == {status.value: [tickets[status].pk] for status in TicketStatus}
    body = response.content.decode()
    positions = [body.index(f'id="column-{status}"') for status in TicketStatus]
    assert positions == sorted(positions)
    assert 'style="' not in body
    assert "<script>" not in body


def test_the_board_ranks_by_distinct_people_then_the_latest_evidence(as_product, manager):
    ada_one, ada_two = said(handle="ada"), said(handle="ada")
    one_person_twice = ticket_with(manager, "Asked twice by Ada", ada_one, ada_two)
    three_people = ticket_with(manager, "Three people", said(), said(), said())
    older_two = ticket_with(manager, "Two people, earlier", said(), said())
    newer_two = ticket_with(manager, "Two people, later", said(), said())
    nobody = ticket_with(manager, "No evidence yet")

    response = as_product.get(board_url())

    assert columns(response)["new"] == [
        three_people.pk,
        newer_two.pk,
        older_two.pk,
        one_person_twice.pk,
        nobody.pk,
    ]
    card = re.search(
        rf'data-ticket="{one_person_twice.pk}".*?</li>', response.content.decode(), re.S
    ).group(0)
    assert 'data-demand="1"' in card
    assert "1 person" in card
    assert "2 conversations" in card
    assert "3 people" in text_of(response)


def test_the_board_filters_by_area_channel_language_text_and_status(as_product, manager, product):
    dark = ticket_with(
        manager, "Dark mode", said("twitter", "en"), product_area="app", problem="Bright at night"
    )
    decaf = ticket_with(manager, "Decaf", said("instagram", "it"), product_area="menu")
    cups = ticket_with(manager, "Bigger cups", said("forum", "it"), product_area="menu")
    feedback_services.change_ticket_status(cups.pk, TicketStatus.PLANNED, actor=product)

    def found(**query):
        return sorted(shown(as_product.get(board_url(**query))))

    assert found() == sorted([dark.pk, decaf.pk, cups.pk])
    assert found(product_area="menu") == sorted([decaf.pk, cups.pk])
    assert found(channel="instagram") == [decaf.pk]
    assert found(language="it") == sorted([decaf.pk, cups.pk])
    assert found(language="IT", channel="forum") == [cups.pk]
    assert found(q="dark") == [dark.pk]
    assert found(q="at night") == [dark.pk]  # every word, in the problem statement
    assert found(q="cups menu") == []
    assert found(status="planned") == [cups.pk]
    assert found(status="planned", product_area="app") == []
    # The filters stay in the form, so the page can be bookmarked and shared.
    page = as_product.get(board_url(channel="instagram", q="decaf")).content.decode()
    assert '<option value="instagram" selected>' in page
    assert 'value="decaf"' in page


def test_a_filter_by_channel_keeps_the_whole_demand(as_product, manager):
    ticket = ticket_with(manager, "Dark mode", said("twitter"), said("facebook"), said("facebook"))

    response = as_product.get(board_url(channel="twitter"))

    assert columns(response)["new"] == [ticket.pk]
    assert response.context["columns"][0].tickets[0].demand == 3


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "someday"}, "is not a ticket status"),
        ({"channel": "fax"}, "is not a channel"),
        ({"language": "x" * 15}, "is not a language code"),
    ],
)
def test_a_bad_filter_is_explained_not_ignored(as_product, query, message):
    response = as_product.get(board_url(**query))

    assert response.status_code == 400
    assert message in response.content.decode()


def test_merged_tickets_never_appear_on_the_board(as_product, manager, product):
    duplicate = ticket_with(manager, "Night theme", said())
    kept = ticket_with(manager, "Dark mode", said())
    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)

    response = as_product.get(board_url())

    assert shown(response) == [kept.pk]
    assert "Night theme" not in response.content.decode()
    assert shown(as_product.get(board_url(q="night"))) == []


def test_shipped_and_declined_cards_say_how_many_people_were_told(as_product, manager, product):
    first, second = said(manager=manager), said(manager=manager)
    shipped = ticket_with(manager, "Oat milk", first, second)
    planned = ticket_with(manager, "Soy milk", said())
    feedback_services.change_ticket_status(shipped.pk, TicketStatus.SHIPPED, actor=product)
    feedback_services.change_ticket_status(planned.pk, TicketStatus.PLANNED, actor=product)
    conversation_services.log_reply(first.pk, actor=manager, text="Oat milk is here!")

    body = as_product.get(board_url()).content.decode()

    shipped_card = re.search(rf'data-ticket="{shipped.pk}".*?</li>', body, re.S).group(0)
    planned_card = re.search(rf'data-ticket="{planned.pk}".*?</li>', body, re.S).group(0)
    assert "told 1 of 2" in shipped_card
    assert "told" not in planned_card


def test_the_board_shows_the_top_of_each_status_and_how_many_more(as_product, manager, monkeypatch):
    monkeypatch.setattr(feedback_views, "BOARD_PER_STATUS", 2)
    monkeypatch.setattr(feedback_views, "STATUS_PAGE", 2)
    tickets = [ticket_with(manager, f"T{n}", *(said() for _ in range(5 - n))) for n in range(5)]

    board = as_product.get(board_url())

    assert columns(board)["new"] == [tickets[0].pk, tickets[1].pk]
    assert "3 more" in text_of(board)
    assert f'href="{board_url(status="new")}"' in board.content.decode()
    first = as_product.get(board_url(status="new"))
    assert columns(first) == {"new": [tickets[0].pk, tickets[1].pk]}
    second = as_product.get(board_url(status="new", page=2))
    assert columns(second) == {"new": [tickets[2].pk, tickets[3].pk]}
    assert "Previous page" in second.content.decode()
    last = as_product.get(board_url(status="new", page=3))
    assert columns(last) == {"new": [tickets[4].pk]}
    assert "Next page" not in last.content.decode()


def test_the_board_costs_the_same_queries_for_3_and_30_tickets(as_product, manager, product):
    def make(count):
        for n in range(count):
            ticket = ticket_with(
                manager, f"Ticket {n}", said(), said(), said(), product_area=f"area {n % 4}"
            )
            feedback_services.update_ticket(ticket.pk, actor=product, owner=product)
            if n % 3 == 0:
                feedback_services.change_ticket_status(
                    ticket.pk, TicketStatus.SHIPPED, actor=product
                )

    make(3)
    few = count_queries(as_product, board_url())
    make(27)
    many = count_queries(as_product, board_url())
    filtered = count_queries(as_product, board_url(channel="twitter", q="ticket"))

    assert len(shown(as_product.get(board_url()))) == 30
    assert few == many == filtered


def test_everyone_with_a_role_reads_the_board_others_do_not(client, manager, outsider):
    assert client.get(board_url())["Location"].startswith(reverse("login"))
    client.force_login(outsider)
    assert client.get(board_url()).status_code == 403
    client.force_login(manager)
    assert client.get(board_url()).status_code == 200


def test_the_nav_leads_to_the_board(as_manager):
    body = as_manager.get(board_url()).content.decode()

    assert f'<a href="{reverse("feedback_board")}" aria-current="page">Feedback</a>' in body


# One ticket -----------------------------------------------------------------------------------


def test_the_ticket_page_shows_the_problem_and_every_piece_of_evidence(as_product, manager):
    ada = said("instagram", "it", handle="ada", sentiment="negative")
    bob = said("twitter", "en", handle="bob", sentiment="positive")
    ticket = ticket_with(
        manager, "Oat milk", product_area="menu", problem="Lactose-free options are missing"
    )
    feedback_services.link_evidence(ticket.pk, ada.pk, actor=manager, quote="Latte d'avena?")
    feedback_services.link_evidence(ticket.pk, bob.pk, actor=manager, quote="Oat milk please")

    response = as_product.get(ticket_url(ticket))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Lactose-free options are missing" in body
    assert "menu" in body
    items = re.findall(r'<li class="evidence-item".*?</li>', body, re.S)
    assert len(items) == 2
    # Newest first.
    assert "Oat milk please" in items[0]
    assert "@bob" in items[0] or "bob" in items[0]
    assert "Twitter / X" in items[0]
    assert "Positive" in items[0]
    assert f'href="{reverse("conversation", args=[bob.pk])}"' in items[0]
    assert "Latte d&#x27;avena?" in items[1]
    assert "Instagram" in items[1]
    assert "Negative" in items[1]
    assert "2 people asked" in text_of(response)
    assert "waiting for a reply" not in body  # not shipped: nobody is waiting to be told
    assert 'style="' not in body


def test_told_n_of_m_goes_up_when_a_community_manager_tells_the_person(
    as_product, manager, product
):
    first, second = said(manager=manager), said(manager=manager)
    ticket = ticket_with(manager, "Oat milk", first, second)
    feedback_services.change_ticket_status(
        ticket.pk, TicketStatus.SHIPPED, actor=product, note="From Monday"
    )

    before = as_product.get(ticket_url(ticket))
    assert "told 0 of 2 people" in text_of(before)
    assert before.content.decode().count("data-waiting") == 2
    assert "See the follow-ups in the queue" in before.content.decode()
    assert "From Monday" in before.content.decode()

    conversation_services.log_reply(first.pk, actor=manager, text="Oat milk is here!")

    after = as_product.get(ticket_url(ticket))
    assert "told 1 of 2 people" in text_of(after)
    assert after.content.decode().count("data-waiting") == 1
    assert "told on" in after.content.decode()


def test_the_follow_ups_show_in_the_queue_filter_even_for_closed_conversations(
    as_product, manager, product
):
    waiting, closed = said(manager=manager), said(manager=manager)
    ticket = ticket_with(manager, "Oat milk", waiting, closed)
    conversation_services.set_state(closed.pk, "closed", actor=manager)
    said(manager=manager)  # not evidence: no follow-up

    feedback_services.change_ticket_status(ticket.pk, TicketStatus.DECLINED, actor=product)

    queue = as_product.get(reverse("queue") + "?follow_up=yes")
    assert sorted(row.pk for row in queue.context["page"].items) == [waiting.pk, closed.pk]


def test_a_merged_ticket_page_redirects_to_the_kept_ticket(as_product, manager, product):
    duplicate = ticket_with(manager, "Night theme", said())
    kept = ticket_with(manager, "Dark mode")
    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=product)

    response = as_product.get(ticket_url(duplicate))

    assert response.status_code == 302
    assert response["Location"] == ticket_url(kept)
    page = as_product.get(ticket_url(kept)).content.decode()
    assert "Night theme" in page  # in the history and the "merged into this ticket" list
    assert as_product.get(reverse("feedback_ticket", args=[424242])).status_code == 404


def test_the_ticket_page_costs_the_same_queries_for_2_and_20_links(as_product, manager, product):
    ticket = ticket_with(manager, "Oat milk", said(manager=manager), said())
    feedback_services.update_ticket(ticket.pk, actor=product, owner=product)
    feedback_services.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)
    few = count_queries(as_product, ticket_url(ticket))
    for _ in range(18):
        feedback_services.link_evidence(
            ticket.pk, said(manager=manager).pk, actor=manager, quote="me too"
        )
    other = ticket_with(manager, "Merged", said())
    feedback_services.merge_tickets(other.pk, ticket.pk, actor=product)

    many = count_queries(as_product, ticket_url(ticket))

    assert few == many


# Product team actions --------------------------------------------------------------------------


def test_the_product_team_changes_the_status_with_a_note(as_product, manager, product):
    waiting = said(manager=manager)
    ticket = ticket_with(manager, "Oat milk", waiting)

    page = post_and_follow(
        as_product,
        reverse("feedback_status", args=[ticket.pk]),
        {"status": "shipped", "note": "In every shop from Monday"},
    )

    assert any(m.startswith("Now shipped.") for m in messages_of(page))
    assert FeedbackTicket.objects.get(pk=ticket.pk).status == TicketStatus.SHIPPED
    event = Event.objects.get(ticket=ticket, kind=EventKind.TICKET_STATUS_CHANGED)
    assert (event.reason, event.actor) == ("In every shop from Monday", product)
    flagged = Event.objects.get(conversation=waiting, kind=EventKind.FOLLOW_UP_FLAGGED)
    assert flagged.data["note"] == "In every shop from Monday"
    assert "In every shop from Monday" in page.content.decode()


def test_the_product_team_assigns_an_owner_and_clears_it(as_product, manager, product, staff):
    ticket = ticket_with(manager, "Oat milk")
    url = reverse("feedback_owner", args=[ticket.pk])

    page = post_and_follow(as_product, url, {"owner": "admin"})
    assert FeedbackTicket.objects.get(pk=ticket.pk).owner == staff
    assert "admin owns the ticket now." in messages_of(page)

    page = post_and_follow(as_product, url, {"owner": ""})
    assert FeedbackTicket.objects.get(pk=ticket.pk).owner is None

    refused = as_product.post(url, {"owner": "manager"})  # not offered: not product team
    assert refused.status_code == 422
    assert "Select a valid choice" in refused.content.decode()


def test_the_product_team_edits_a_ticket_and_a_blank_title_is_shown_as_an_error(
    as_product, manager
):
    ticket = ticket_with(manager, "Oat milk")
    url = reverse("feedback_edit", args=[ticket.pk])

    page = post_and_follow(
        as_product, url, {"title": "Plant milks", "problem": "Vegans", "product_area": "menu"}
    )
    assert "Ticket saved." in messages_of(page)
    saved = FeedbackTicket.objects.get(pk=ticket.pk)
    assert (saved.title, saved.problem, saved.product_area) == ("Plant milks", "Vegans", "menu")

    refused = as_product.post(url, {"title": "  ", "problem": "x", "product_area": ""})
    assert refused.status_code == 422
    assert "A ticket needs a title." in refused.content.decode()
    assert "<details open>" in refused.content.decode()
    assert FeedbackTicket.objects.get(pk=ticket.pk).title == "Plant milks"


def test_the_product_team_merges_a_duplicate_from_its_page(as_product, manager, product):
    duplicate = ticket_with(manager, "Night theme", said(), quote="too bright")
    kept = ticket_with(manager, "Dark mode", said())

    response = as_product.post(reverse("feedback_merge", args=[duplicate.pk]), {"into": kept.pk})

    assert response.status_code == 303
    assert response["Location"] == ticket_url(kept)
    page = as_product.get(response["Location"])
    assert any("merged into this one" in m for m in messages_of(page))
    assert "too bright" in page.content.decode()
    assert "2 people asked" in text_of(page)
    assert FeedbackTicket.objects.get(pk=duplicate.pk).merged_into_id == kept.pk


@pytest.mark.parametrize(
    ("into", "status", "message"),
    [
        ("self", 422, "cannot be merged into itself"),
        (424242, 422, "does not exist"),
        ("", 422, "Give the number of the ticket to keep."),
        ("merged", 303, "merge into that one instead"),
    ],
)
def test_a_refused_merge_says_why(as_product, manager, product, into, status, message):
    ticket = ticket_with(manager, "Dark mode", said())
    merged = ticket_with(manager, "Merged away")
    elsewhere = ticket_with(manager, "Elsewhere")
    feedback_services.merge_tickets(merged.pk, elsewhere.pk, actor=product)
    value = {"self": ticket.pk, "merged": merged.pk}.get(into, into)

    response = as_product.post(reverse("feedback_merge", args=[ticket.pk]), {"into": value})

    assert response.status_code == status
    if status == 303:
        assert any(message in m for m in messages_of(as_product.get(response["Location"])))
    else:
        assert message in response.content.decode()
    assert FeedbackTicket.objects.get(pk=ticket.pk).merged_into_id is None


ACTIONS = ["feedback_status", "feedback_owner", "feedback_edit", "feedback_merge"]


def test_community_managers_read_tickets_without_forms_and_get_403_on_actions(as_manager, manager):
    ticket = ticket_with(manager, "Oat milk", said())
    other = ticket_with(manager, "Other")

    page = as_manager.get(ticket_url(ticket))

    assert page.status_code == 200
    body = page.content.decode()
    assert "only the product team changes its status" in body
    for name in ACTIONS:
        assert reverse(name, args=[ticket.pk]) not in body
    bodies = {
        "feedback_status": {"status": "shipped"},
        "feedback_owner": {"owner": "manager"},
        "feedback_edit": {"title": "Mine"},
        "feedback_merge": {"into": other.pk},
    }
    for name in ACTIONS:
        response = as_manager.post(reverse(name, args=[ticket.pk]), bodies[name])
        assert response.status_code == 403, name
    unchanged = FeedbackTicket.objects.get(pk=ticket.pk)
    assert (unchanged.status, unchanged.title, unchanged.merged_into_id) == (
        "new",
        "Oat milk",
        None,
    )


def test_the_product_team_gets_every_form(as_product, manager):
    ticket = ticket_with(manager, "Oat milk")

    body = as_product.get(ticket_url(ticket)).content.decode()

    for name in ACTIONS:
        assert f'action="{reverse(name, args=[ticket.pk])}"' in body
    assert 'for="id_status_note"' in body
    assert 'for="id_merge_into"' in body


def test_outsiders_and_anonymous_visitors_are_refused(client, manager, outsider):
    ticket = ticket_with(manager, "Oat milk")
    urls = [ticket_url(ticket), reverse("feedback_export")]
    for url in urls:
        assert client.get(url)["Location"].startswith(reverse("login")), url
    for name in ACTIONS:
        response = client.post(reverse(name, args=[ticket.pk]), {})
        assert response["Location"].startswith(reverse("login")), name

    client.force_login(outsider)
    for url in [*urls, board_url()]:
        assert client.get(url).status_code == 403, url
    for name in ACTIONS:
        assert client.post(reverse(name, args=[ticket.pk]), {}).status_code == 403, name


def test_actions_are_post_only(as_product, manager):
    ticket = ticket_with(manager, "Oat milk")

    for name in ACTIONS:
        assert as_product.get(reverse(name, args=[ticket.pk])).status_code == 405, name


# Export ---------------------------------------------------------------------------------------


def read_csv(response) -> list[dict]:
    assert response.status_code == 200, getattr(response, "content", b"")[:500]
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="feedback-')
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_export_lists_every_ticket_with_its_demand(as_product, manager, product):
    told, waiting = said(manager=manager), said(manager=manager)
    shipped = ticket_with(manager, "Oat milk", told, waiting, said(handle="x"), product_area="menu")
    feedback_services.update_ticket(shipped.pk, actor=product, owner=product)
    feedback_services.change_ticket_status(shipped.pk, TicketStatus.SHIPPED, actor=product)
    conversation_services.log_reply(told.pk, actor=manager, text="It's here")
    fresh_ticket = ticket_with(manager, "Decaf")
    merged = ticket_with(manager, "Merged away")
    feedback_services.merge_tickets(merged.pk, fresh_ticket.pk, actor=product)

    rows = read_csv(as_product.get(reverse("feedback_export")))

    assert list(rows[0]) == feedback_views.EXPORT_COLUMNS
    assert [row["id"] for row in rows] == [str(fresh_ticket.pk), str(shipped.pk)]
    row = rows[1]
    assert row["title"] == "Oat milk"
    assert row["product_area"] == "menu"
    assert row["status"] == "shipped"
    assert row["owner"] == "product"
    assert (row["demand"], row["evidence_count"], row["told_people"]) == ("3", "3", "1")
    assert row["latest_evidence_at"]
    assert row["created_at"]
    assert row["status_changed_at"]
    assert row["url"].endswith(ticket_url(shipped))
    assert rows[0]["latest_evidence_at"] == ""


def test_the_export_takes_the_board_filters(as_product, manager, product):
    decaf = ticket_with(manager, "Decaf", said("instagram", "it"), product_area="menu")
    ticket_with(manager, "Dark mode", said("twitter", "en"), product_area="app")

    def ids(**query):
        url = reverse("feedback_export") + "?" + urlencode(query)
        return [row["id"] for row in read_csv(as_product.get(url))]

    assert ids(product_area="menu") == [str(decaf.pk)]
    assert ids(channel="instagram") == [str(decaf.pk)]
    assert ids(language="it") == [str(decaf.pk)]
    assert ids(q="decaf") == [str(decaf.pk)]
    assert ids(status="shipped") == []
    assert as_product.get(reverse("feedback_export") + "?status=someday").status_code == 400


def test_the_export_defuses_spreadsheet_formulas(as_product, manager, product):
    for title in ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2", "@SUM(A1)", "Safe"]:
        ticket_with(manager, title, product_area="=cmd|' /C calc'!A0")

    rows = read_csv(as_product.get(reverse("feedback_export")))

    titles = sorted(row["title"] for row in rows)
    assert titles == sorted(
        ['\'=HYPERLINK("http://evil.example","x")', "'+1+1", "'-2", "'@SUM(A1)", "Safe"]
    )
    assert {row["product_area"] for row in rows} == {"'=cmd|' /C calc'!A0"}
    assert all(row["demand"] == "0" for row in rows)


def test_the_csv_cell_helper():
    assert feedback_views.csv_cell("=1") == "'=1"
    assert feedback_views.csv_cell("\t=1") == "'\t=1"
    assert feedback_views.csv_cell("a=1") == "a=1"
    assert feedback_views.csv_cell(7) == "7"
    assert feedback_views.csv_cell(None) == ""


# The JSON API --------------------------------------------------------------------------------


def api_get(client, path):
    response = client.get(API + path)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_api_list_takes_the_board_filters(as_product, manager, product):
    decaf = ticket_with(
        manager,
        "Decaf",
        *(said("instagram", "it") for _ in range(3)),
        product_area="menu",
    )
    dark = ticket_with(manager, "Dark mode", said("twitter", "en"), product_area="app")
    merged = ticket_with(manager, "Night theme", said("twitter", "en"))
    feedback_services.merge_tickets(merged.pk, dark.pk, actor=product)
    feedback_services.change_ticket_status(dark.pk, TicketStatus.PLANNED, actor=product)

    def ids(query=""):
        return [row["id"] for row in api_get(as_product, f"/feedback?{query}")["items"]]

    assert ids() == [decaf.pk, dark.pk]
    assert ids("channel=instagram") == [decaf.pk]
    assert ids("language=en") == [dark.pk]
    assert ids("q=dark") == [dark.pk]
    assert ids("q=night") == []  # the merged ticket is gone
    assert ids("status=planned") == [dark.pk]
    assert ids("product_area=menu") == [decaf.pk]
    row = api_get(as_product, "/feedback?channel=instagram")["items"][0]
    assert row["demand"] == 3
    assert api_get(as_product, "/feedback?q=dark")["items"][0]["demand"] == 2  # with the merged
    assert row["latest_evidence_at"] is not None
    assert row["told_people"] == 0
    assert row["merged_into"] is None
    bad = as_product.get(API + "/feedback?channel=fax")
    assert bad.status_code == 422
    assert {error["field"] for error in bad.json()["detail"]} == {"channel"}


def test_the_api_merges_a_duplicate(client, manager, product):
    duplicate = ticket_with(manager, "Night theme", said(), quote="too bright")
    kept = ticket_with(manager, "Dark mode", said())
    url = f"{API}/feedback/{duplicate.pk}/merge"

    client.force_login(manager)
    refused = client.post(url, {"into": kept.pk}, content_type="application/json")
    assert refused.status_code == 403

    client.force_login(product)
    response = client.post(url, {"into": kept.pk}, content_type="application/json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["id"] == kept.pk
    assert data["demand"] == 2
    assert "too bright" in [evidence["quote"] for evidence in data["evidence"]]
    assert data["events"][-1]["kind"] == "ticket_merged"
    assert api_get(client, f"/feedback/{duplicate.pk}")["merged_into"] == kept.pk

    again = client.post(url, {"into": kept.pk}, content_type="application/json")
    assert again.status_code == 409
    assert "already merged" in again.json()["detail"]

    def fields(body, path=url):
        response = client.post(path, body, content_type="application/json")
        assert response.status_code == 422, response.content
        return {error["field"] for error in response.json()["detail"]}

    assert fields({"into": kept.pk}, f"{API}/feedback/{kept.pk}/merge") == {"into"}
    assert fields({"into": 424242}, f"{API}/feedback/{kept.pk}/merge") == {"into"}
    assert fields({}, f"{API}/feedback/{kept.pk}/merge") == {"into"}
    missing = client.post(
        f"{API}/feedback/424242/merge", {"into": kept.pk}, content_type="application/json"
    )
    assert missing.status_code == 404
    assert FeedbackLink.objects.filter(ticket=kept).count() == 2
