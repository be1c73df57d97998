"""The dashboard's figures (issue 6): the funnel, responsiveness, workload and feedback.

Every figure is an aggregate the database computes over a scope (a period, a channel, a
person), in a fixed number of queries whatever the number of conversations: the dashboard
page and the JSON API read the same dataclasses.

Most conversations figures are about a **cohort**: the conversations received in the period
(`received_at` in [start, end)), of the channel when one is chosen, and, when a person is
chosen, currently assigned to them. A conversation merged into another is left out: it is a
closed signpost and its history moved to the one it was merged into.

Medians and percentiles are PostgreSQL's `percentile_cont`: the value at rank
`fraction × (n − 1)` of the sorted values, interpolated linearly between the two nearest.
SQLite (the embedded default) has no such function: there the same queries return the
durations of each group as one comma-separated text (`group_concat`) and `percentile`
computes the same interpolation in Python. The number of queries is the same on both.

At a million conversations PostgreSQL answers from indexes alone: the cohort from
conv_cohort, which leads with (received_at, id) and carries every column the funnel and
responsiveness read (the services keep each conversation's funnel record on its own row,
so no history is scanned); the restarts of a period from event_restarts; the workload from
conv_open_load (the conversations not closed), which the page reads from the minute's
WorkloadSnapshot instead (see workload). The funnel and first responses of a cohort still
sort all its durations (half a second for 90 days at a million conversations): for the
preset periods over everyone, the page reads them from the figures job's FiguresSnapshot
(engage.services.figures). bench/dashboard.py measures it.
"""

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Coalesce, Mod, RowNumber
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _

from engage.choices import Channel, EventKind, Priority, Stage, State, TicketStatus
from engage.errors import InvalidInput
from engage.models import (
    BacklogSnapshot,
    Conversation,
    Event,
    FeedbackLink,
    FeedbackTicket,
    FiguresSnapshot,
    WorkloadSnapshot,
)
from engage.queries import TICKET_RANK, waiting

# Scope ----------------------------------------------------------------------------------------

PERIODS = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_PERIOD = "30d"
# Dates outside these years are refused before they reach SQL.
FIRST_YEAR, LAST_YEAR = 1900, 9000


@dataclass(frozen=True)
class Scope:
    start: datetime  # aware; the period is [start, end)
    end: datetime
    channel: str = ""  # "" = all channels
    assignee_id: int | None = None  # a team member (user id), or None for everyone
    period: str = ""  # the preset period ("30d") the scope is, up to now; "" for dates

    @property
    def snapshotted(self) -> bool:
        """Whether the figures job keeps this scope's funnel and responses (FiguresSnapshot):
        a preset period over every channel and person."""
        return bool(self.period) and not self.channel and self.assignee_id is None


def scope_from(params: Mapping[str, str], *, now: datetime | None = None) -> Scope:
    """The scope a query string asks for.

    - `period=7d|30d|90d` (default 30d): the days up to `now` (default: the current time);
    - or `start=YYYY-MM-DD&end=YYYY-MM-DD`, which win over `period`: from the start of the
      start day to the end of the end day (both included), in the current time zone;
    - `channel=<channel>` ("" or absent: all channels);
    - `assignee=<username>` ("" or absent: everyone).

    Raises InvalidInput(field=...) for a bad value. One query when `assignee` is given (to
    find the user), none otherwise.
    """
    now = now or timezone.now()
    first, last = params.get("start") or "", params.get("end") or ""
    if first or last:
        start_day = _day(first, field="start", missing=not first)
        end_day = _day(last, field="end", missing=not last)
        if end_day < start_day:
            raise InvalidInput(_("The end date is before the start date."), field="end")
        zone = timezone.get_current_timezone()
        start = datetime.combine(start_day, time.min, tzinfo=zone)
        end = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=zone)
    else:
        period = params.get("period") or DEFAULT_PERIOD
        if period not in PERIODS:
            raise InvalidInput(
                _("“%(value)s” is not a period: use %(choices)s.")
                % {"value": period[:20], "choices": ", ".join(PERIODS)},
                field="period",
            )
        start, end = now - timedelta(days=PERIODS[period]), now

    channel = params.get("channel") or ""
    if channel and channel not in Channel.values:
        raise InvalidInput(
            _("“%(value)s” is not a channel.") % {"value": channel[:40]}, field="channel"
        )

    assignee_id = None
    username = params.get("assignee") or ""
    if username:
        assignee_id = (
            get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()
        )
        if assignee_id is None:
            raise InvalidInput(
                _("There is no user “%(username)s”.") % {"username": username[:150]},
                field="assignee",
            )
    period = "" if first or last else params.get("period") or DEFAULT_PERIOD
    return Scope(start=start, end=end, channel=channel, assignee_id=assignee_id, period=period)


