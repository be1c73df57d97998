"""The dashboard page (/dashboard/): who sees it, its scope filters, its four sections, the
links from each figure to exactly the conversations behind it, the CSV exports, the page's
query count; the queue filters those links use; the chart helpers."""

import csv
import html
import io
import re
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from engage import metrics, queries, tasks
from engage.choices import Priority, SlaState, Stage, State, TicketStatus
from engage.forms import QueueFilterForm
from engage.models import BacklogSnapshot, Conversation, FiguresSnapshot, WorkloadSnapshot
from engage.services import conversations as services
from engage.services import feedback as feedback_services
from engage.services import figures, sla
from engage.templatetags import charts
from tests import factories

pytestmark = pytest.mark.django_db

DASHBOARD = "/dashboard/"


# A small world, built through the services ----------------------------------------------------


@dataclass
class World:
    """Conversations received in the last 30 days (the default period) unless said:

    - sold: twitter, the manager's, answered after 1 h, advanced to sell (via a ticket);
    - talking: twitter, the other manager's, answered after 2 h, in interact;
    - restarted: facebook, urgent, the other's, answered after 3 h (late), reached interact,
      restarted to listen;
    - fresh: facebook, nobody's, 5 h old: waiting, not due yet;
    - overdue: twitter, nobody's, 30 h old: waiting past its 24 h target;
    - closed: twitter, closed without an answer;
    - old: instagram, the manager's, received 40 days ago (outside the period), open.
    """

    sold: Conversation
    talking: Conversation
    restarted: Conversation
    fresh: Conversation
    overdue: Conversation
    closed: Conversation
    old: Conversation
    wanted: object  # the ticket with the most people
    shipped: object  # the shipped one


def received(ago: timedelta, **fields) -> Conversation:
    return factories.conversation(created_at=timezone.now() - ago, **fields)


def answer(conversation, actor, after: timedelta) -> None:
    services.log_reply(
        conversation.pk,
        actor=actor,
        text="Thanks, we are on it.",
        sent_at=conversation.received_at + after,
    )


def build(manager, other, product) -> World:
    sold = received(timedelta(days=2), channel="twitter", text="Love the app, one thing…")
    talking = received(timedelta(days=3), channel="twitter", text="Dark mode please")
    restarted = received(
        timedelta(days=1), channel="facebook", priority="urgent", text="The fix broke it"
    )
    fresh = received(timedelta(hours=5), channel="facebook", text="Hello, anyone?")
    overdue = received(timedelta(hours=30), channel="twitter", text="Still no answer")
    closed = received(timedelta(days=2), channel="twitter", text="spam spam")
    old = received(timedelta(days=40), channel="instagram", text="An old thread")

    services.assign(sold.pk, manager, actor=manager)
    answer(sold, manager, timedelta(hours=1))
    services.advance(sold.pk, actor=manager)
    shipped = feedback_services.create_ticket(
        actor=manager, title="Export to CSV", conversation_id=sold.pk, quote="one thing"
    )
    services.advance(sold.pk, actor=manager)
    services.advance(sold.pk, actor=manager)

    services.assign(talking.pk, other, actor=other)
    answer(talking, other, timedelta(hours=2))
    services.advance(talking.pk, actor=other)

    services.assign(restarted.pk, other, actor=other)
    answer(restarted, other, timedelta(hours=3))
    services.advance(restarted.pk, actor=other)
    services.restart(restarted.pk, actor=other, reason="Unhappy with the fix")

    services.set_state(closed.pk, State.CLOSED, actor=manager)
    services.assign(old.pk, manager, actor=manager)

    wanted = feedback_services.create_ticket(actor=product, title="Dark mode")
    feedback_services.link_evidence(wanted.pk, talking.pk, actor=product, quote="Dark mode")
    feedback_services.link_evidence(wanted.pk, restarted.pk, actor=product, quote="dark")
    feedback_services.change_ticket_status(shipped.pk, TicketStatus.SHIPPED, actor=product)
    return World(sold, talking, restarted, fresh, overdue, closed, old, wanted, shipped)


@pytest.fixture
def world(manager, other_manager, product) -> World:
    return build(manager, other_manager, product)


# Reading pages ------------------------------------------------------------------------------


def page(client, query: str = ""):
    response = client.get(DASHBOARD + query)
    assert response.status_code == 200, response.content[:2000]
    return response


