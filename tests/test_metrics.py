"""The dashboard's figures (engage.metrics) against a small data set whose funnel, medians,
percentiles, breaches, workload and feedback counts are worked out by hand below.

The data set is built through the services; the times the services stamp with "now" are
then moved to the times of the story (fixture state), so that every interval is known.
Percentiles are percentile_cont's: the value at rank p × (n − 1) of the sorted values,
interpolated linearly between the two nearest.
"""

import importlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.utils import timezone

from engage import metrics
from engage.choices import EventKind, Role, Stage, State, TicketStatus
from engage.errors import InvalidInput
from engage.metrics import Scope
from engage.models import (
    FUNNEL_RECORD,
    BacklogSnapshot,
    Conversation,
    Event,
    FeedbackLink,
    FeedbackTicket,
    WorkloadSnapshot,
)
from engage.services import conversations as services
from engage.services import feedback, sla
from engage.services.merge import merge
from tests import factories

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, tzinfo=UTC)
END = datetime(2026, 3, 9, tzinfo=UTC)
WEEK = Scope(start=START, end=END)
# A due time that has not come yet whenever the tests run.
NOT_YET_DUE = datetime(2100, 1, 1, tzinfo=UTC)
MOVES = (EventKind.STAGE_CHANGED, EventKind.RESTARTED)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A time in March 2026 (UTC)."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


RECORD = list(FUNNEL_RECORD)


def timeline(conversation, stored: datetime, *moves: datetime) -> None:
    """Move the time engage stored the conversation (and its CREATED Event) to `stored`,
    and its moves (stage changed, restarted), in the order they were written, to `moves`.
    The funnel's record the services kept is rebuilt the way they keep it
    (Conversation.enter_stage), with the moves at these times."""
    Event.objects.filter(conversation=conversation, kind=EventKind.CREATED).update(
        created_at=stored
    )
    written = list(
        Event.objects.filter(conversation=conversation, kind__in=MOVES)
        .order_by("id")
        .values_list("pk", "to_stage")
    )
    assert len(written) == len(moves)
    row = Conversation.objects.get(pk=conversation.pk)
    for field in RECORD:
        setattr(row, field, None)
    row.stage, row.stage_entered_at, row.created_at = Stage.LISTEN, stored, stored
    for (pk, to_stage), time in zip(written, moves, strict=True):
        Event.objects.filter(pk=pk).update(created_at=time)
        row.enter_stage(to_stage, time)
    Conversation.objects.filter(pk=row.pk).update(
        created_at=stored,
        stage_entered_at=row.stage_entered_at,
        **{field: getattr(row, field) for field in RECORD},
    )


def times(conversation, *, received, answered=None, due) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(
        received_at=received, first_response_at=answered, first_response_due_at=due
    )


def ticket_event(ticket, status: str, when: datetime) -> None:
    Event.objects.filter(
        ticket=ticket, kind=EventKind.TICKET_STATUS_CHANGED, data__to=status
    ).update(created_at=when)