def _day(value: str, *, field: str, missing: bool) -> date:
    if missing:
        raise InvalidInput(_("Give both a start and an end date."), field=field)
    try:
        day = parse_date(value)
    except ValueError:  # well formed but impossible, such as 2026-02-30
        day = None
    if day is None or not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidInput(
            _("“%(value)s” is not a date: use YYYY-MM-DD.") % {"value": value[:20]}, field=field
        )
    return day


def cohort(scope: Scope) -> QuerySet[Conversation]:
    """The conversations the funnel and responsiveness figures are about (see the module's
    docstring)."""
    conversations = Conversation.objects.filter(
        received_at__gte=scope.start, received_at__lt=scope.end
    )
    if scope.channel:
        conversations = conversations.filter(channel=scope.channel)
    if scope.assignee_id is not None:
        conversations = conversations.filter(assignee_id=scope.assignee_id)
    # As in queries.queue_matches: a condition on the closed rows, so that the planner never
    # walks the merged_into index for it.
    return conversations.exclude(state=State.CLOSED, merged_into__isnull=False)


# Percentiles ----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float | None:
    """percentile_cont in Python (the SQLite fallback): linear interpolation between the two
    values nearest to rank fraction × (n − 1) of the sorted values; None for no value."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    below = math.floor(rank)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (rank - below) * (ordered[above] - ordered[below])


def _durations(text: str | None) -> list[float]:
    """The seconds a SQLite group_concat returned."""
    return [float(value) for value in text.split(",")] if text else []


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _seconds_sql(later: str, earlier: str) -> str:
    """SQLite SQL for `later - earlier` in seconds. It uses the function Django's ORM itself
    registers on SQLite for datetime subtraction: exact microseconds, where julianday()
    arithmetic would round. (PostgreSQL sorts the intervals themselves, which costs less
    than turning each into seconds, and gives the percentile as an interval.)"""
    return f"(django_timestamp_diff({later}, {earlier}) / 1000000.0)"


def _seconds(value) -> float | None:
    """Seconds from what PostgreSQL's percentile_cont over intervals returns."""
    return value.total_seconds() if value is not None else None


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# The funnel -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    stage: str  # "listen" .. "sell"
    reached: int  # conversations of the cohort that reached this step (in any cycle)
    conversion: float | None  # reached / previous step's reached (None for listen, or 0 before)
    median_seconds: float | None  # median time spent in this step, over the cohort


@dataclass(frozen=True)
class Funnel:
    steps: list[FunnelStep]
    restarts: int  # restart events of the cohort in the period
    restart_reasons: list[tuple[str, int]]  # reason → count, most frequent first (top 10)
    # When the figures come from the job's FiguresSnapshot, when it took them; None when
    # they were computed now.
    as_of: datetime | None = None


TOP_REASONS = 10