def link_after(body: str, marker: str) -> str:
    """The first href after `marker` in the page."""
    start = body.index(marker)
    return html.unescape(re.search(r'href="([^"]*)"', body[start:]).group(1))


def stat_link(body: str, name: str) -> str:
    """The href of a big number (`data-stat`)."""
    return html.unescape(re.search(rf'<a href="([^"]*)" data-stat="{name}">', body).group(1))


def queue_rows(client, url: str) -> set[int]:
    """The conversations the queue page lists for `url` (one page is enough here)."""
    assert url.startswith("/queue/"), url
    response = client.get(url)
    assert response.status_code == 200, response.content[:2000]
    return {int(pk) for pk in re.findall(r'data-row-id="(\d+)"', response.content.decode())}


def ids(*conversations) -> set[int]:
    return {conversation.pk for conversation in conversations}


# Access --------------------------------------------------------------------------------------


def test_only_people_with_a_role_see_the_dashboard(client, manager, product, staff, outsider):
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    client.force_login(outsider)
    assert client.get(DASHBOARD).status_code == 403
    assert client.get("/dashboard/export/funnel.csv").status_code == 403
    for user in (manager, product, staff):
        client.force_login(user)
        body = page(client).content.decode()
        assert "<h1>Dashboard</h1>" in body
        assert 'href="/dashboard/" aria-current="page">Dashboard</a>' in body


def test_the_nav_links_to_the_dashboard_for_viewers_only(client, manager, outsider):
    client.force_login(manager)
    assert 'href="/dashboard/"' in client.get("/queue/").content.decode()
    client.force_login(outsider)
    assert 'href="/dashboard/"' not in client.get("/accounts/login/").content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?period=12d", "“12d” is not a period"),
        ("?channel=myspace", "“myspace” is not a channel"),
        ("?assignee=ghost", "There is no user “ghost”"),
        ("?start=2026-02-30&end=2026-03-01", "is not a date"),
        ("?start=2026-03-01", "Give both a start and an end date"),
        ("?start=2026-03-05&end=2026-03-01", "The end date is before the start date"),
    ],
)
def test_bad_filters_show_why_instead_of_failing(as_manager, query, message):
    response = as_manager.get(DASHBOARD + query)

    assert response.status_code == 400
    body = response.content.decode()
    assert 'role="alert"' in body
    assert html.escape(message).replace("&#x27;", "'") in body or message in body
    assert 'id="funnel-heading"' not in body
    # The filter bar is still there to fix the value.
    assert 'aria-label="Choose the figures"' in body


def test_the_filter_bar_keeps_the_scope(as_manager, manager, other_manager):
    body = page(as_manager, "?period=7d&channel=facebook&assignee=other").content.decode()

    assert re.search(r'<a href="[^"]*period=7d[^"]*" aria-current="true" data-period="7d">', body)
    assert '<option value="facebook" selected>' in body
    assert '<option value="other" selected>' in body
    assert '<input type="hidden" name="period" value="7d">' in body
    # A preset period leaves the date fields empty: dates typed there win over it.
    assert 'name="start" id="id_start" value=""' in body

    body = page(as_manager, "?period=7d&start=2026-01-01&end=2026-01-31").content.decode()
    assert 'name="start" id="id_start" value="2026-01-01"' in body
    assert 'aria-current="true"' not in body
    assert "Conversations received from 1 Jan 2026 to 1 Feb 2026" in body


def test_the_targets_page_is_linked(as_manager):
    body = page(as_manager).content.decode()
    assert re.search(r'<a href="/targets/">First-response targets</a>', body)


# The sections ------------------------------------------------------------------------------