class Story:
    """The week of 2–8 March 2026 (the period [START, END)), and a little around it.

    conversation  channel   priority assignee  stage Events (→ stage, time)            first response / due
    A             twitter   urgent   giulia    listen 2 Mar 00:00 (= START), interact     00:30 / 01:00: in time
                                               00:10, react 01:10, sell 03:10
    B             twitter   normal   giulia    listen 3 Mar 09:00, interact 09:20, react  11:00 / 4 Mar 09:00: in time
                                               10:50, restart 14:50 "Still broken",
                                               interact 15:50
    C             facebook  high     marco     listen 4 Mar 08:00, interact 08:40,        13:00 / 12:00: late
                                               restart 10 Mar 08:40 "New need" (after)
    D             facebook  normal   nobody    listen 5 Mar 12:00, restart 13:00          none / 6 Mar 12:00: overdue
                                               "Wrong product"
    E             twitter   low      nobody    listen 6 Mar 08:00                         none / 2100: not yet due
    F             twitter   normal   marco     listen 6 Mar 10:00, interact 10:05,        10:15 / 7 Mar 10:00: in time
                                               restart 11:05 "Still broken"
    G             email     normal   giulia    listen 7 Mar 09:00, then closed            none / 8 Mar 09:00: closed
    H             twitter   normal   giulia    1 Mar 23:59:59 (before START), interact    none
    I             twitter   normal   nobody    9 Mar 00:00 (= END: after the period)      none

    A and H are the same person (anna on twitter). Tickets:
    T1 "Descaling reminder"  opened 2 Mar, evidence A, B, D, H; shipped 4 Mar; A was told
    T2 "Dark mode"           opened 4 Mar, evidence C; declined 5 Mar
    T3 "Bigger tank"         opened 1 Feb, evidence E, F; shipped 10 Feb
    T4 "Spare parts"         opened 7 Mar; T5 (7 Mar, evidence G) was merged into it
    T6 "No evidence yet"     opened 8 Mar, no evidence
    """

    def __init__(self):
        self.giulia = factories.user("giulia", role=Role.COMMUNITY_MANAGER)
        self.marco = factories.user("marco", role=Role.COMMUNITY_MANAGER)
        self.nina = factories.user("nina", role=Role.COMMUNITY_MANAGER)
        self.product = factories.user("product", role=Role.PRODUCT_TEAM)
        giulia, marco, product = self.giulia, self.marco, self.product

        def new(channel="twitter", priority="normal", **fields):
            return factories.conversation(channel=channel, priority=priority, **fields)

        def advance(conversation, actor):
            services.advance(conversation.pk, actor=actor)

        def reply(conversation, actor):
            services.log_reply(conversation.pk, actor=actor, text="Thanks, we are on it.")

        self.t1 = feedback.create_ticket(actor=giulia, title="Descaling reminder")
        self.t2 = feedback.create_ticket(actor=giulia, title="Dark mode")
        self.t3 = feedback.create_ticket(actor=giulia, title="Bigger tank")
        self.t4 = feedback.create_ticket(actor=giulia, title="Spare parts")
        self.t5 = feedback.create_ticket(actor=giulia, title="Spare parts, again")
        self.t6 = feedback.create_ticket(actor=giulia, title="No evidence yet")

        def link(ticket, conversation):
            return feedback.link_evidence(ticket.pk, conversation.pk, actor=giulia, quote="this")

        self.a = a = new(priority="urgent", handle="anna")
        services.assign(a.pk, giulia, actor=giulia)
        advance(a, giulia)
        reply(a, giulia)
        advance(a, giulia)
        link(self.t1, a)
        advance(a, giulia)

        self.b = b = new(handle="bruno")
        services.assign(b.pk, giulia, actor=giulia)
        advance(b, giulia)
        reply(b, giulia)
        advance(b, giulia)
        link(self.t1, b)
        services.restart(b.pk, actor=giulia, reason="Still broken")
        advance(b, giulia)

        self.c = c = new(channel="facebook", priority="high", handle="carla")
        services.assign(c.pk, marco, actor=marco)
        advance(c, marco)
        reply(c, marco)
        self.t2_link = link(self.t2, c)
        services.restart(c.pk, actor=marco, reason="New need")

        self.d = d = new(channel="facebook", handle="dora")
        services.restart(d.pk, actor=marco, reason="Wrong product")
        link(self.t1, d)

        self.e = e = new(priority="low", handle="elio")
        link(self.t3, e)

        self.f = f = new(handle="fede")
        services.assign(f.pk, marco, actor=marco)
        advance(f, marco)
        reply(f, marco)
        services.restart(f.pk, actor=marco, reason="Still broken")
        link(self.t3, f)

        self.g = g = new(channel="email", handle="gaia@example.com")
        services.assign(g.pk, giulia, actor=giulia)
        self.t5_link = link(self.t5, g)
        services.set_state(g.pk, State.CLOSED, actor=giulia)

        self.h = h = new(handle="anna")
        services.assign(h.pk, giulia, actor=giulia)
        advance(h, giulia)
        link(self.t1, h)

        self.i = i = new(handle="ivo")

        feedback.change_ticket_status(self.t1.pk, TicketStatus.SHIPPED, actor=product)
        reply(a, giulia)  # telling anna that T1 shipped
        feedback.change_ticket_status(self.t2.pk, TicketStatus.DECLINED, actor=product)
        feedback.change_ticket_status(self.t3.pk, TicketStatus.SHIPPED, actor=product)
        feedback.merge_tickets(self.t5.pk, self.t4.pk, actor=product)

        # The times of the story.
        timeline(a, at(2, 0), at(2, 0, 10), at(2, 1, 10), at(2, 3, 10))
        times(a, received=at(2, 0), answered=at(2, 0, 30), due=at(2, 1))
        timeline(b, at(3, 9), at(3, 9, 20), at(3, 10, 50), at(3, 14, 50), at(3, 15, 50))
        times(b, received=at(3, 9), answered=at(3, 11), due=at(4, 9))
        timeline(c, at(4, 8), at(4, 8, 40), at(10, 8, 40))
        times(c, received=at(4, 8), answered=at(4, 13), due=at(4, 12))
        timeline(d, at(5, 12), at(5, 13))
        times(d, received=at(5, 12), due=at(6, 12))
        timeline(e, at(6, 8))
        times(e, received=at(6, 8), due=NOT_YET_DUE)
        timeline(f, at(6, 10), at(6, 10, 5), at(6, 11, 5))
        times(f, received=at(6, 10), answered=at(6, 10, 15), due=at(7, 10))
        timeline(g, at(7, 9))
        times(g, received=at(7, 9), due=at(8, 9))
        timeline(h, at(1, 23, 59, 59), at(2, 1))
        times(h, received=at(1, 23, 59, 59), due=at(2, 23, 59, 59))
        timeline(i, at(9, 0))
        times(i, received=at(9, 0), due=at(10, 0))

        opened = {
            self.t1: at(2, 12),
            self.t2: at(4, 9),
            self.t3: datetime(2026, 2, 1, tzinfo=UTC),
            self.t4: at(7, 9),
            self.t5: at(7, 9),
            self.t6: at(8, 9),
        }
        for ticket, when in opened.items():
            FeedbackTicket.objects.filter(pk=ticket.pk).update(created_at=when)
        ticket_event(self.t1, TicketStatus.SHIPPED, at(4, 10))
        ticket_event(self.t2, TicketStatus.DECLINED, at(5, 10))
        ticket_event(self.t3, TicketStatus.SHIPPED, datetime(2026, 2, 10, tzinfo=UTC))
        # T2 and T4 have one person each: the latest evidence ranks T4 first.
        FeedbackLink.objects.filter(pk=self.t2_link.pk).update(created_at=at(4, 10))
        FeedbackLink.objects.filter(pk=self.t5_link.pk).update(created_at=at(7, 10))