def funnel(scope: Scope, *, kept: "KeptFigures | None" = None) -> Funnel:
    """The four steps for the cohort (see the module's docstring). Two queries; none when
    `kept` (kept_figures) holds them, and `as_of` then says when they were computed.

    The services keep each conversation's record as it moves (Conversation.enter_stage),
    so the figures are aggregates over the cohort's own rows, not over its history:

    - **reached**: every conversation of the cohort reached listen; it reached a later step
      when it first moved there (`<step>_reached_at`), in any cycle and at any time, also
      after the period.
    - **conversion**: reached / the previous step's reached.
    - **median time in a step**: over the conversations that have left the step at least
      once, the time each spent in it (`time_in_<step>`: its visits added up, each from
      the move into the step — for the first visit of listen, when engage stored the
      conversation — to the move out of it). The visit under way does not count yet, so a
      conversation that stays in sell never adds to sell's median. A conversation another
      was merged into adds the other's times to its own.
    - **restarts**: the RESTARTED Events of the cohort created in the period, and their
      reasons (as written), most frequent first, the first TOP_REASONS.
    """
    if kept is not None:
        record = kept.funnel
        return Funnel(
            steps=[FunnelStep(**step) for step in record["steps"]],
            restarts=record["restarts"],
            restart_reasons=[(reason, count) for reason, count in record["restart_reasons"]],
            as_of=kept.taken_at,
        )
    later = [stage for stage in Stage if stage != Stage.LISTEN]
    columns = [f"{stage}_reached_at" for stage in later]
    columns += [f"time_in_{stage}" for stage in Stage]
    cohort_sql, params = cohort(scope).values(*columns).query.sql_with_params()
    if _is_postgresql():
        medians = [
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY c.time_in_{stage})" for stage in Stage
        ]
    else:  # Django stores a duration as microseconds there.
        medians = [f"group_concat(c.time_in_{stage} / 1000000.0)" for stage in Stage]
    reached = [f"COUNT(c.{stage}_reached_at)" for stage in later]
    sql = f"""
        SELECT COUNT(*), {", ".join(reached)}, {", ".join(medians)} FROM ({cohort_sql}) AS c
    """  # noqa: S608 - SQL fragments are constants; values are parameters
    (row,) = _fetch(sql, list(params))
    counts, medians_found = row[: len(Stage)], row[len(Stage) :]

    # The reasons, with the count of every restart (the window runs before the LIMIT).
    restarted = Event.objects.filter(
        kind=EventKind.RESTARTED,
        created_at__gte=scope.start,
        created_at__lt=scope.end,
        conversation__in=cohort(scope).values("pk"),
    )
    reasons_sql, params = restarted.values("reason").query.sql_with_params()
    reasons = _fetch(
        f"""
        SELECT r.reason, COUNT(*), SUM(COUNT(*)) OVER () FROM ({reasons_sql}) AS r
        GROUP BY r.reason ORDER BY 2 DESC, r.reason LIMIT {TOP_REASONS}
        """,  # noqa: S608 - SQL fragments are constants; values are parameters
        list(params),
    )
    steps, previous = [], None
    for stage, count, median in zip(Stage, counts, medians_found, strict=True):
        median = _seconds(median) if _is_postgresql() else percentile(_durations(median), 0.5)
        conversion = count / previous if previous else None
        steps.append(FunnelStep(stage.value, count, conversion, median))
        previous = count
    return Funnel(
        steps=steps,
        restarts=int(reasons[0][2]) if reasons else 0,
        restart_reasons=[(reason, count) for reason, count, _total in reasons],
    )


# Responsiveness -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseFigures:
    label: str  # a channel, a priority key ("urgent"), a username; "" overall or unassigned
    conversations: int  # of the cohort
    answered: int  # first_response_at set
    median_seconds: float | None  # first_response_at - received_at, over the answered
    p90_seconds: float | None
    within_target: int  # answered by first_response_due_at
    share_within_target: float | None  # within_target / (within_target + breached)
    # Answered after their due time, or still waiting (not closed) past it: the breaches.
    breached: int = 0


@dataclass(frozen=True)
class Responsiveness:
    overall: ResponseFigures
    by_channel: list[ResponseFigures]  # most conversations first
    by_priority: list[ResponseFigures]  # urgent first
    by_person: list[ResponseFigures]  # most conversations first; "" (unassigned) last
    waiting: list  # up to WAITING_SHOWN Conversations still waiting, oldest received first
    waiting_count: int
    as_of: datetime | None = None  # as Funnel.as_of (the waiting list is always read now)


WAITING_SHOWN = 10
# The grouping sets, named by what a row is grouped by.
OVERALL, BY_CHANNEL, BY_PRIORITY, BY_PERSON = "overall", "channel", "priority", "person"