def test_each_section_shows_its_figures(as_manager, world):
    response = page(as_manager)
    body = response.content.decode()

    # Funnel: the counts and conversions, labelled in the SVG, and the restart reasons.
    steps = response.context["funnel"]["steps"]
    assert [(bar.label, bar.text, bar.detail) for bar in steps] == [
        ("Listen", "6", "received"),
        ("Interact", "3", "50% of Listen"),
        ("React", "1", "33% of Interact"),
        ("Sell", "1", "100% of React"),
    ]
    assert (
        'id="funnel-chart" role="group" aria-labelledby="funnel-chart-title funnel-chart-desc"'
        in body
    )
    assert '<text class="chart-figure funnel-count"' in body
    assert ">Interact</text>" in body
    assert ">50% of Listen</text>" in body
    assert "median " in body  # time in step, as text
    assert '<td class="reason">Unhappy with the fix</td>' in body
    assert "<strong data-restarts>1</strong>" in body

    # Responsiveness: overall, by channel / priority / person, the waiting list.
    overall = response.context["responsiveness"]["overall"]
    assert (overall.answered, overall.within_target, overall.share_within_target) == (3, 2, 0.5)
    assert 'data-stat="median">2 h</a>' in body
    assert 'data-stat="share">50%</a>' in body
    assert 'data-stat="waiting">2 waiting</a>' in body
    by_channel = {
        bar.label: (bar.text, bar.detail)
        for bar in response.context["responsiveness"]["by_channel"]
    }
    assert by_channel == {"Twitter / X": ("67%", "2 of 3"), "Facebook": ("0%", "0 of 1")}
    by_priority = [bar.label for bar in response.context["responsiveness"]["by_priority"]]
    assert by_priority == ["Urgent", "Normal"]
    by_person = [bar.label for bar in response.context["responsiveness"]["by_person"]]
    assert by_person[-1] == "Unassigned"
    waiting = [int(pk) for pk in re.findall(r'data-waiting="(\d+)"', body)]
    assert waiting == [world.overdue.pk, world.fresh.pk]  # oldest first
    assert f'href="/conversations/{world.overdue.pk}/"' in body

    # Workload: person × stage, totals; no backlog snapshot yet.
    rows = {
        row.username: [cell.count for cell in row.cells] + [row.total.count]
        for row in response.context["workload"]["rows"]
    }
    assert rows == {"manager": [1, 0, 0, 1, 2], "other": [1, 1, 0, 0, 2], "": [2, 0, 0, 0, 2]}
    assert "data-no-snapshots" in body

    # Feedback: counts, top tickets linking to the tickets, told vs to tell.
    figures = response.context["feedback"]["figures"]
    assert (figures.opened, figures.shipped, figures.declined) == (2, 1, 0)
    assert (figures.told_after_ship, figures.to_tell_after_ship) == (0, 1)
    assert f'href="/feedback/{world.wanted.pk}/"' in body
    assert body.index(f"/feedback/{world.wanted.pk}/") < body.index(
        f"/feedback/{world.shipped.pk}/"
    )
    assert "2 people" in body
    assert "1 still to tell" in body


def test_the_backlog_is_drawn_from_the_snapshots(as_manager, world):
    now = timezone.now()
    for hours in (48, 24, 2):
        sla.take_snapshot(now - timedelta(hours=hours))

    response = page(as_manager)
    body = response.content.decode()

    assert len(response.context["workload"]["backlog"]) == 3
    assert 'id="backlog-chart" role="img"' in body
    assert body.count('class="series-point"') == 6  # two series, three points
    assert '<polyline class="series-line" points="' in body
    assert "data-no-snapshots" not in body
    assert 'data-series-link="unassigned"' in body


def workload_rows(response) -> dict[str, list[int]]:
    return {
        row.username: [cell.count for cell in row.cells] + [row.total.count]
        for row in response.context["workload"]["rows"]
    }


def test_the_workload_shows_the_minutes_snapshot_with_its_time(as_manager, manager, world):
    with CaptureQueriesContext(connection) as counting:
        counted = page(as_manager)
    assert "data-workload-as-of" not in counted.content.decode()
    snapshot = sla.take_workload_snapshot()
    # Given back to nobody since: the snapshot still shows it as the manager's.
    services.assign(world.old.pk, None, actor=manager)

    with CaptureQueriesContext(connection) as reading:
        response = page(as_manager)
    body = response.content.decode()

    assert workload_rows(response) == workload_rows(counted)
    assert response.context["workload"]["as_of"] == snapshot.taken_at
    as_of = timezone.localtime(snapshot.taken_at).strftime("%H:%M")
    assert f"As of {as_of} (counted every minute)." in body
    # The snapshot spares the count.
    assert len(reading.captured_queries) == len(counting.captured_queries) - 1

    # Once older than metrics.SNAPSHOT_AGE, the page counts again.
    WorkloadSnapshot.objects.update(taken_at=timezone.now() - timedelta(minutes=5))
    later = page(as_manager)
    assert "data-workload-as-of" not in later.content.decode()
    assert workload_rows(later)["manager"] == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("period", ["7d", "30d", "90d"])