@pytest.fixture
def story():
    return Story()


# The funnel -----------------------------------------------------------------------------------


def steps(funnel) -> list[tuple]:
    return [(s.stage, s.reached, s.conversion, s.median_seconds) for s in funnel.steps]


def test_the_funnel_of_the_week(story, django_assert_num_queries):
    with django_assert_num_queries(2):
        funnel = metrics.funnel(WEEK)

    # The cohort is A–G: H came a second before START, I at END. C and F are back in listen
    # but reached interact (in cycle 1): they count there.
    # Time in listen, each conversation's visits that ended added up, from when engage
    # stored it (or from a restart) to the next move: A 600 s, B 1200 + 3600 (after its
    # restart) = 4800, C 2400, D 3600 (until its restart), F 300; E and G never left listen,
    # and the second visits of C, D and F are under way. Sorted 300 600 2400 3600 4800:
    # median 2400.
    # Interact: A 3600, B 5400 (09:20 → 10:50), C 6 days = 518400 (until its restart on
    # 10 March, after the period: the visit still counts), F 3600; B's second visit is
    # under way. Sorted 3600 3600 5400 518400: median (3600 + 5400) / 2 = 4500.
    # React: A 7200 (01:10 → 03:10), B 14400 (10:50 → 14:50): median 10800.
    # Sell: only A, still there: no visit ended.
    assert steps(funnel) == [
        (Stage.LISTEN, 7, None, 2400.0),
        (Stage.INTERACT, 4, pytest.approx(4 / 7), 4500.0),  # A, B, C, F
        (Stage.REACT, 2, 0.5, 10800.0),  # A, B
        (Stage.SELL, 1, 0.5, None),  # A
    ]
    # B and F "Still broken", D "Wrong product"; C's restart came after the period.
    assert funnel.restarts == 3
    assert funnel.restart_reasons == [("Still broken", 2), ("Wrong product", 1)]


def test_the_funnel_of_a_channel(story):
    funnel = metrics.funnel(Scope(start=START, end=END, channel="facebook"))

    # C and D. Listen: C 2400, D 3600 → 3000. Interact: C 518400. Nobody reached react, so
    # the conversion to sell has nothing to divide by.
    assert steps(funnel) == [
        (Stage.LISTEN, 2, None, 3000.0),
        (Stage.INTERACT, 1, 0.5, 518400.0),
        (Stage.REACT, 0, 0.0, None),
        (Stage.SELL, 0, None, None),
    ]
    assert (funnel.restarts, funnel.restart_reasons) == (1, [("Wrong product", 1)])


def test_the_funnel_of_a_person(story):
    funnel = metrics.funnel(Scope(start=START, end=END, assignee_id=story.giulia.pk))

    # A, B and G (H is giulia's too, but came before the period). Listen: A 600, B 4800 →
    # 2700. Interact: A 3600, B 5400 → 4500. React: A 7200, B 14400 → 10800.
    assert steps(funnel) == [
        (Stage.LISTEN, 3, None, 2700.0),
        (Stage.INTERACT, 2, pytest.approx(2 / 3), 4500.0),
        (Stage.REACT, 2, 1.0, 10800.0),
        (Stage.SELL, 1, 0.5, None),
    ]
    assert (funnel.restarts, funnel.restart_reasons) == (1, [("Still broken", 1)])