def responsiveness(scope: Scope, *, kept: "KeptFigures | None" = None) -> Responsiveness:
    """First responses of the cohort (see the module's docstring), overall and by channel,
    priority and person (the current assignee). Two queries; one when `kept` holds the
    figures (not the waiting list, always read now), as for `funnel`.

    - **median / p90**: of first_response_at − received_at, over the answered conversations
      (percentile_cont: see the module's docstring).
    - **within target**: answered at or before first_response_due_at.
    - **breached**: answered after it, or not answered, not closed and past it now.
    - **share within target**: within / (within + breached). The denominator holds the
      conversations that can be judged: those still waiting but not yet due may still make
      it, and those closed without an answer were not waiting for one (spam, duplicates).
      None when there is none to judge.
    - **waiting**: the cohort's conversations with no first response that are not closed,
      oldest received first (the first WAITING_SHOWN, with their contact and assignee), and
      how many in all.

    On PostgreSQL one query computes every group (GROUPING SETS); on SQLite it groups by
    channel, priority and person and Python adds the groups up (durations as text).
    """
    rows = kept.responses if kept is not None else _response_rows(scope)
    figures: dict[str, list[ResponseFigures]] = {
        OVERALL: [],
        BY_CHANNEL: [],
        BY_PRIORITY: [],
        BY_PERSON: [],
    }
    waiting_count = 0
    for grouping, key, values in rows:
        figures[grouping].append(_response_figures(_label(grouping, key), values))
        if grouping == OVERALL:
            waiting_count = values["waiting"]
    by_size = lambda item: (-item.conversations, item.label)  # noqa: E731
    waiting_rows = list(
        cohort(scope)
        .filter(waiting())
        .select_related("contact", "assignee")
        .order_by("received_at", "id")[:WAITING_SHOWN]
    )
    return Responsiveness(
        overall=figures[OVERALL][0] if figures[OVERALL] else _response_figures("", {}),
        by_channel=sorted(figures[BY_CHANNEL], key=by_size),
        by_priority=sorted(figures[BY_PRIORITY], key=lambda item: _priority_rank(item.label)),
        by_person=sorted(figures[BY_PERSON], key=lambda item: (item.label == "", *by_size(item))),
        waiting=waiting_rows,
        waiting_count=waiting_count,
        as_of=kept.taken_at if kept is not None else None,
    )


def _label(grouping: str, key) -> str:
    if grouping == BY_PRIORITY:
        return Priority(key).key
    return key or ""


def _priority_rank(key: str) -> int:
    return -Priority.from_key(key).value


def _response_figures(label: str, values: dict) -> ResponseFigures:
    within, breached = values.get("within", 0), values.get("breached", 0)
    return ResponseFigures(
        label=label,
        conversations=values.get("conversations", 0),
        answered=values.get("answered", 0),
        median_seconds=values.get("median"),
        p90_seconds=values.get("p90"),
        within_target=within,
        share_within_target=within / (within + breached) if within + breached else None,
        breached=breached,
    )


# The counts every group carries, by name, over the rows of _judged (alias c).
_COUNTS = {
    "conversations": "COUNT(*)",
    "answered": "COUNT(c.took)",
    "within": "COUNT(*) FILTER (WHERE c.within)",
    "breached": "COUNT(*) FILTER (WHERE c.breached)",
    "waiting": "COUNT(*) FILTER (WHERE c.waiting)",
}
_COUNT_NAMES = tuple(_COUNTS)
_RESPONSE_COUNTS = ", ".join(_COUNTS.values())


def _judged(scope: Scope) -> QuerySet:
    """The cohort as narrow rows: channel, priority, assignee, how long the first response
    took (NULL while there is none) and what each counts as."""
    answered_late = Q(first_response_at__gt=F("first_response_due_at"))
    overdue = waiting() & Q(first_response_due_at__lte=timezone.now())
    return cohort(scope).values(
        "channel",
        "priority",
        "assignee_id",
        took=ExpressionWrapper(
            F("first_response_at") - F("received_at"), output_field=DurationField()
        ),
        within=ExpressionWrapper(
            Q(first_response_at__lte=F("first_response_due_at")), output_field=BooleanField()
        ),
        breached=ExpressionWrapper(answered_late | overdue, output_field=BooleanField()),
        waiting=ExpressionWrapper(waiting(), output_field=BooleanField()),
    )