def test_the_figures_snapshot_gives_the_figures_computed_now(world, period):
    scope = metrics.scope_from({"period": period})
    funnel, responses = metrics.funnel(scope), metrics.responsiveness(scope)
    taken = {snapshot.period: snapshot for snapshot in figures.take_figures_snapshots()}

    kept = metrics.funnel(scope, kept=metrics.kept_figures(scope))
    kept_responses = metrics.responsiveness(scope, kept=metrics.kept_figures(scope))

    assert kept.as_of == kept_responses.as_of == taken[period].taken_at
    assert replace(kept, as_of=None) == funnel
    assert replace(kept_responses, as_of=None) == responses
    assert funnel.as_of is None
    assert responses.as_of is None
    # The job keeps the preset periods over everyone only: the rest is computed.
    for narrower in ({"channel": "twitter"}, {"assignee": "manager"}):
        narrow = metrics.scope_from({"period": period, **narrower})
        assert metrics.funnel(narrow, kept=metrics.kept_figures(narrow)).as_of is None


def test_the_funnel_and_responses_show_the_jobs_snapshot_with_its_time(as_manager, world):
    with CaptureQueriesContext(connection) as computing:
        computed = page(as_manager)
    assert "data-funnel-as-of" not in computed.content.decode()
    tasks.snapshot_figures()
    tasks.snapshot_figures()  # again: one snapshot a period, the newer
    assert sorted(FiguresSnapshot.objects.values_list("period", flat=True)) == ["30d", "7d", "90d"]
    (taken_at,) = set(FiguresSnapshot.objects.values_list("taken_at", flat=True))
    # Received since: the snapshot does not count it yet.
    received(timedelta(minutes=1), channel="twitter")

    with CaptureQueriesContext(connection) as reading:
        response = page(as_manager)
    body = response.content.decode()

    assert response.context["funnel"]["steps"] == computed.context["funnel"]["steps"]
    assert (
        response.context["responsiveness"]["overall"]
        == computed.context["responsiveness"]["overall"]
    )
    as_of = timezone.localtime(taken_at).strftime("%H:%M")
    assert body.count(f"As of {as_of} (counted every minute).") == 2
    assert 'data-funnel-as-of="' in body
    assert 'data-responses-as-of="' in body
    # The snapshot spares the aggregates (the waiting list is read as ever).
    assert len(reading.captured_queries) < len(computing.captured_queries)
    # A channel of one's own is computed, and counts the new one.
    twitter = page(as_manager, "?channel=twitter")
    assert "data-funnel-as-of" not in twitter.content.decode()
    assert twitter.context["funnel"]["funnel"].steps[0].reached == 5

    # Once older than metrics.SNAPSHOT_AGE, the page computes again.
    FiguresSnapshot.objects.update(taken_at=timezone.now() - timedelta(minutes=5))
    later = page(as_manager)
    assert "data-funnel-as-of" not in later.content.decode()
    assert later.context["funnel"]["funnel"].steps[0].reached == (
        computed.context["funnel"]["funnel"].steps[0].reached + 1
    )


def test_charts_escape_the_text_they_show(as_manager, manager, product):
    conversation = received(timedelta(hours=1))
    feedback_services.create_ticket(
        actor=product, title='<script>alert("x")</script>', conversation_id=conversation.pk
    )
    body = page(as_manager).content.decode()
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert" in body


def test_numbers_and_labels_follow_the_language(client, manager, world):
    client.force_login(manager)
    client.post("/i18n/setlang/", {"language": "it", "next": DASHBOARD})
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    # Coordinates stay numbers with a dot whatever the language.
    assert not re.search(r'(x|y|width)="\d+,\d', response.content.decode())


# Links from the figures to the queue -----------------------------------------------------------


def test_each_funnel_step_links_to_exactly_its_conversations(as_manager, world):
    body = page(as_manager).content.decode()
    cohort = ids(
        world.sold, world.talking, world.restarted, world.fresh, world.overdue, world.closed
    )
    expected = {
        "listen": cohort,
        "interact": ids(world.sold, world.talking, world.restarted),
        "react": ids(world.sold),
        "sell": ids(world.sold),
    }
    for stage, conversations in expected.items():
        url = link_after(body, f'data-funnel-step="funnel-{stage}"')
        assert f"reached={stage}" in url
        assert queue_rows(as_manager, url) == conversations, stage


def test_funnel_links_keep_the_channel_the_person_and_custom_dates(as_manager, world):
    start = timezone.localdate() - timedelta(days=3)
    end = timezone.localdate()
    query = "?" + urlencode(
        {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "channel": "twitter",
            "assignee": "other",
        }
    )
    body = page(as_manager, query).content.decode()
    url = link_after(body, 'data-funnel-step="funnel-interact"')

    assert f"received_from={start.isoformat()}" in url
    assert f"received_to={end.isoformat()}" in url
    assert "channel=twitter" in url
    assert "assignee=other" in url
    assert queue_rows(as_manager, url) == ids(world.talking)