def test_the_period_bounds_include_the_start_and_leave_out_the_end(story):
    # [START, START + 1 s): only A, received at START exactly.
    first_second = metrics.funnel(Scope(start=START, end=START + timedelta(seconds=1)))
    assert first_second.steps[0].reached == 1
    # [END − 1 day, END): nobody; I, received at END exactly, is not in it.
    last_day = metrics.responsiveness(Scope(start=END - timedelta(days=1), end=END))
    assert last_day.overall.conversations == 0
    # [7 Mar, 8 Mar): G.
    the_day_before = metrics.responsiveness(Scope(start=at(7, 0), end=at(8, 0)))
    assert the_day_before.overall.conversations == 1


def test_a_merged_conversation_is_left_out(manager):
    kept, duplicate = factories.conversation(), factories.conversation()
    merge(duplicate.pk, kept.pk, actor=manager)
    now = timezone.now()
    scope = Scope(start=now - timedelta(days=30), end=now + timedelta(minutes=1))

    assert metrics.funnel(scope).steps[0].reached == 1
    assert metrics.responsiveness(scope).overall.conversations == 1


@pytest.fixture
def clock(monkeypatch):
    """The time every service reads (timezone.now), set by the test: `clock.at = ...`."""

    class Clock:
        at = START

    clock = Clock()
    monkeypatch.setattr(timezone, "now", lambda: clock.at)
    return clock


def record(conversation) -> dict:
    return dict(Conversation.objects.filter(pk=conversation.pk).values(*RECORD).get())


def lived(manager, clock):
    """A conversation moved by the services: stored 2 Mar 09:00, interact 09:10, react
    10:10, restarted 10:40, interact again 11:40."""
    clock.at = at(2, 9)
    conversation = factories.conversation(created_at=at(2, 9))
    services.assign(conversation.pk, manager, actor=manager)
    clock.at = at(2, 9, 10)
    services.advance(conversation.pk, actor=manager)
    clock.at = at(2, 9, 20)
    services.log_reply(conversation.pk, actor=manager, text="Thanks, we are on it.")
    clock.at = at(2, 10, 10)
    services.advance(conversation.pk, actor=manager)
    clock.at = at(2, 10, 40)
    services.restart(conversation.pk, actor=manager, reason="Still broken")
    clock.at = at(2, 11, 40)
    services.advance(conversation.pk, actor=manager)
    return conversation


LIVED = {
    # The first arrival in each step is kept when it comes back.
    "interact_reached_at": at(2, 9, 10),
    "react_reached_at": at(2, 10, 10),
    "sell_reached_at": None,
    # Listen 09:00 → 09:10 and 10:40 → 11:40; interact 09:10 → 10:10 (the visit since 11:40
    # is under way); react 10:10 → 10:40.
    "time_in_listen": timedelta(minutes=70),
    "time_in_interact": timedelta(hours=1),
    "time_in_react": timedelta(minutes=30),
    "time_in_sell": None,
}


def test_the_services_keep_the_funnels_record_as_the_conversation_moves(manager, clock):
    conversation = lived(manager, clock)

    assert record(conversation) == LIVED
    funnel = metrics.funnel(Scope(start=at(2, 0), end=at(3, 0)))
    assert steps(funnel) == [
        (Stage.LISTEN, 1, None, 4200.0),
        (Stage.INTERACT, 1, 1.0, 3600.0),
        (Stage.REACT, 1, 1.0, 1800.0),
        (Stage.SELL, 0, 0.0, None),
    ]
    assert (funnel.restarts, funnel.restart_reasons) == (1, [("Still broken", 1)])


def test_a_merge_keeps_the_earlier_arrivals_and_adds_the_times(manager, clock):
    kept = lived(manager, clock)
    clock.at = at(2, 12)
    duplicate = factories.conversation(created_at=at(2, 12))
    services.assign(duplicate.pk, manager, actor=manager)
    clock.at = at(2, 12, 30)
    services.advance(duplicate.pk, actor=manager)  # listen 30 min, in interact since 12:30
    Conversation.objects.filter(pk=duplicate.pk).update(interact_reached_at=at(2, 8))

    merge(duplicate.pk, kept.pk, actor=manager)

    assert record(kept) == LIVED | {
        "interact_reached_at": at(2, 8),
        "time_in_listen": timedelta(minutes=100),
    }