def _response_rows(scope: Scope) -> list[tuple[str, object, dict]]:
    """(grouping, key, figures) for every group of the cohort that has conversations.

    Usernames are joined to the few groups, not to the cohort's rows."""
    judged_sql, params = _judged(scope).query.sql_with_params()
    users = connection.ops.quote_name(get_user_model()._meta.db_table)
    if _is_postgresql():
        # One pass over the cohort into its finest groups (channel × priority × person: a
        # hundred or so rows), each with its counts and the durations of its answered
        # conversations as an array; the grouping sets then add up those few rows, and each
        # group's percentiles sort only its own durations (unnested from the finest groups
        # it covers). A GROUP BY GROUPING SETS with percentile_cont over the cohort itself
        # sorted every row of the cohort once per grouping set, spilling to disk at 80,000
        # rows: 170 ms where this takes 70 to 100 (bench/dashboard.py, 30 days). The
        # percentiles are still percentile_cont's over the same intervals: the same figures.
        # (COALESCE: with no conversation at all, the overall group still has its zeros.)
        sums = ", ".join(f"COALESCE(SUM(f.{name}), 0)::bigint" for name in _COUNT_NAMES)
        counts = ", ".join(f"{count} AS {name}" for name, count in _COUNTS.items())
        sql = f"""
            WITH f AS MATERIALIZED (
                SELECT c.channel, c.priority, c.assignee_id, {counts},
                       array_agg(c.took) FILTER (WHERE c.took IS NOT NULL) AS took
                FROM ({judged_sql}) AS c
                GROUP BY c.channel, c.priority, c.assignee_id
            )
            SELECT g.*, u.username, (
                SELECT percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY t.took)
                FROM f, unnest(f.took) AS t(took)
                WHERE (g.no_channel = 1 OR f.channel = g.channel)
                  AND (g.no_priority = 1 OR f.priority = g.priority)
                  AND (g.no_person = 1 OR f.assignee_id IS NOT DISTINCT FROM g.assignee_id)
            ) FROM (
                SELECT GROUPING(f.channel) AS no_channel, GROUPING(f.priority) AS no_priority,
                       GROUPING(f.assignee_id) AS no_person,
                       f.channel, f.priority, f.assignee_id, {sums}
                FROM f
                GROUP BY GROUPING SETS ((), (f.channel), (f.priority), (f.assignee_id))
            ) AS g LEFT JOIN {users} u ON u.id = g.assignee_id
        """  # noqa: S608 - SQL fragments are constants; values are parameters
        rows = []
        for row in _fetch(sql, list(params)):
            no_channel, no_priority, no_person, channel, priority, _person = row[:6]
            values = dict(zip(_COUNT_NAMES, row[6:11], strict=True))
            # Both percentiles from one sort; NULL (not an array of NULLs) when none answered.
            values["median"], values["p90"] = (_seconds(value) for value in row[12] or (None, None))
            if not no_channel:
                rows.append((BY_CHANNEL, channel, values))
            elif not no_priority:
                rows.append((BY_PRIORITY, priority, values))
            elif not no_person:
                rows.append((BY_PERSON, row[11], values))
            else:
                rows.append((OVERALL, "", values))
        return rows
    # SQLite: the finest groups, each with its durations (Django's `took` is microseconds
    # there); Python adds them up.
    sql = f"""
        SELECT c.channel, c.priority, u.username, {_RESPONSE_COUNTS},
               group_concat(c.took / 1000000.0)
        FROM ({judged_sql}) AS c LEFT JOIN {users} u ON u.id = c.assignee_id
        GROUP BY c.channel, c.priority, c.assignee_id
    """  # noqa: S608 - SQL fragments are constants; values are parameters
    groups: dict[tuple[str, object], dict] = {}
    for channel, priority, username, *counts, text in _fetch(sql, list(params)):
        for key in ((OVERALL, ""), (BY_CHANNEL, channel), (BY_PRIORITY, priority)) + (
            (BY_PERSON, username or ""),
        ):
            group = groups.setdefault(key, dict.fromkeys(_COUNT_NAMES, 0) | {"durations": []})
            for name, count in zip(_COUNT_NAMES, counts, strict=True):
                group[name] += count
            group["durations"].extend(_durations(text))
    rows = []
    for (grouping, key), values in groups.items():
        durations = values.pop("durations")
        values["median"], values["p90"] = percentile(durations, 0.5), percentile(durations, 0.9)
        rows.append((grouping, key, values))
    return rows