def test_response_figures_link_to_the_answered_conversations_behind_them(as_manager, world):
    body = page(as_manager).content.decode()

    twitter = link_after(body, 'data-chart-row="Twitter / X"')
    assert "channel=twitter" in twitter
    assert "answered=yes" in twitter
    assert queue_rows(as_manager, twitter) == ids(world.sold, world.talking)
    urgent = link_after(body, 'data-chart-row="Urgent"')
    assert queue_rows(as_manager, urgent) == ids(world.restarted)
    other = link_after(body, 'data-chart-row="other"')
    assert queue_rows(as_manager, other) == ids(world.talking, world.restarted)
    share = stat_link(body, "share")
    assert queue_rows(as_manager, share) == ids(world.sold, world.talking, world.restarted)


def test_the_waiting_count_links_to_the_waiting_conversations(as_manager, manager, world):
    services.set_state(
        world.fresh.pk,
        State.SNOOZED,
        actor=manager,
        snoozed_until=timezone.now() + timedelta(days=1),
    )
    body = page(as_manager).content.decode()

    url = stat_link(body, "waiting")
    assert "answered=no" in url
    assert "sort=due" in url
    # Snoozed ones still wait; the closed one never did.
    assert queue_rows(as_manager, url) == ids(world.fresh, world.overdue)


def test_a_workload_cell_links_to_that_persons_conversations_in_that_step(
    as_manager, manager, world
):
    services.set_state(
        world.old.pk, State.SNOOZED, actor=manager, snoozed_until=timezone.now() + timedelta(days=1)
    )
    response = page(as_manager)
    rows = {row.username: row for row in response.context["workload"]["rows"]}

    listen = rows["manager"].cells[0]
    assert "assignee=manager" in listen.href
    assert "stage=listen" in listen.href
    assert listen.href in html.unescape(response.content.decode())
    assert queue_rows(as_manager, listen.href) == ids(world.old)  # snoozed, still carried
    assert queue_rows(as_manager, rows["manager"].total.href) == ids(world.old, world.sold)
    assert queue_rows(as_manager, rows[""].cells[0].href) == ids(world.fresh, world.overdue)
    totals = response.context["workload"]["totals"]
    assert queue_rows(as_manager, totals[0].href) == ids(
        world.old, world.restarted, world.fresh, world.overdue
    )


def test_ticket_figures_link_to_the_tickets(as_manager, world):
    body = page(as_manager).content.decode()
    assert as_manager.get(link_after(body, 'id="tickets-chart"')).status_code == 200
    assert stat_link(body, "shipped") == "/feedback/?status=shipped"


# CSV exports ---------------------------------------------------------------------------------


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="dashboard-')
    return list(csv.reader(io.StringIO(response.content.decode())))


def export(client, table: str, query: str = "") -> list[list[str]]:
    return read_csv(client.get(f"/dashboard/export/{table}.csv{query}"))


def test_every_table_exports_with_a_header(as_manager, world):
    assert export(as_manager, "funnel")[0] == ["stage", "reached", "conversion", "median_seconds"]
    assert [row[:3] for row in export(as_manager, "funnel")[1:]] == [
        ["listen", "6", ""],
        ["interact", "3", "0.5"],
        ["react", "1", "0.3333"],
        ["sell", "1", "1.0"],
    ]
    assert export(as_manager, "restarts") == [["reason", "restarts"], ["Unhappy with the fix", "1"]]
    by_channel = export(as_manager, "response-by-channel")
    assert by_channel[0] == [
        "channel",
        "conversations",
        "answered",
        "median_seconds",
        "p90_seconds",
        "within_target",
        "share_within_target",
    ]
    assert {row[0]: row[1:3] for row in by_channel[1:]} == {
        "twitter": ["4", "2"],
        "facebook": ["2", "1"],
    }
    assert export(as_manager, "response-by-priority")[1][0] == "urgent"
    assert export(as_manager, "response-by-person")[0][0] == "assignee"
    waiting = export(as_manager, "waiting")
    assert [row[0] for row in waiting[1:]] == [str(world.overdue.pk), str(world.fresh.pk)]
    assert waiting[1][-1] == f"http://testserver/conversations/{world.overdue.pk}/"
    assert export(as_manager, "workload") == [
        ["assignee", "listen", "interact", "react", "sell", "total"],
        ["manager", "1", "0", "0", "1", "2"],
        ["other", "1", "1", "0", "0", "2"],
        ["", "2", "0", "0", "0", "2"],
    ]
    assert export(as_manager, "backlog") == [["taken_at", "open", "unassigned"]]
    tickets = export(as_manager, "top-tickets")
    assert tickets[0] == ["id", "title", "status", "demand", "told", "url"]
    assert tickets[1][:5] == [str(world.wanted.pk), "Dark mode", "new", "2", "0"]


