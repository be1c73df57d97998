"""The queue's rows (engage.templatetags.queue_rows), cell by cell, as a user reads them: every
variant a cell has, escaped, in English and Italian, with and without the right to act."""

from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from django.urls import reverse
from django.utils import timezone, translation

from engage.models import Conversation
from engage.services import conversations as services
from engage.services.merge import merge
from engage.services.tags import change_tags
from tests import factories

QUEUE = "/queue/"
HEADERS = [
    "Channel",
    "Contact",
    "Conversation",
    "Stage",
    "Priority",
    "Assignee",
    "Age",
    "First response due",
    "Lang.",
    "Sentiment",
    "Follow-up",
]


class Rows(HTMLParser):
    """Each <tr data-row>: its attributes, and per cell its text and its elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-row" in attrs:
            self.rows.append({"attrs": attrs, "cells": []})
        elif tag == "td" and self.rows and self.cell is None:
            self.cell = {"text": "", "elements": []}
            self.rows[-1]["cells"].append(self.cell)
        elif self.cell is not None:
            self.cell["elements"].append((tag, attrs))

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data


def rows(client, query: str = "") -> dict[int, dict]:
    """The page's rows by conversation id, each cell's text under its column's header."""
    response = client.get(QUEUE + query)
    assert response.status_code == 200
    parser = Rows()
    parser.feed(response.content.decode())
    found = {}
    for row in parser.rows:
        cells = row["cells"]
        select = cells.pop(0) if len(cells) == len(HEADERS) + 1 else None
        named = dict(zip(HEADERS, cells, strict=True))
        text = {header: " ".join(cell["text"].split()) for header, cell in named.items()}
        found[int(row["attrs"]["data-row-id"])] = {
            "attrs": row["attrs"],
            "select": select,
            "text": text,
            "cells": named,
        }
    return found


def elements(cell: dict, tag: str) -> list[dict]:
    return [attrs for name, attrs in cell["elements"] if name == tag]


def test_each_cell_says_what_the_conversation_is(client, manager):
    named = factories.conversation(
        text="A very long complaint " * 20, channel="facebook", priority="urgent"
    )
    Conversation.objects.filter(pk=named.pk).update(
        language="it",
        sentiment="negative",
        needs_follow_up=True,
        cycle=2,
        first_response_due_at=timezone.now() + timedelta(hours=1),
    )
    contact = named.contact
    contact.name, contact.handle = "Giulia Rossi", "giulia_r"
    contact.save()
    manager.first_name, manager.last_name = "Anna", "Bianchi"
    manager.save()
    services.assign(named.pk, manager, actor=manager)
    anonymous = factories.conversation()
    anonymous.contact.name = ""
    anonymous.contact.save()
    client.force_login(manager)

    found = rows(client)

    row = found[named.pk]
    conversation_url = reverse("conversation", args=[named.pk])
    assert row["attrs"]["data-href"] == conversation_url
    assert row["attrs"]["class"] == "state-open"
    assert row["text"]["Channel"] == "Facebook"
    assert row["text"]["Contact"] == "Giulia Rossi giulia_r"
    excerpt = row["text"]["Conversation"]
    assert excerpt.startswith("A very long complaint")
    assert f"#{named.pk}" in excerpt
    link = elements(row["cells"]["Conversation"], "a")[0]
    assert link["href"] == conversation_url
    # 140 characters at most, the last one an ellipsis.
    assert len(excerpt.split(" #")[0]) <= 140
    assert "…" in excerpt
    assert row["text"]["Stage"] == "Listen ×2"
    assert row["text"]["Priority"] == "Urgent"
    assert row["text"]["Assignee"] == "Anna Bianchi"
    assert row["text"]["Lang."] == "IT"
    assert row["text"]["Sentiment"] == "Negative"
    assert row["text"]["Follow-up"] == "Tell the person"
    assert row["text"]["First response due"].startswith("in ")
    age = elements(row["cells"]["Age"], "time")[0]
    assert age["datetime"] == timezone.localtime(fresh(named).received_at).isoformat()

    bare = found[anonymous.pk]
    assert bare["text"]["Contact"] == anonymous.contact.handle
    assert bare["text"]["Assignee"] == "nobody"
    assert bare["text"]["Lang."] == "—"
    assert bare["text"]["Sentiment"] == "—"
    assert bare["text"]["Follow-up"] == ""
    assert "×" not in bare["text"]["Stage"]