def test_the_migration_fills_the_record_from_the_history(manager, clock):
    # What a database that existed before the record had: the history only.
    conversation = lived(manager, clock)
    untouched = factories.conversation()
    Conversation.objects.update(**dict.fromkeys(RECORD))
    migration = importlib.import_module("engage.migrations.0009_funnel_record")

    migration.record_funnel(django_apps, SimpleNamespace(connection=connection))

    assert record(conversation) == LIVED
    assert record(untouched) == dict.fromkeys(RECORD)


# Responsiveness -------------------------------------------------------------------------------


def figures(item) -> tuple:
    return (
        item.label,
        item.conversations,
        item.answered,
        item.median_seconds,
        item.p90_seconds,
        item.within_target,
        item.breached,
        item.share_within_target,
    )


def test_first_responses_of_the_week(story, django_assert_num_queries):
    with django_assert_num_queries(2):
        result = metrics.responsiveness(WEEK)
        waiting = [(c.pk, c.contact.handle, c.assignee) for c in result.waiting]

    # Answered: F 900 s, A 1800, B 7200, C 18000 (5 h). Median (1800 + 7200) / 2 = 4500;
    # p90 at rank 0.9 × 3 = 2.7: 7200 + 0.7 × (18000 − 7200) = 14760.
    # In time: A, B, F. Breached: C (answered late) and D (waiting, overdue). E is not due
    # yet and G was closed unanswered: neither is judged. Share 3 / (3 + 2) = 0.6.
    assert figures(result.overall) == ("", 7, 4, 4500.0, pytest.approx(14760.0), 3, 2, 0.6)
    # Twitter: A, B, E, F; answered 900 1800 7200: median 1800, p90 at rank 1.8:
    # 1800 + 0.8 × 5400 = 6120. Facebook: C, D. Email: G, nothing to judge.
    assert [figures(item) for item in result.by_channel] == [
        ("twitter", 4, 3, 1800.0, pytest.approx(6120.0), 3, 0, 1.0),
        ("facebook", 2, 1, 18000.0, 18000.0, 0, 2, 0.0),
        ("email", 1, 0, None, None, 0, 0, None),
    ]
    # Normal: B, D, F, G; answered 900 7200: median 4050, p90 900 + 0.9 × 6300 = 6570;
    # in time B and F, breached D: 2 / 3.
    assert [figures(item) for item in result.by_priority] == [
        ("urgent", 1, 1, 1800.0, 1800.0, 1, 0, 1.0),
        ("high", 1, 1, 18000.0, 18000.0, 0, 1, 0.0),
        ("normal", 4, 2, 4050.0, pytest.approx(6570.0), 2, 1, pytest.approx(2 / 3)),
        ("low", 1, 0, None, None, 0, 0, None),
    ]
    # giulia: A, B, G; answered 1800 7200: median 4500, p90 1800 + 0.9 × 5400 = 6660.
    # marco: C, F; answered 900 18000: median 9450, p90 900 + 0.9 × 17100 = 16290.
    # Nobody: D, E.
    assert [figures(item) for item in result.by_person] == [
        ("giulia", 3, 2, 4500.0, pytest.approx(6660.0), 2, 0, 1.0),
        ("marco", 2, 2, 9450.0, pytest.approx(16290.0), 1, 1, 0.5),
        ("", 2, 0, None, None, 0, 1, 0.0),
    ]
    # Still waiting: D and E (G is closed), oldest received first, read with their people.
    assert result.waiting_count == 2
    assert waiting == [(story.d.pk, "dora", None), (story.e.pk, "elio", None)]


def test_first_responses_of_a_channel_and_of_a_person(story):
    twitter = metrics.responsiveness(Scope(start=START, end=END, channel="twitter"))
    assert figures(twitter.overall) == ("", 4, 3, 1800.0, pytest.approx(6120.0), 3, 0, 1.0)
    assert [item.label for item in twitter.by_channel] == ["twitter"]
    assert [c.pk for c in twitter.waiting] == [story.e.pk]

    marco = metrics.responsiveness(Scope(start=START, end=END, assignee_id=story.marco.pk))
    assert figures(marco.overall) == ("", 2, 2, 9450.0, pytest.approx(16290.0), 1, 1, 0.5)
    assert [item.label for item in marco.by_person] == ["marco"]
    assert (marco.waiting, marco.waiting_count) == ([], 0)


# Workload -------------------------------------------------------------------------------------


def loads(workload) -> list[tuple]:
    return [
        (p.username, [p.by_stage[stage] for stage in Stage.values], p.total)
        for p in workload.people
    ]