def test_exports_take_the_scope_of_the_page(as_manager, world):
    rows = export(as_manager, "funnel", "?channel=facebook")
    assert rows[1][:2] == ["listen", "2"]
    body = page(as_manager, "?channel=facebook&period=7d").content.decode()
    assert 'href="/dashboard/export/funnel.csv?period=7d&amp;channel=facebook"' in body


def test_exports_defuse_spreadsheet_formulas(as_manager, manager, product):
    evil = received(timedelta(hours=2), text='=HYPERLINK("http://evil.example","x")')
    services.assign(evil.pk, manager, actor=manager)
    services.restart(evil.pk, actor=manager, reason="=cmd|' /C calc'!A0")
    feedback_services.create_ticket(
        actor=product, title="@SUM(A1)", conversation_id=evil.pk, quote="x"
    )

    assert export(as_manager, "restarts")[1] == ["'=cmd|' /C calc'!A0", "1"]
    assert export(as_manager, "top-tickets")[1][1] == "'@SUM(A1)"
    waiting = export(as_manager, "waiting")
    assert waiting[1][waiting[0].index("text")] == "'" + evil.text


def test_an_export_refuses_bad_input(as_manager):
    assert as_manager.get("/dashboard/export/salaries.csv").status_code == 404
    response = as_manager.get("/dashboard/export/funnel.csv?period=1y")
    assert response.status_code == 400
    assert "is not a period" in response.content.decode()


# Query count ------------------------------------------------------------------------------


def grow(manager, other, product, n: int) -> None:
    """More of everything the page lists or counts: conversations in every state and step,
    people, tickets, restarts, snapshots."""
    people = [factories.user(role="community_manager") for _ in range(3)] + [manager, other]
    now = timezone.now()
    for i in range(n):
        person = people[i % len(people)]
        conversation = received(
            timedelta(hours=3 + i), channel=("twitter", "forum", "email")[i % 3]
        )
        services.assign(conversation.pk, person, actor=person)
        if i % 2:
            answer(conversation, person, timedelta(minutes=30 + i))
            services.advance(conversation.pk, actor=person)
        if i % 4 == 1:
            services.restart(conversation.pk, actor=person, reason=f"reason {i % 3}")
        if i % 3 == 0:
            ticket = feedback_services.create_ticket(
                actor=product, title=f"Ticket {i}", conversation_id=conversation.pk
            )
            if i % 2 == 0:
                feedback_services.change_ticket_status(
                    ticket.pk, TicketStatus.SHIPPED, actor=product
                )
        sla.take_snapshot(now - timedelta(hours=i))


def test_the_page_costs_the_same_queries_whatever_the_data(
    client, manager, other_manager, product, django_assert_num_queries
):
    build(manager, other_manager, product)
    client.force_login(manager)
    with CaptureQueriesContext(connection) as small:
        page(client)
    grow(manager, other_manager, product, 24)
    client.force_login(manager)

    with django_assert_num_queries(len(small.captured_queries)):
        response = page(client)

    assert len(response.context["workload"]["rows"]) >= 5
    assert len(response.context["workload"]["backlog"]) >= 20
    assert len(small.captured_queries) <= 20


# The queue filters the links use -------------------------------------------------------------


def queue_ids(client, **query) -> set[int]:
    return queue_rows(client, "/queue/?" + urlencode(query))


def test_received_filters_take_days_or_exact_times(as_manager):
    now = timezone.localtime()
    today = received(timedelta(minutes=1))
    yesterday = received(timedelta(days=1))
    last_week = received(timedelta(days=7))
    day = (now - timedelta(days=1)).date()

    assert queue_ids(as_manager, received_from=day.isoformat()) == ids(today, yesterday)
    assert queue_ids(as_manager, received_to=day.isoformat()) == ids(yesterday, last_week)
    assert queue_ids(as_manager, received_from=day.isoformat(), received_to=day.isoformat()) == ids(
        yesterday
    )
    moment = (yesterday.received_at + timedelta(seconds=1)).isoformat()
    assert queue_ids(as_manager, received_to=moment) == ids(yesterday, last_week)
    assert queue_ids(as_manager, received_from=moment) == ids(today)