# The figures job's snapshots ------------------------------------------------------------------


def snapshot_record(scope: Scope) -> dict:
    """What a FiguresSnapshot keeps of `scope`, computed now: the funnel and the groups of
    first responses (without the waiting list, which the page always reads now)."""
    computed = funnel(scope)
    return {
        "funnel": {
            "steps": [asdict(step) for step in computed.steps],
            "restarts": computed.restarts,
            "restart_reasons": [list(pair) for pair in computed.restart_reasons],
        },
        "responses": [list(row) for row in _response_rows(scope)],
    }


@dataclass(frozen=True)
class KeptFigures:
    """The figures job's latest FiguresSnapshot of a scope: what snapshot_record computed."""

    funnel: dict
    responses: list
    taken_at: datetime


def kept_figures(scope: Scope) -> KeptFigures | None:
    """The latest FiguresSnapshot of the scope when the job keeps the scope and it is at
    most SNAPSHOT_AGE old, for `funnel` and `responsiveness`; else None. One query (none
    for a scope the job does not keep)."""
    if not scope.snapshotted:
        return None
    row = (
        FiguresSnapshot.objects.filter(
            period=scope.period, taken_at__gte=timezone.now() - SNAPSHOT_AGE
        )
        .order_by("-taken_at", "-pk")
        .values_list("funnel", "responses", "taken_at")
        .first()
    )
    return KeptFigures(*row) if row is not None else None


# Workload -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonLoad:
    username: str  # "" = unassigned
    by_stage: dict[str, int]  # stage → open (not closed) conversations; every stage present
    total: int


@dataclass(frozen=True)
class BacklogPoint:
    taken_at: datetime
    open: int
    unassigned: int


@dataclass(frozen=True)
class Workload:
    people: list[PersonLoad]  # busiest first; the unassigned row last
    backlog: list[BacklogPoint]  # BacklogSnapshot rows in [start, end), at most BACKLOG_POINTS
    # When the people's counts were taken, when they come from the minute's
    # WorkloadSnapshot; None when they were counted now.
    as_of: datetime | None = None


BACKLOG_POINTS = 200
# How old the latest WorkloadSnapshot may be for workload(snapshot=True) to show it: the SLA
# job takes one a minute, so this tolerates one late or slow run; older, the page counts.
SNAPSHOT_AGE = timedelta(minutes=2)


def workload(scope: Scope, *, snapshot: bool = False) -> Workload:
    """Who carries what now, and the unassigned backlog over the period. Two queries (three
    when `snapshot` finds none to use).

    - **people**: the conversations not closed (open or snoozed) now, whenever received,
      per assignee and stage; the channel filter applies, the period does not. Busiest
      first, then by username; the unassigned row last. With a person chosen: that
      person's row only (with zeros when they have none), and no unassigned row.
    - **backlog**: the BacklogSnapshot rows taken in [start, end), oldest first. When there
      are more than BACKLOG_POINTS the database keeps every k-th, counting back from the
      latest (always kept), k = ⌈rows / BACKLOG_POINTS⌉.

    With `snapshot`, the people's counts are those of the latest WorkloadSnapshot when it is
    at most SNAPSHOT_AGE old (`as_of` says when it was taken), else counted now (`as_of` is
    None). Counting means reading every conversation not closed — nearly all of a million,
    100 ms and more however narrow the index (bench/dashboard.py) — while the snapshot is
    one small row. The page, which says "as of", asks for it; the API and the CSV exports
    count, exact to the moment.
    """
    loads, as_of = None, None
    if snapshot:
        latest = (
            WorkloadSnapshot.objects.filter(taken_at__gte=timezone.now() - SNAPSHOT_AGE)
            .order_by("-taken_at", "-pk")
            .values_list("taken_at", "counts")
            .first()
        )
        if latest is not None:
            loads = _snapshot_loads(latest[1], scope)
            as_of = latest[0] if loads is not None else None
    if loads is None:
        loads = _counted_loads(scope)
    people = sorted(
        (PersonLoad(name, by_stage, sum(by_stage.values())) for name, by_stage in loads.items()),
        key=lambda load: (load.username == "", -load.total, load.username),
    )
    return Workload(people=people, backlog=_backlog(scope), as_of=as_of)