def test_workload_is_what_is_open_now(story, django_assert_num_queries):
    with django_assert_num_queries(2):
        result = metrics.workload(WEEK)

    # Whenever received (H and I count), not closed (G does not), by listen, interact,
    # react, sell: giulia B and H in interact, A in sell; marco C and F back in listen;
    # nobody's D, E and I in listen. Busiest first, nobody's last.
    assert loads(result) == [
        ("giulia", [0, 2, 0, 1], 3),
        ("marco", [2, 0, 0, 0], 2),
        ("", [3, 0, 0, 0], 3),
    ]
    assert result.backlog == []


def test_workload_of_a_channel_and_of_a_person(story, django_assert_num_queries):
    twitter = metrics.workload(Scope(start=START, end=END, channel="twitter"))
    # A, B, E, F, H, I.
    assert loads(twitter) == [
        ("giulia", [0, 2, 0, 1], 3),
        ("marco", [1, 0, 0, 0], 1),
        ("", [2, 0, 0, 0], 2),
    ]

    with django_assert_num_queries(2):
        marco = metrics.workload(Scope(start=START, end=END, assignee_id=story.marco.pk))
    assert loads(marco) == [("marco", [2, 0, 0, 0], 2)]
    marco_on_twitter = Scope(start=START, end=END, channel="twitter", assignee_id=story.marco.pk)
    assert loads(metrics.workload(marco_on_twitter)) == [("marco", [1, 0, 0, 0], 1)]
    # Someone with nothing open still has their row.
    nina = metrics.workload(Scope(start=START, end=END, assignee_id=story.nina.pk))
    assert loads(nina) == [("nina", [0, 0, 0, 0], 0)]


SCOPES = {
    "everyone": lambda story: WEEK,
    "twitter": lambda story: Scope(start=START, end=END, channel="twitter"),
    "marco": lambda story: Scope(start=START, end=END, assignee_id=story.marco.pk),
    "marco on twitter": lambda story: Scope(
        start=START, end=END, channel="twitter", assignee_id=story.marco.pk
    ),
    "nina": lambda story: Scope(start=START, end=END, assignee_id=story.nina.pk),
}


@pytest.mark.parametrize("name", SCOPES)
def test_the_minutes_snapshot_gives_the_counted_workload(story, name):
    scope = SCOPES[name](story)
    counted = metrics.workload(scope)
    snapshot = sla.take_workload_snapshot()

    from_snapshot = metrics.workload(scope, snapshot=True)

    assert loads(from_snapshot) == loads(counted)
    assert from_snapshot.backlog == counted.backlog
    assert counted.as_of is None
    if name == "nina":  # nothing of hers in it: counted, to find her row
        assert from_snapshot.as_of is None
    else:
        assert from_snapshot.as_of == snapshot.taken_at


def test_the_workload_snapshot_shows_what_was_open_when_taken_until_the_next(
    story, django_assert_num_queries
):
    first = sla.take_workload_snapshot()
    # Nina takes E (nobody's, in listen).
    services.assign(story.e.pk, story.nina, actor=story.nina)

    with django_assert_num_queries(2):  # the snapshot, the backlog
        before = metrics.workload(WEEK, snapshot=True)
    assert before.as_of == first.taken_at
    assert loads(before) == [
        ("giulia", [0, 2, 0, 1], 3),
        ("marco", [2, 0, 0, 0], 2),
        ("", [3, 0, 0, 0], 3),
    ]
    # Counted, and in the next snapshot, E is hers.
    with_nina = [
        ("giulia", [0, 2, 0, 1], 3),
        ("marco", [2, 0, 0, 0], 2),
        ("nina", [1, 0, 0, 0], 1),
        ("", [2, 0, 0, 0], 2),
    ]
    assert loads(metrics.workload(WEEK)) == with_nina
    second = sla.take_workload_snapshot()
    after = metrics.workload(WEEK, snapshot=True)
    assert (after.as_of, loads(after)) == (second.taken_at, with_nina)
    # Only the latest is kept.
    assert list(WorkloadSnapshot.objects.values_list("pk", flat=True)) == [second.pk]


def test_an_old_workload_snapshot_is_not_shown(story, django_assert_num_queries):
    snapshot = sla.take_workload_snapshot()
    services.assign(story.e.pk, story.nina, actor=story.nina)
    WorkloadSnapshot.objects.filter(pk=snapshot.pk).update(
        taken_at=timezone.now() - metrics.SNAPSHOT_AGE - timedelta(seconds=1)
    )

    with django_assert_num_queries(3):  # no snapshot young enough, the count, the backlog
        result = metrics.workload(WEEK, snapshot=True)

    assert result.as_of is None
    assert ("nina", [1, 0, 0, 0], 1) in loads(result)