def test_reached_answered_and_sla_filters(as_manager, manager, world):
    assert queue_ids(as_manager, reached="interact", state="") == ids(
        world.sold, world.talking, world.restarted
    )
    assert queue_ids(as_manager, reached="sell", state="") == ids(world.sold)
    assert queue_ids(as_manager, reached="listen", state="closed") == ids(world.closed)
    assert queue_ids(as_manager, answered="yes", state="") == ids(
        world.sold, world.talking, world.restarted
    )
    assert queue_ids(as_manager, answered="no", state="") == ids(
        world.fresh, world.overdue, world.old
    )
    assert queue_ids(as_manager, state="not_closed", assignee="manager") == ids(
        world.sold, world.old
    )

    sla.check()  # the scheduled job: overdue is past its target, old much more
    breached = set(
        Conversation.objects.filter(sla_state=SlaState.BREACHED).values_list("pk", flat=True)
    )
    assert ids(world.overdue, world.old) <= breached
    assert queue_ids(as_manager, sla="breached", answered="no") == breached
    assert queue_ids(as_manager, sla="at_risk") == set(
        Conversation.objects.filter(sla_state=SlaState.AT_RISK, state=State.OPEN).values_list(
            "pk", flat=True
        )
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("reached=limbo", "“limbo” is not a stage."),
        ("answered=maybe", "Answered is “yes”, “no” or empty"),
        ("sla=late", "“late” is not a first-response target state"),
        ("received_from=yesterday", "“yesterday” is not a date"),
        ("received_from=2026-03-02&received_to=2026-03-01", "“Received to” must come after"),
    ],
)
def test_bad_queue_filter_values_are_explained(as_manager, query, message):
    response = as_manager.get("/queue/?" + query)
    assert response.status_code == 400
    assert html.escape(message, quote=False) in response.content.decode()


def test_the_new_filters_show_in_the_form_and_stay_in_the_url(as_manager, world):
    query = (
        "received_from=2026-01-01&received_to=2026-12-31T10%3A00%3A00%2B01%3A00"
        "&reached=interact&answered=yes&sla=breached&state=not_closed"
    )
    body = as_manager.get("/queue/?" + query).content.decode()

    assert 'type="date" name="received_from" value="2026-01-01"' in body
    # An exact time is kept as text: a date picker cannot show it.
    assert 'type="text" name="received_to" value="2026-12-31T10:00:00+01:00"' in body
    for name, value in (("reached", "interact"), ("answered", "yes"), ("sla", "breached")):
        assert re.search(rf'name="{name}"[^>]*>.*?<option value="{value}" selected>', body, re.S)
    assert '<option value="not_closed" selected>Open or snoozed</option>' in body
    # The stage tabs keep every filter.
    tab = link_after(body, '<nav class="stage-tabs"')
    for part in ("received_from=2026-01-01", "reached=interact", "answered=yes", "sla=breached"):
        assert part in tab


def test_the_form_turns_the_new_filters_into_a_queue_filter():
    form = QueueFilterForm(
        {
            "received_from": "2026-03-01",
            "received_to": "2026-03-01",
            "reached": "react",
            "answered": "no",
            "sla": "at_risk",
        }
    )
    assert form.is_valid(), form.errors
    filters = form.queue_filter()
    assert timezone.localtime(filters.received_from).isoformat().startswith("2026-03-01T00:00:00")
    assert timezone.localtime(filters.received_to).isoformat().startswith("2026-03-02T00:00:00")
    assert (filters.reached, filters.answered, filters.sla) == ("react", False, "at_risk")


def test_the_due_sort_pages_through_answered_and_waiting_ones(manager):
    answered, waiting = received(timedelta(hours=2)), received(timedelta(hours=1))
    services.assign(answered.pk, manager, actor=manager)
    answer(answered, manager, timedelta(minutes=5))
    for value, expected in ((True, [answered.pk]), (False, [waiting.pk])):
        filters = queries.QueueFilter(answered=value, sort="due")
        page_one = queries.queue_page(filters, user=manager, limit=1)
        assert [c.pk for c in page_one.items] == expected
        assert page_one.next_cursor is None