def _counted_loads(scope: Scope) -> dict[str, dict[str, int]]:
    """{username or "": {stage: conversations}} of the scope, counted now. One query."""
    conversations = Conversation.objects.exclude(state=State.CLOSED)
    if scope.channel:
        conversations = conversations.filter(channel=scope.channel)
    if scope.assignee_id is not None:
        conversations = conversations.filter(assignee_id=scope.assignee_id)
    # Grouped on the conversations' own columns (the index conv_open_load), then joined to
    # the few people: joining a million rows to their assignee first would cost more.
    grouped_sql, params = (
        conversations.values("assignee_id", "stage")
        .annotate(conversations=Count("*"))
        .order_by()
        .query.sql_with_params()
    )
    users = connection.ops.quote_name(get_user_model()._meta.db_table)
    if scope.assignee_id is None:
        sql = f"""
            SELECT u.username, g.stage, g.conversations
            FROM ({grouped_sql}) AS g LEFT JOIN {users} u ON u.id = g.assignee_id
        """  # noqa: S608 - SQL fragments are constants; values are parameters
    else:
        # From the person, so that their row is there even with nothing open.
        sql = f"""
            SELECT u.username, g.stage, g.conversations
            FROM {users} u LEFT JOIN ({grouped_sql}) AS g ON g.assignee_id = u.id
            WHERE u.id = %s
        """  # noqa: S608 - SQL fragments are constants; values are parameters
        params = (*params, scope.assignee_id)
    loads: dict[str, dict[str, int]] = {}
    for username, stage, count in _fetch(sql, list(params)):
        by_stage = loads.setdefault(username or "", dict.fromkeys(Stage.values, 0))
        if stage is not None:
            by_stage[stage] = count
    return loads


def open_counts() -> list[list]:
    """The conversations not closed now, per assignee, stage and channel, as a
    WorkloadSnapshot stores them: [assignee id or None, username or "", stage, channel,
    conversations]. One query (the index conv_open_load holds exactly these columns)."""
    grouped_sql, params = (
        Conversation.objects.exclude(state=State.CLOSED)
        .values("assignee_id", "stage", "channel")
        .annotate(conversations=Count("*"))
        .order_by()
        .query.sql_with_params()
    )
    users = connection.ops.quote_name(get_user_model()._meta.db_table)
    sql = f"""
        SELECT g.assignee_id, u.username, g.stage, g.channel, g.conversations
        FROM ({grouped_sql}) AS g LEFT JOIN {users} u ON u.id = g.assignee_id
    """  # noqa: S608 - SQL fragments are constants; values are parameters
    return [
        [assignee_id, username or "", stage, channel, count]
        for assignee_id, username, stage, channel, count in _fetch(sql, list(params))
    ]


def _snapshot_loads(counts: list[list], scope: Scope) -> dict[str, dict[str, int]] | None:
    """What _counted_loads gives, from a snapshot's counts; None for a person the snapshot
    has no conversation of (counting theirs finds their username, through the index that
    leads with the assignee)."""
    loads: dict[str, dict[str, int]] = {}
    for assignee_id, username, stage, channel, count in counts:
        if scope.channel and channel != scope.channel:
            continue
        if scope.assignee_id is not None and assignee_id != scope.assignee_id:
            continue
        by_stage = loads.setdefault(username or "", dict.fromkeys(Stage.values, 0))
        by_stage[stage] = by_stage.get(stage, 0) + count
    if scope.assignee_id is not None and not loads:
        return None
    return loads


def _backlog(scope: Scope) -> list[BacklogPoint]:
    snapshots = BacklogSnapshot.objects.filter(taken_at__gte=scope.start, taken_at__lt=scope.end)
    rows = (
        snapshots.annotate(
            from_latest=Window(RowNumber(), order_by=F("taken_at").desc()),
            taken=Window(Count("pk")),
        )
        .annotate(
            # The k of the docstring, and each row's distance in rows from the latest.
            offset=Mod(
                F("from_latest") - 1,
                (F("taken") + (BACKLOG_POINTS - 1)) / BACKLOG_POINTS,
                output_field=IntegerField(),
            )
        )
        .filter(offset=0)
        .order_by("taken_at")
        .values_list("taken_at", "open", "unassigned")
    )
    return [BacklogPoint(taken_at, open_, unassigned) for taken_at, open_, unassigned in rows]