def test_the_workload_snapshot_counts_every_open_conversation_by_assignee_stage_and_channel(
    story,
):
    counts = sorted(metrics.open_counts(), key=lambda row: (row[1], row[2], row[3]))

    # As test_workload_is_what_is_open_now, with the channels: G (closed) is left out.
    assert [row[1:] for row in counts] == [
        ["", "listen", "facebook", 1],  # D
        ["", "listen", "twitter", 2],  # E, I
        ["giulia", "interact", "twitter", 2],  # B, H
        ["giulia", "sell", "twitter", 1],  # A
        ["marco", "listen", "facebook", 1],  # C
        ["marco", "listen", "twitter", 1],  # F
    ]
    assert {row[0] for row in counts} == {None, story.giulia.pk, story.marco.pk}


def snapshots(first: datetime, count: int) -> list[datetime]:
    """`count` hourly backlog snapshots from `first` (the SLA job writes them)."""
    taken = [first + timedelta(hours=n) for n in range(count)]
    BacklogSnapshot.objects.bulk_create(
        BacklogSnapshot(taken_at=when, open=100 + n, unassigned=n) for n, when in enumerate(taken)
    )
    return taken


def test_the_backlog_keeps_every_snapshot_of_the_period_up_to_the_limit(db):
    taken = snapshots(START - timedelta(hours=1), 3)  # before START, at START, one after
    snapshots(END, 1)

    points = metrics.workload(WEEK).backlog

    assert [(p.taken_at, p.open, p.unassigned) for p in points] == [
        (taken[1], 101, 1),
        (taken[2], 102, 2),
    ]


def test_a_long_backlog_is_thinned_evenly_by_the_database(db, django_assert_num_queries):
    taken = snapshots(START, 450)  # hourly: 18.75 days

    with django_assert_num_queries(2):
        points = metrics.workload(Scope(start=START, end=START + timedelta(days=30))).backlog

    # k = ⌈450 / 200⌉ = 3: every third from the latest (index 449) back, so 449, 446, ...,
    # 2: 150 points, oldest first.
    assert len(points) == 150
    assert [p.taken_at for p in points] == taken[2::3]
    assert points[-1].taken_at == taken[-1]


# Feedback -------------------------------------------------------------------------------------


def demand(result) -> list[tuple]:
    return [(t.title, t.status, t.demand, t.told) for t in result.top]


def test_feedback_of_the_week(story, django_assert_num_queries):
    with django_assert_num_queries(2):
        result = metrics.feedback_figures(WEEK)

    # Opened in the week: T1, T2, T4, T6 (T3 in February; T5 was merged into T4).
    assert (result.opened, result.shipped, result.declined) == (4, 1, 1)
    # T1's people: anna (A and H), bruno (B), dora (D): 3, of whom anna was told. T3 has
    # elio and fede; T4 has gaia (moved from T5); T2 carla. T6 has no evidence.
    assert demand(result) == [
        ("Descaling reminder", TicketStatus.SHIPPED, 3, 1),
        ("Bigger tank", TicketStatus.SHIPPED, 2, 0),
        ("Spare parts", TicketStatus.NEW, 1, 0),  # its evidence is the latest (7 Mar)
        ("Dark mode", TicketStatus.DECLINED, 1, 0),
    ]
    # Over T1, the one shipped in the week: anna told, bruno and dora still to tell.
    assert (result.told_after_ship, result.to_tell_after_ship) == (1, 2)


def test_feedback_of_a_channel(story):
    twitter = metrics.feedback_figures(Scope(start=START, end=END, channel="twitter"))
    # Tickets with evidence from twitter: T1 (A, B, H) and T3 (E, F). Demand stays whole.
    assert (twitter.opened, twitter.shipped, twitter.declined) == (1, 1, 0)
    assert demand(twitter) == [
        ("Descaling reminder", TicketStatus.SHIPPED, 3, 1),
        ("Bigger tank", TicketStatus.SHIPPED, 2, 0),
    ]
    assert (twitter.told_after_ship, twitter.to_tell_after_ship) == (1, 2)

    facebook = metrics.feedback_figures(Scope(start=START, end=END, channel="facebook"))
    # T1 (D) and T2 (C).
    assert (facebook.opened, facebook.shipped, facebook.declined) == (2, 1, 1)
    assert [t.title for t in facebook.top] == ["Descaling reminder", "Dark mode"]


# An empty period ------------------------------------------------------------------------------