# The chart helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "—"),
        (12, "12 s"),
        (59.6, "60 s"),
        (60, "1 min"),
        (45 * 60, "45 min"),
        (3 * 3600 + 20 * 60, "3 h 20 min"),
        (5 * 3600, "5 h"),
        (2 * 86400 + 4 * 3600, "2 d 4 h"),
        (3 * 86400, "3 d"),
    ],
)
def test_durations_read_like_people_say_them(seconds, words):
    assert charts.duration(seconds) == words


def test_percent_and_number_follow_the_locale():
    from django.utils import translation

    assert charts.percent(0.666) == "67%"
    assert charts.percent(None) == "—"
    assert charts.number(1234567) == "1,234,567"
    with translation.override("it"):
        assert charts.number(1234567) == "1.234.567"


def test_the_funnel_narrows_from_the_first_step():
    rows = [
        charts.Bar(stage, value, str(value))
        for stage, value in zip(Stage.values, (10, 5, 2, 0), strict=True)
    ]
    chart = charts.funnel_geometry(rows)
    widths = [step.width for step in chart.steps]

    assert widths[0] > widths[1] > widths[2] > widths[3] == 0
    centres = {round(step.x + step.width / 2) for step in chart.steps[:3]}
    assert len(centres) == 1  # centred on one axis
    assert chart.steps[0].neck
    assert not chart.steps[-1].neck
    assert chart.height == 4 * charts.FUNNEL_ROW - (charts.FUNNEL_ROW - charts.FUNNEL_BAR) + 8


def test_bars_are_as_long_as_their_share_and_never_invisible():
    rows = [
        charts.Bar("a", 1.0, ""),
        charts.Bar("b", 0.5, ""),
        charts.Bar("c", 0.001, ""),
        charts.Bar("d", None, ""),
    ]
    chart = charts.bar_chart_geometry(rows, scale=1)
    widths = [bar.width for bar in chart.bars]
    assert widths[0] == chart.track_width
    assert widths[1] == chart.track_width / 2
    assert 0 < widths[2] < 5
    assert widths[3] == 0


def test_the_time_series_scales_to_a_round_ceiling():
    assert [charts.nice_ceiling(v) for v in (0, 1, 3, 7, 12, 37, 180, 1001)] == [
        1,
        1,
        5,
        10,
        20,
        50,
        200,
        2000,
    ]
    now = timezone.now()
    points = [
        BacklogSnapshot(taken_at=now - timedelta(hours=h), open=o, unassigned=u)
        for h, o, u in ((10, 8, 3), (5, 12, 6), (0, 4, 1))
    ]
    series = [
        charts.Series("open", "Open", "series-open"),
        charts.Series("unassigned", "Unassigned", "u"),
    ]
    chart = charts.series_geometry(points, series)

    assert [tick.value for tick in chart.y_ticks][-1] == 20
    open_line = chart.lines[0]
    assert open_line.points[0].x == chart.left
    assert open_line.points[-1].x == chart.right
    assert open_line.points[1].y < open_line.points[0].y  # 12 is higher than 8
    assert [tick.anchor for tick in chart.x_ticks] == ["start", "middle", "end"]


def test_period_bounds_in_links_are_days_or_times_rounded_outwards():
    from datetime import datetime, time

    from engage.views.dashboard import _bound, scope_params

    zone = timezone.get_current_timezone()
    midnight = datetime.combine(datetime(2026, 3, 2), time.min, tzinfo=zone)
    assert _bound(midnight, end=False) == "2026-03-02"
    assert _bound(midnight, end=True) == "2026-03-01"  # the day before, included
    moment = datetime(2026, 3, 2, 14, 5, 7, 250_000, tzinfo=zone)
    assert _bound(moment, end=False) == "2026-03-02T14:05:07+01:00"
    assert _bound(moment, end=True) == "2026-03-02T14:05:08+01:00"
    assert scope_params({"period": "7d", "start": "2026-01-01", "end": " "}) == {
        "start": "2026-01-01"
    }
    assert scope_params({"period": "7d", "channel": ""}) == {"period": "7d"}


def test_priorities_are_read_from_their_key_number_or_label():
    from engage.views.dashboard import priority_of

    assert priority_of("urgent") is Priority.URGENT
    assert priority_of("4") is Priority.URGENT
    assert priority_of("Low") is Priority.LOW
    assert priority_of("whatever") is None