def fresh(conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def test_states_merges_and_answers_show_in_their_cells(client, manager):
    snoozed = factories.conversation()
    until = timezone.now() + timedelta(days=2)
    services.set_state(snoozed.pk, "snoozed", actor=manager, snoozed_until=until)
    kept, duplicate = factories.conversation(), factories.conversation()
    merge(duplicate.pk, kept.pk, actor=manager)
    answered = factories.conversation()
    services.log_reply(answered.pk, actor=manager, text="Thanks, on it.")
    client.force_login(manager)

    found = rows(client, "?state=")

    assert "Snoozed ·" in found[snoozed.pk]["text"]["Conversation"]
    assert found[snoozed.pk]["attrs"]["class"] == "state-snoozed"
    # A merged conversation shows only among the closed ones.
    merged = rows(client, "?state=closed")[duplicate.pk]
    badge = [a for a in elements(merged["cells"]["Conversation"], "a") if "data-merged-into" in a]
    assert badge[0]["href"] == reverse("conversation", args=[kept.pk])
    assert f"merged into #{kept.pk}" in merged["text"]["Conversation"]
    assert merged["text"]["First response due"] == "—"  # closed by the merge, never answered
    assert found[answered.pk]["text"]["First response due"] == "answered"


def test_overdue_and_the_sla_flags(client, manager):
    late = factories.conversation()
    soon = factories.conversation()
    now = timezone.now()
    Conversation.objects.filter(pk=late.pk).update(
        first_response_due_at=now - timedelta(hours=3), sla_state="breached"
    )
    Conversation.objects.filter(pk=soon.pk).update(
        first_response_due_at=now + timedelta(minutes=10), sla_state="at_risk"
    )
    client.force_login(manager)

    found = rows(client)

    due = found[late.pk]["cells"]["First response due"]
    assert found[late.pk]["text"]["First response due"].startswith("overdue by 3 hours")
    assert elements(due, "strong")[0] == {"class": "overdue", "data-overdue": None}
    assert elements(due, "span")[0]["data-sla"] == "breached"
    assert found[late.pk]["text"]["First response due"].endswith(
        "hours First-response target: Breached"
    )
    soon_text = found[soon.pk]["text"]["First response due"]
    assert soon_text.startswith("in ")
    assert soon_text.endswith("minutes First-response target: About to breach")


def test_tags_link_to_the_queue_filtered_by_them_and_are_escaped(client, manager):
    tagged = factories.conversation()
    change_tags(tagged.pk, actor=manager, add=['<img src=x onerror="alert(1)">'])
    client.force_login(manager)

    response = client.get(QUEUE + "?priority=normal&cursor=abc")
    body = response.content.decode()

    assert "<img src=x" not in body
    found = rows(client, "?priority=normal")
    tag = [
        a
        for a in elements(found[tagged.pk]["cells"]["Conversation"], "a")
        if "tag" in a.get("class", "")
    ]
    (name,) = [t.name for t in fresh(tagged).tags.all()]
    assert f"#{name}" in found[tagged.pk]["text"]["Conversation"]
    query = parse_qs(urlsplit(tag[0]["href"]).query)
    assert query == {"priority": ["normal"], "tag": [name]}


def test_a_refused_bulk_action_keeps_its_rows_selected(client, manager):
    chosen, other = factories.conversation(), factories.conversation()
    client.force_login(manager)

    response = client.post(
        reverse("queue_bulk"), {"action": "assign", "ids": [chosen.pk], "assignee": "nobody-here"}
    )

    assert response.status_code == 422
    parser = Rows()
    parser.feed(response.content.decode())
    by_id = {int(row["attrs"]["data-row-id"]): row for row in parser.rows}
    assert "is-selected" in by_id[chosen.pk]["attrs"]["class"]
    assert "checked" in dict(by_id[chosen.pk]["cells"][0]["elements"])["input"]
    assert "is-selected" not in by_id[other.pk]["attrs"]["class"]
    assert "checked" not in dict(by_id[other.pk]["cells"][0]["elements"])["input"]


def test_the_product_team_reads_rows_without_checkboxes(client, product):
    conversation = factories.conversation()
    client.force_login(product)

    row = rows(client)[conversation.pk]

    assert row["select"] is None


def test_rows_speak_italian(client, manager):
    conversation = factories.conversation(channel="review")
    Conversation.objects.filter(pk=conversation.pk).update(
        first_response_due_at=timezone.now() - timedelta(days=2), sla_state="breached"
    )
    client.force_login(manager)

    with translation.override("it"):
        response = client.get(QUEUE, headers={"accept-language": "it"})
    parser = Rows()
    parser.feed(response.content.decode())
    (row,) = parser.rows
    text = [" ".join(cell["text"].split()) for cell in row["cells"]]
    checkbox = dict(row["cells"][0]["elements"])["input"]
    assert checkbox["aria-label"] == f"Seleziona la conversazione #{conversation.pk}"
    assert "Sito di recensioni" in text or any("recensioni" in t.lower() for t in text)
    assert any(t.startswith("in ritardo di 2 giorni") for t in text)
    assert "nessuno" in text


def test_the_pages_rows_are_the_apis_conversations_page_for_page(manager):
    """queries.queue_rows (the page) and queries.queue_page (the API) walk the same keyset
    pages: the same conversations in the same order, the same cursors, the same tags."""
    from engage import queries

    for n in range(7):
        conversation = factories.conversation(priority=("low", "high", "urgent")[n % 3])
        change_tags(conversation.pk, actor=manager, add=[f"t{n % 2}", "all"])
    services.set_state(conversation.pk, "closed", actor=manager)
    for filters in (
        queries.QueueFilter(),
        queries.QueueFilter(state="", sort="priority"),
        queries.QueueFilter(state="", sort="newest", tag="t1"),
    ):
        cursor, walked = None, 0
        while True:
            rows = queries.queue_rows(filters, user=manager, cursor=cursor, limit=2)
            models = queries.queue_page(filters, user=manager, cursor=cursor, limit=2)
            assert [row.pk for row in rows.items] == [c.pk for c in models.items]
            assert rows.next_cursor == models.next_cursor
            assert [rows.tags.get(c.pk, []) for c in models.items] == [
                [tag.name for tag in c.tags.all()] for c in models.items
            ]
            walked += len(rows.items)
            cursor = rows.next_cursor
            if cursor is None:
                break
        assert walked == len(queries.queue_page(filters, user=manager, limit=100).items)
        assert walked > 0