# Feedback -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketDemand:
    ticket_id: int
    title: str
    status: str
    demand: int  # distinct contacts linked
    told: int  # distinct contacts told (FeedbackLink.told_at)


@dataclass(frozen=True)
class FeedbackFigures:
    opened: int  # tickets created in the period
    shipped: int  # tickets whose status changed to shipped in the period
    declined: int  # tickets whose status changed to declined in the period
    top: list[TicketDemand]  # the TOP_TICKETS most demanded, demand desc
    told_after_ship: int  # people told, over the tickets shipped in the period
    to_tell_after_ship: int  # people still to tell, over the same tickets


TOP_TICKETS = 10


def feedback_figures(scope: Scope) -> FeedbackFigures:
    """What the conversations turned into. Two queries.

    The tickets counted are those not merged into another (a merged ticket is a signpost to
    the kept one, as on the board) and, when a channel is chosen, with evidence from a
    conversation of that channel (as the board's channel filter). The person filter does
    not apply: tickets are the product team's, not a community manager's.

    - **opened**: created in [start, end).
    - **shipped / declined**: a TICKET_STATUS_CHANGED Event to that status in [start, end)
      (a ticket counts once however often it moved there).
    - **top**: the most demanded with evidence (from the channel, when chosen), in the
      board's order (demand = distinct people linked, from any channel; told = distinct
      people told), whatever their status and age.
    - **told / to tell after ship**: over the tickets shipped in the period, each person
      once per ticket: those with a link marked told, and those without.
    """
    tickets = FeedbackTicket.objects.filter(merged_into__isnull=True)
    if scope.channel:
        evidence = FeedbackLink.objects.filter(
            ticket=OuterRef("pk"), conversation__channel=scope.channel
        )
        with_evidence = tickets.filter(Exists(evidence))
        # For the counts, the same condition as a scalar subquery, which PostgreSQL checks
        # ticket by ticket after the cheaper conditions (the period's tickets: 2,000 at a
        # million conversations, 40 ms), where it turns an EXISTS into a join with every link
        # of the channel's conversations (a scan of them all: 200–300 ms).
        tickets = tickets.alias(
            some_evidence=Subquery(evidence.order_by().values("pk")[:1])
        ).filter(some_evidence__isnull=False)
    else:
        # The stored count (kept with the links): no link to look up.
        with_evidence = tickets.filter(evidence_count__gt=0)

    def moved_to(status: str) -> Q:
        # Driven from the period's few status changes (the partial index event_ticket_moves),
        # not probed ticket by ticket.
        moves = Event.objects.filter(
            kind=EventKind.TICKET_STATUS_CHANGED,
            data__to=status,
            created_at__gte=scope.start,
            created_at__lt=scope.end,
        )
        return Q(pk__in=moves.values("ticket_id"))

    # Demand and "told" are the counts stored on each ticket (FeedbackTicket.COUNTS): the
    # whole ticket's, from any channel.
    opened = Q(created_at__gte=scope.start, created_at__lt=scope.end)
    shipped = moved_to(TicketStatus.SHIPPED)
    declined = moved_to(TicketStatus.DECLINED)
    # Every count below is of tickets opened, shipped or declined in the period: only those
    # are read (and, with a channel, looked up for evidence).
    counts = tickets.filter(opened | shipped | declined).aggregate(
        opened=Count("pk", filter=opened),
        shipped=Count("pk", filter=shipped),
        declined=Count("pk", filter=declined),
        people=Coalesce(Sum("demand", filter=shipped), Value(0)),
        told=Coalesce(Sum("told_people", filter=shipped), Value(0)),
    )
    top = with_evidence.values("pk", "title", "status", "demand", "told_people").order_by(
        *TICKET_RANK
    )[:TOP_TICKETS]
    return FeedbackFigures(
        opened=counts["opened"],
        shipped=counts["shipped"],
        declined=counts["declined"],
        top=[
            TicketDemand(row["pk"], row["title"], row["status"], row["demand"], row["told_people"])
            for row in top
        ],
        told_after_ship=counts["told"],
        to_tell_after_ship=counts["people"] - counts["told"],
    )