def test_an_empty_period_gives_zeros_and_nones(story):
    empty = Scope(start=datetime(2030, 1, 1, tzinfo=UTC), end=datetime(2030, 2, 1, tzinfo=UTC))

    funnel = metrics.funnel(empty)
    assert steps(funnel) == [(stage, 0, None, None) for stage in Stage.values]
    assert (funnel.restarts, funnel.restart_reasons) == (0, [])

    result = metrics.responsiveness(empty)
    assert figures(result.overall) == ("", 0, 0, None, None, 0, 0, None)
    assert (result.by_channel, result.by_priority, result.by_person) == ([], [], [])
    assert (result.waiting, result.waiting_count) == ([], 0)

    assert metrics.workload(empty).backlog == []

    tickets = metrics.feedback_figures(empty)
    assert (tickets.opened, tickets.shipped, tickets.declined) == (0, 0, 0)
    assert (tickets.told_after_ship, tickets.to_tell_after_ship) == (0, 0)
    assert len(tickets.top) == 4  # the most demanded, whatever the period


def test_an_empty_database_gives_zeros_and_nones(db):
    for_nothing = (
        metrics.funnel(WEEK),
        metrics.responsiveness(WEEK).overall,
        metrics.workload(WEEK),
        metrics.feedback_figures(WEEK),
    )
    assert for_nothing[0].steps[1] == metrics.FunnelStep(Stage.INTERACT, 0, None, None)
    assert for_nothing[1].share_within_target is None
    assert for_nothing[2] == metrics.Workload(people=[], backlog=[])
    assert for_nothing[3] == metrics.FeedbackFigures(0, 0, 0, [], 0, 0)


# The percentile ------------------------------------------------------------------------------


def test_percentile_interpolates_like_percentile_cont():
    assert metrics.percentile([], 0.5) is None
    assert metrics.percentile([7.0], 0.9) == 7.0
    assert metrics.percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    # Rank 0.9 × 4 = 3.6 of 10 20 30 40 50: 40 + 0.6 × 10.
    assert metrics.percentile([50.0, 10.0, 40.0, 20.0, 30.0], 0.9) == pytest.approx(46.0)


# Parsing the scope ----------------------------------------------------------------------------

NOW = datetime(2026, 11, 21, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(("period", "days"), [("7d", 7), ("30d", 30), ("90d", 90)])
def test_a_period_is_the_days_up_to_now(period, days):
    scope = metrics.scope_from({"period": period}, now=NOW)
    assert scope == Scope(NOW - timedelta(days), NOW, period=period)
    assert scope.snapshotted


def test_the_default_scope_is_the_last_30_days_of_everything():
    every = Scope(NOW - timedelta(days=30), NOW, "", None, period="30d")
    assert metrics.scope_from({}, now=NOW) == every
    blank = {"period": "", "start": "", "end": "", "channel": "", "assignee": ""}
    assert metrics.scope_from(blank, now=NOW) == every


def test_dates_cover_whole_days_in_the_current_time_zone_and_win_over_the_period():
    rome = ZoneInfo("Europe/Rome")
    with timezone.override(rome):
        scope = metrics.scope_from(
            {"period": "7d", "start": "2026-03-02", "end": "2026-03-08"}, now=NOW
        )
    assert scope.start == datetime(2026, 3, 2, tzinfo=rome)
    assert scope.end == datetime(2026, 3, 9, tzinfo=rome)  # the end day is included
    assert scope.start.utcoffset() == timedelta(hours=1)


def test_channel_and_person(manager, django_assert_num_queries):
    with django_assert_num_queries(1):
        scope = metrics.scope_from({"channel": "twitter", "assignee": "manager"}, now=NOW)
    assert (scope.channel, scope.assignee_id) == ("twitter", manager.pk)
    with django_assert_num_queries(0):
        metrics.scope_from({"channel": "email"}, now=NOW)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"period": "1y"}, "period", "7d, 30d, 90d"),
        ({"start": "2026-02-30", "end": "2026-03-01"}, "start", "YYYY-MM-DD"),
        ({"start": "2026-03-01", "end": "March"}, "end", "YYYY-MM-DD"),
        ({"start": "0001-01-01", "end": "2026-03-01"}, "start", "YYYY-MM-DD"),
        ({"start": "2026-03-01"}, "end", "both a start and an end"),
        ({"end": "2026-03-01"}, "start", "both a start and an end"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, "end", "before the start"),
        ({"channel": "myspace"}, "channel", "not a channel"),
        ({"assignee": "ghost"}, "assignee", "no user “ghost”"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(db, params, field, words):
    with pytest.raises(InvalidInput) as refused:
        metrics.scope_from(params, now=NOW)
    assert refused.value.field == field
    assert words in refused.value.message
