"""Every read path: pre-joined querysets, keyset pages and aggregates run by the database."""

import base64
import binascii
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import OperationalError, connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
    Window,
    prefetch_related_objects,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower, RowNumber, StrIndex
from django.db.models.lookups import GreaterThan
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from engage import workflow
from engage.choices import (
    Channel,
    Direction,
    EventKind,
    Priority,
    Sentiment,
    SlaState,
    Stage,
    State,
    TicketStatus,
)
from engage.errors import InvalidInput
from engage.models import (
    Conversation,
    Event,
    FeedbackLink,
    FeedbackTicket,
    Message,
    Note,
    Notification,
    Presence,
    Tag,
)
from engage.services.tags import clean_tag_names


@dataclass
class QueueFilter:
    """What the queue shows. Every field narrows it; empty fields leave it alone."""

    stage: str | None = None
    state: str | None = None
    assignee: str | None = None  # a username, "me" or "none"
    channel: str | None = None
    priority: str | None = None
    language: str | None = None
    sentiment: str | None = None
    tag: str | None = None
    overdue: bool = False
    follow_up: bool | None = None
    q: str = ""
    sort: str = "due"
    errors: dict[str, str] = field(default_factory=dict)
    # Received in [received_from, received_to): the dashboard's period, as aware datetimes.
    received_from: datetime | None = None
    received_to: datetime | None = None
    # A stage the conversation has reached in any cycle (listen: every conversation).
    reached: str | None = None
    answered: bool | None = None  # has a first response (or not yet)
    sla: str | None = None  # where a waiting one stands against its target: SlaState


@dataclass
class Page:
    items: list
    next_cursor: str | None


def conversations() -> QuerySet[Conversation]:
    """Conversations with what a list row shows, joined in one query."""
    return Conversation.objects.select_related("source", "contact", "assignee").prefetch_related(
        "tags"
    )


def _text_search(queryset: QuerySet, q: str) -> QuerySet:
    if connection.vendor == "postgresql":
        # Matches the GIN index on to_tsvector('simple', text) (migration 0003).
        return queryset.alias(search=SearchVector("text", config="simple")).filter(
            search=SearchQuery(q, config="simple", search_type="websearch")
        )
    return queryset.filter(text__icontains=q)


_PLAIN_WORD = re.compile(r"[A-Za-z0-9]+")


def required_words(q: str) -> list[str]:
    """Words that every match of the search `q` contains as they are written, lowercased.

    A walk through the queue's order tests each row it passes against the search, and
    to_tsvector of each text is most of its cost (8 ms for a word in 6% of a million
    conversations). Testing first that the lowercased text contains the words is twenty
    times cheaper and lets to_tsvector run on the rows that pass. Only where that is
    certainly a necessary condition: the search is plain (websearch_to_tsquery's "or", "-"
    and quotes make some words optional or excluded: then none is required), and the word is
    plain ASCII letters and digits (which the 'simple' configuration keeps as they are,
    lowercased, as lower() does)."""
    if '"' in q or "-" in q:
        return []
    tokens = q.split()
    if any(token.lower() == "or" for token in tokens):
        return []
    return sorted({token.lower() for token in tokens if _PLAIN_WORD.fullmatch(token)})


def _containing(queryset: QuerySet, q: str) -> QuerySet:
    """`queryset` (already searched for `q`) with the cheap test of required_words first:
    the planner orders a row's conditions by cost, so to_tsvector runs only on rows that
    pass it. The same rows match."""
    if connection.vendor != "postgresql":
        return queryset
    for word in required_words(q):
        queryset = queryset.filter(GreaterThan(StrIndex(Lower("text"), Value(word)), 0))
    return queryset


# A state filter of its own: open or snoozed, what the dashboard's workload counts.
NOT_CLOSED = "not_closed"


def waiting() -> Q:
    """Not answered yet and not closed: the condition of the partial index conv_unanswered."""
    return Q(first_response_at__isnull=True) & ~Q(state=State.CLOSED)


def filter_conversations(queryset: QuerySet, filters: QueueFilter, *, user) -> QuerySet:
    if filters.stage:
        if filters.stage not in Stage.values:
            raise InvalidInput(
                _("“%(value)s” is not a stage.") % {"value": filters.stage}, field="stage"
            )
        queryset = queryset.filter(stage=filters.stage)
    if filters.state == NOT_CLOSED:
        queryset = queryset.exclude(state=State.CLOSED)
    elif filters.state:
        if filters.state not in State.values:
            raise InvalidInput(
                _("“%(value)s” is not a state.") % {"value": filters.state}, field="state"
            )
        queryset = queryset.filter(state=filters.state)
    if filters.assignee:
        if filters.assignee == "none":
            queryset = queryset.filter(assignee__isnull=True)
        elif filters.assignee == "me":
            queryset = queryset.filter(assignee=user)
        else:
            queryset = queryset.filter(assignee__username=filters.assignee)
    if filters.channel:
        queryset = queryset.filter(channel=filters.channel)
    if filters.priority:
        try:
            queryset = queryset.filter(priority=Priority.from_key(filters.priority))
        except KeyError:
            raise InvalidInput(
                _("“%(value)s” is not a priority.") % {"value": filters.priority}, field="priority"
            ) from None
    if filters.language:
        language = filters.language.strip().lower()
        if len(language) > Conversation._meta.get_field("language").max_length:
            raise InvalidInput(
                _("“%(value)s” is not a language code.") % {"value": filters.language[:20]},
                field="language",
            )
        queryset = queryset.filter(language=language)
    if filters.sentiment:
        if filters.sentiment not in Sentiment.values:
            raise InvalidInput(
                _("“%(value)s” is not a sentiment.") % {"value": filters.sentiment},
                field="sentiment",
            )
        queryset = queryset.filter(sentiment=filters.sentiment)
    if filters.tag:
        try:
            names = clean_tag_names([filters.tag])
        except InvalidInput as error:
            raise InvalidInput(error.message, field="tag") from None
        if names:
            # Tag names are unique, so this join yields each conversation at most once.
            queryset = queryset.filter(tags__name=names[0])
    if filters.overdue:
        # Served by the partial index conv_unanswered, whose condition this repeats.
        queryset = queryset.filter(waiting(), first_response_due_at__lt=timezone.now())
    if filters.follow_up is not None:
        queryset = queryset.filter(needs_follow_up=filters.follow_up)
    if filters.q.strip():
        queryset = _text_search(queryset, filters.q.strip())
    return _filter_dashboard_figures(queryset, filters)


# The filters behind the dashboard's figures: each figure links to the queue of the
# conversations it counts.
SLA_FILTERS = (SlaState.AT_RISK, SlaState.BREACHED)


def reached_stage(stage: str) -> Q:
    """Conversations that have reached `stage` in any cycle, as the dashboard's funnel counts
    them (the record Conversation.enter_stage keeps). Every conversation starts in listen,
    so all have reached it."""
    if stage == Stage.LISTEN:
        return Q()
    return Q(**{f"{stage}_reached_at__isnull": False})


def _filter_dashboard_figures(queryset: QuerySet, filters: QueueFilter) -> QuerySet:
    if filters.received_from is not None:
        queryset = queryset.filter(received_at__gte=filters.received_from)
    if filters.received_to is not None:
        queryset = queryset.filter(received_at__lt=filters.received_to)
    if filters.reached:
        if filters.reached not in Stage.values:
            raise InvalidInput(
                _("“%(value)s” is not a stage.") % {"value": filters.reached}, field="reached"
            )
        queryset = queryset.filter(reached_stage(filters.reached))
    if filters.answered:
        queryset = queryset.filter(first_response_at__isnull=False)
    elif filters.answered is False:
        # Not answered yet means still waiting: a conversation closed without an answer
        # waits for nothing (and waiting() is what the partial index conv_unanswered serves).
        queryset = queryset.filter(waiting())
    if filters.sla:
        if filters.sla not in SLA_FILTERS:
            raise InvalidInput(
                _("“%(value)s” is not a first-response target state: use %(choices)s.")
                % {"value": filters.sla, "choices": ", ".join(SLA_FILTERS)},
                field="sla",
            )
        queryset = queryset.filter(sla_state=filters.sla)
    return queryset


def queue_matches(filters: QueueFilter, *, user) -> QuerySet[Conversation]:
    """The conversations the queue lists for `filters`.

    A merged conversation is closed and points to the one it was merged into: it shows only
    among the closed ones, never in the working queue.
    """
    queryset = filter_conversations(Conversation.objects.all(), filters, user=user)
    if not filters.state:
        # Open and snoozed ones are never merged (a check constraint), so only "any state"
        # needs this. Written as a condition on the closed rows, not as "merged_into IS
        # NULL", so that the planner never walks the merged_into index for it.
        queryset = queryset.exclude(state=State.CLOSED, merged_into__isnull=False)
    return queryset


# Sorts ---------------------------------------------------------------------------------------
#
# A sort is a list of segments walked one after the other; inside each, rows are ordered by
# (column, id) in one direction, which an index on (column, id) serves (conv_due,
# conv_unanswered, conv_received). A page takes at most `limit + 1` rows from each segment
# still ahead of the cursor and keeps the first `limit + 1` of their union: the database never
# sorts more than a few pages' worth of rows, on page 1 as on page 1,000. The cursor holds
# every order column: (segment, column value, id).
#
# - due (default, triage): first the conversations still waiting for an answer (not answered,
#   not closed), most overdue first; then the answered or closed ones, by the same due time.
#   An answered conversation's due time is history, so it must not push a waiting one down.
# - priority: urgent, high, normal, low; within each priority, by due time.
# - newest / oldest: by the time the conversation was received.


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool
    # The segments a filter leaves, as (segment number, condition), in order.
    segments: Callable[[QueueFilter], list[tuple[int, Q]]]
    # The segment a row belongs to (the same rule as the conditions, in Python).
    segment_of: Callable[[Conversation], int]

    @property
    def order(self) -> list[str]:
        if self.descending:
            return [f"-{self.column}", "-id"]
        return [self.column, "id"]


def _due_segments(filters: QueueFilter) -> list[tuple[int, Q]]:
    # Segments a filter makes empty are left out: the planner would otherwise walk a
    # whole index looking for rows that cannot match.
    segments = []
    if filters.state != State.CLOSED and filters.answered is not True:
        segments.append((0, waiting()))
    if not filters.overdue and filters.answered is not False:
        segments.append((1, Q(first_response_at__isnull=False) | Q(state=State.CLOSED)))
    return segments


def _due_segment_of(conversation: Conversation) -> int:
    return 0 if conversation.first_response_at is None and conversation.state != State.CLOSED else 1


PRIORITY_ORDER = (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW)


def _priority_segments(filters: QueueFilter) -> list[tuple[int, Q]]:
    chosen = Priority.from_key(filters.priority) if filters.priority else None
    return [
        (index, Q(priority=priority))
        for index, priority in enumerate(PRIORITY_ORDER)
        if chosen in (None, priority)
    ]


def _one_segment(filters: QueueFilter) -> list[tuple[int, Q]]:
    return [(0, Q())]


SORTS: dict[str, Sort] = {
    "due": Sort("first_response_due_at", False, _due_segments, _due_segment_of),
    "newest": Sort("received_at", True, _one_segment, lambda conversation: 0),
    "oldest": Sort("received_at", False, _one_segment, lambda conversation: 0),
    "priority": Sort(
        "first_response_due_at",
        False,
        _priority_segments,
        lambda conversation: PRIORITY_ORDER.index(conversation.priority),
    ),
}


def _sort(name: str) -> Sort:
    try:
        return SORTS[name]
    except KeyError:
        raise InvalidInput(
            _("Unknown sort “%(sort)s”: use %(choices)s.")
            % {"sort": name, "choices": ", ".join(SORTS)},
            field="sort",
        ) from None


@dataclass(frozen=True)
class Cursor:
    segment: int
    value: datetime
    pk: int


def encode_cursor(segment: int, value: datetime, pk: int) -> str:
    raw = json.dumps([segment, value.isoformat(), pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Bounds for values read back from a cursor, which a client can forge: anything the
# database cannot compare with its columns is refused before it reaches SQL.
MAX_ID = 2**63 - 1
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_SEGMENTS = 16


def decode_cursor(cursor: str, sort: str) -> Cursor:
    """Return the position a cursor made by encode_cursor names, or raise InvalidInput."""
    _sort(sort)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        segment, value, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(pk, int) or isinstance(pk, bool) or not 0 < pk <= MAX_ID:
            raise ValueError
        if not isinstance(segment, int) or isinstance(segment, bool):
            raise ValueError
        if not 0 <= segment < MAX_SEGMENTS:
            raise ValueError
        value = parse_datetime(value)
        if value is None or timezone.is_naive(value) or not EARLIEST <= value <= LATEST:
            raise ValueError
        return Cursor(segment, value, pk)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            _("This cursor is not valid: start again from the first page."), field="cursor"
        ) from None


def _after(sort: Sort, cursor: Cursor) -> RawSQL:
    """Rows after the cursor in (column, id) order, as one row-value comparison: the
    database walks the (column, id) index from that point."""
    table = Conversation._meta.db_table
    # RawSQL bypasses field adaptation: SQLite stores naive UTC text, so compare with the
    # same representation (PostgreSQL gets a timestamptz either way).
    value = connection.ops.adapt_datetimefield_value(cursor.value)
    op = "<" if sort.descending else ">"
    return RawSQL(  # noqa: S611 - table, column and operator are constants; values are parameters
        f'("{table}"."{sort.column}", "{table}"."id") {op} (%s, %s)',
        (value, cursor.pk),
        output_field=BooleanField(),
    )


def keyset_page(
    queryset: QuerySet,
    *,
    sort: str,
    cursor: str | None,
    limit: int,
    filters: QueueFilter | None = None,
) -> Page:
    """One page after `cursor` in the order of `sort`: constant cost on any page.

    `filters` lets a sort leave out the segments they make empty. Segments are read one
    after the other and only while the page is not full, so a page costs one query, and one
    more for each segment boundary it reaches across (at most one per segment).
    """
    spec = _sort(sort)
    start = decode_cursor(cursor, sort) if cursor else None
    items: list = []
    for index, condition in spec.segments(filters or QueueFilter()):
        if start is not None and index < start.segment:
            continue
        part = queryset.filter(condition)
        if start is not None and index == start.segment:
            part = part.filter(_after(spec, start))
        # A later segment is often empty for the filter (unassigned ones are rarely
        # answered), and proving it empty walks its whole index: it is read only once
        # the earlier segments are exhausted, never on the pages before.
        items += part.order_by(*spec.order)[: limit + 1 - len(items)]
        if len(items) > limit:
            break
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(spec.segment_of(last), getattr(last, spec.column), last.pk)
    return Page(items=items, next_cursor=next_cursor)


# A text search that matches few conversations is answered from the full-text index.
RARE_MATCHES = 500
# One the planner expects to match this many or more is walked without asking the index.
COMMON_MATCHES = 20 * RARE_MATCHES


def _few_matches_first(matches: QuerySet, q: str) -> QuerySet:
    """The page query walks an index in the sort's order and keeps the rows that match,
    which is fast when many match; for a word found in a handful of conversations it would
    read the whole table (10 s at a million). So first ask the full-text index, unordered,
    for up to RARE_MATCHES + 1 matches: when that is all there is, the page reads those rows
    by id and sorts them, every page of them; otherwise the walk is fast and stays as it is.

    That probe costs little for a rare word but builds the whole bitmap of a common one (19
    ms for a word in 60,000 conversations), only to walk anyway. So a search the planner
    expects to match COMMON_MATCHES or more (its statistics of the full-text index: 0.3 ms
    to ask) is walked at once. The margin is wide because a rare word taken for a common
    one would be walked through the whole table; a common one taken for rare costs the
    probe, as before."""
    if _estimated_rows(matches) >= COMMON_MATCHES:
        return _containing(matches, q)
    found = list(matches.order_by().values_list("pk", flat=True)[: RARE_MATCHES + 1])
    if len(found) <= RARE_MATCHES:
        return matches.filter(pk__in=found)
    return _containing(matches, q)


def _estimated_rows(queryset: QuerySet) -> float:
    """The planner's estimate of the rows `queryset` finds (PostgreSQL's EXPLAIN, nothing run)."""
    plan = json.loads(queryset.order_by().values("pk").explain(format="json"))
    return plan[0]["Plan"]["Plan Rows"]


def _page_matches(filters: QueueFilter, *, user) -> QuerySet[Conversation]:
    matches = queue_matches(filters, user=user)
    if filters.q.strip() and connection.vendor == "postgresql":
        matches = _few_matches_first(matches, filters.q)
    return matches


def queue_page(
    filters: QueueFilter, *, user, cursor: str | None = None, limit: int | None = None
) -> Page:
    """A page of the queue as Conversations (the API's): its rows (one query per segment
    reached), then their tags."""
    page = keyset_page(
        _page_matches(filters, user=user).select_related("source", "contact", "assignee"),
        sort=filters.sort,
        cursor=cursor,
        limit=limit or settings.ENGAGE_PAGE_SIZE,
        filters=filters,
    )
    prefetch_related_objects(page.items, "tags")
    return page


# What a row of the queue page shows (engage.templatetags.queue_rows).
ROW_FIELDS = (
    *("pk", "channel", "text", "language", "sentiment", "priority", "stage", "cycle", "state"),
    *("snoozed_until", "needs_follow_up", "received_at", "first_response_due_at"),
    *("first_response_at", "sla_state", "merged_into_id", "contact__handle", "contact__name"),
    *("assignee__username", "assignee__first_name", "assignee__last_name"),
)


@dataclass
class RowsPage(Page):
    tags: dict[int, list[str]]  # conversation id → its tag names, by name


def queue_rows(
    filters: QueueFilter, *, user, cursor: str | None = None, limit: int | None = None
) -> RowsPage:
    """A page of the queue as the page shows it: rows of ROW_FIELDS (named tuples, the
    same order and cursors as queue_page) and their tags. Building 150 model instances a
    page (conversation, contact, assignee) and prefetching tags into them cost more than
    the queries. On PostgreSQL each row carries its tag names (an array subquery, run for
    the rows returned only); elsewhere they are read in one more query."""
    matches = _page_matches(filters, user=user)
    with_tags = connection.vendor == "postgresql"
    fields = ROW_FIELDS
    if with_tags:
        tag_names = Conversation.tags.through.objects.filter(conversation_id=OuterRef("pk"))
        matches = matches.annotate(
            tag_names=ArraySubquery(tag_names.order_by("tag__name").values("tag__name"))
        )
        fields = (*ROW_FIELDS, "tag_names")
    page = keyset_page(
        matches.values_list(*fields, named=True),
        sort=filters.sort,
        cursor=cursor,
        limit=limit or settings.ENGAGE_PAGE_SIZE,
        filters=filters,
    )
    tags: dict[int, list[str]] = {}
    if with_tags:
        tags = {row.pk: row.tag_names for row in page.items if row.tag_names}
    elif page.items:
        links = Conversation.tags.through.objects.filter(
            conversation_id__in=[row.pk for row in page.items]
        )
        for pk, name in links.order_by("tag__name").values_list("conversation_id", "tag__name"):
            tags.setdefault(pk, []).append(name)
    return RowsPage(items=page.items, next_cursor=page.next_cursor, tags=tags)


# A capped count stops at cap + 1 matching rows, but a stage that holds (almost) none of
# them makes it read everything. Two guards keep the page fast whatever the filter:
# - where an index serves the filter (overdue: conv_stage_unanswered; an assignee among the
#   open ones: conv_claimable, conv_assignee_due; snoozed or closed: conv_not_open), counting
#   in that index's order makes the planner walk it, and an empty stage costs nothing.
#   Elsewhere the planner's own choice (mostly a scan that stops at the LIMIT) is faster.
# - on PostgreSQL the counts run under a statement timeout; past it the page shows no counts.
COUNT_ORDER = ("stage", "first_response_due_at", "id")


def _count_order(filters: QueueFilter) -> tuple[str, ...]:
    if filters.overdue or (filters.assignee and filters.state == State.OPEN):
        return COUNT_ORDER
    if filters.state == State.OPEN and not (filters.q or filters.channel or filters.sentiment):
        # The open ones by stage: walked in conv_stage_due, an empty stage costs nothing.
        # A scan would be as fast only while each stage's rows were spread evenly through
        # the table; updates move rows to its end (400 ms at a million).
        return COUNT_ORDER
    if filters.state in (State.SNOOZED, State.CLOSED):
        # The few conversations that are not open: walked in their own (state, due, id) index.
        return ("state", "first_response_due_at", "id")
    return ()


@dataclass(frozen=True)
class StageCount:
    stage: str  # "" for every stage
    label: str
    count: int | None  # None: not counted in time
    capped: bool  # there are more than `count`


def _fetch_counts(sql: str, params: list) -> tuple | None:
    if connection.vendor != "postgresql":
        with connection.cursor() as db:
            db.execute(sql, params)
            return db.fetchone()
    timeout = int(settings.ENGAGE_STAGE_COUNT_TIMEOUT_MS)
    try:
        with transaction.atomic(), connection.cursor() as db:
            db.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout)])
            db.execute(sql, params)
            counts = db.fetchone()
            # Rolled back, so the timeout never outlives the count (a SET LOCAL would last
            # until the end of an enclosing transaction).
            transaction.set_rollback(True)
            return counts
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == QUERY_CANCELED:
            return None
        raise


QUERY_CANCELED = "57014"


def stage_tabs() -> list[StageCount]:
    """The stage tabs without their counts (no query): what the queue page shows at once;
    the counts follow in their own request (views.queue.queue_counts)."""
    return [StageCount("", str(_("All stages")), None, False)] + [
        StageCount(stage.value, str(stage.label), None, False) for stage in Stage
    ]


def stage_counts(filters: QueueFilter, *, user, cap: int | None = None) -> list[StageCount]:
    """How many conversations the filter (without its own stage) finds in each stage, and in
    all: counted up to `cap`, past which the count says "cap+". One query (on PostgreSQL,
    with its statement timeout: two).

    Each count reads at most cap + 1 matching rows (a LIMIT inside the count), so a filter
    matching a million rows costs no more than one matching a thousand.
    """
    cap = cap or settings.ENGAGE_STAGE_COUNT_CAP
    matches = queue_matches(replace(filters, stage=None), user=user)
    if filters.q.strip():
        matches = _containing(matches, filters.q)
    parts = [
        (tab.stage, tab.label, matches.filter(stage=tab.stage) if tab.stage else matches)
        for tab in stage_tabs()
    ]
    selects, params = [], []
    for index, (_stage, _label, queryset) in enumerate(parts):
        limited = queryset.order_by(*_count_order(filters)).values("id")[: cap + 1]
        sql, part_params = limited.query.sql_with_params()
        selects.append(f"(SELECT COUNT(*) FROM ({sql}) AS counted_{index})")  # noqa: S608
        params.extend(part_params)
    counts = _fetch_counts("SELECT " + ", ".join(selects), params)
    if counts is None:
        return [StageCount(stage, label, None, False) for stage, label, _queryset in parts]
    return [
        StageCount(stage, label, min(count, cap), count > cap)
        for (stage, label, _queryset), count in zip(parts, counts, strict=True)
    ]


def saved_views(user) -> list:
    """The person's saved queue views, by name."""
    from engage.models import SavedView

    return list(SavedView.objects.filter(user=user).order_by("name", "id"))


def conversation_detail(conversation_id: int) -> Conversation:
    """One conversation with its thread, notes, history and evidence, in a fixed number of queries."""
    return (
        conversations()
        .prefetch_related(
            Prefetch("messages", queryset=Message.objects.select_related("author_user")),
            Prefetch("notes", queryset=Note.objects.select_related("author")),
            Prefetch("events", queryset=Event.objects.select_related("actor")),
            Prefetch("feedback_links", queryset=FeedbackLink.objects.select_related("ticket")),
        )
        .annotate(
            reply_in_cycle=Exists(
                Message.objects.filter(
                    conversation=OuterRef("pk"),
                    direction=Direction.OUTBOUND,
                    cycle=OuterRef("cycle"),
                )
            ),
            reaction_in_cycle=Exists(
                FeedbackLink.objects.filter(conversation=OuterRef("pk"), cycle=OuterRef("cycle"))
            )
            | Exists(
                Event.objects.filter(
                    conversation=OuterRef("pk"),
                    cycle=OuterRef("cycle"),
                    kind=EventKind.NO_CHANGE_RECORDED,
                )
            ),
        )
        .get(pk=conversation_id)
    )


def detail_facts(conversation: Conversation) -> workflow.CycleFacts:
    """The cycle's facts of a conversation read by conversation_detail (no more queries)."""
    return workflow.CycleFacts(
        stage=conversation.stage,
        state=conversation.state,
        version=conversation.version,
        has_assignee=conversation.assignee_id is not None,
        has_reply_in_cycle=conversation.reply_in_cycle,
        has_reaction_in_cycle=conversation.reaction_in_cycle,
    )


def contact_conversations(conversation: Conversation, *, limit: int = 20) -> list[Conversation]:
    """The person's other conversations, newest first: the relationship across channels."""
    return list(
        Conversation.objects.filter(contact_id=conversation.contact_id)
        .exclude(pk=conversation.pk)
        .select_related("source")
        .order_by("-received_at")[:limit]
    )


# Feedback tickets ---------------------------------------------------------------------------
#
# Demand, evidence and "told" counts are stored on the ticket (FeedbackTicket.COUNTS), kept
# by the services that change its links (services.feedback): a list of tickets reads them
# like any column, whatever the number of links, and ranks by them through the ticket_rank
# indexes. Aggregating the links instead took seconds per board at 200,000 links.

# The counts a ticket carries.
TICKET_COUNTS = FeedbackTicket.COUNTS


def tickets() -> QuerySet[FeedbackTicket]:
    """Tickets with what a card shows: demand (distinct people who asked), evidence count,
    how many links and how many people were told, and when the latest evidence arrived."""
    return FeedbackTicket.objects.select_related("owner")


# Most people first, then the most recently asked for, then the newest ticket. The order of
# the ticket_rank indexes, column for column. Tickets without evidence (no latest evidence)
# come last without NULLS LAST (which SQLite refuses in an index): they are exactly those
# with no demand, and among them the newest comes first.
TICKET_RANK = (
    F("demand").desc(),
    F("latest_evidence_at").desc(),
    F("id").desc(),
)


@dataclass
class TicketFilter:
    """What the board, the CSV export and the API list show. Empty fields leave it alone.

    `channel` and `language` keep the tickets with at least one piece of evidence from a
    conversation on that channel / in that language; demand stays the ticket's whole demand.
    """

    status: str | None = None
    product_area: str | None = None
    channel: str | None = None
    language: str | None = None
    q: str = ""


def filter_tickets(queryset: QuerySet, filters: TicketFilter) -> QuerySet:
    """Apply `filters`; merged tickets (signposts to the kept one) are always left out."""
    queryset = queryset.filter(merged_into__isnull=True)
    if filters.status:
        if filters.status not in TicketStatus.values:
            raise InvalidInput(
                _("“%(value)s” is not a ticket status.") % {"value": filters.status},
                field="status",
            )
        queryset = queryset.filter(status=filters.status)
    if filters.product_area:
        queryset = queryset.filter(product_area=filters.product_area.strip())
    evidence = FeedbackLink.objects.filter(ticket=OuterRef("pk"))
    if filters.channel:
        if filters.channel not in Channel.values:
            raise InvalidInput(
                _("“%(value)s” is not a channel.") % {"value": filters.channel}, field="channel"
            )
        evidence = evidence.filter(conversation__channel=filters.channel)
    if filters.language:
        language = filters.language.strip().lower()
        if len(language) > Conversation._meta.get_field("language").max_length:
            raise InvalidInput(
                _("“%(value)s” is not a language code.") % {"value": filters.language[:20]},
                field="language",
            )
        evidence = evidence.filter(conversation__language=language)
    if filters.channel or filters.language:
        # A condition, not a join: joining would narrow the links that demand counts.
        queryset = queryset.filter(Exists(evidence))
    # Every word, in the title or the problem. A scan of 20,000 short rows costs a few ms;
    # no index is needed at that scale.
    for word in filters.q.split()[:10]:
        queryset = queryset.filter(Q(title__icontains=word) | Q(problem__icontains=word))
    return queryset


def ranked_tickets(filters: TicketFilter) -> QuerySet:
    """The tickets matching `filters` as narrow rows (pk, status and TICKET_COUNTS), in
    TICKET_RANK order; with_tickets() reads the tickets of the rows kept.

    The order is that of the ticket_rank indexes (ticket_rank_status within a status): the
    database walks one and stops at the rows asked for.
    """
    matches = filter_tickets(FeedbackTicket.objects.all(), filters)
    return matches.values("pk", "status", *TICKET_COUNTS).order_by(*TICKET_RANK)


def with_tickets(rows) -> list[FeedbackTicket]:
    """The tickets of `rows` (from ranked_tickets), in their order, carrying every value of
    their row (the counts, a rank...), with their owner. One query."""
    rows = list(rows)
    found = FeedbackTicket.objects.select_related("owner").in_bulk([row["pk"] for row in rows])
    result = []
    for row in rows:
        ticket = found.get(row["pk"])
        if ticket is not None:  # tickets are never deleted, but a row may outlive one
            for name, value in row.items():
                if name != "pk":
                    setattr(ticket, name, value)
            result.append(ticket)
    return result


def ticket_list(
    *,
    status: str | None = None,
    product_area: str | None = None,
    q: str = "",
    channel: str | None = None,
    language: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> list[FeedbackTicket]:
    """Tickets matching the filters, most demanded first (TICKET_RANK), `limit` after
    `offset`. Merged ones never. Two queries."""
    filters = TicketFilter(
        status=status, product_area=product_area, channel=channel, language=language, q=q
    )
    return with_tickets(ranked_tickets(filters)[offset : offset + limit])


@dataclass
class BoardColumn:
    status: str
    label: str
    tickets: list
    total: int  # tickets of this status matching the filters
    offset: int

    @property
    def more(self) -> int:
        """How many tickets of this status come after the ones shown."""
        return max(self.total - self.offset - len(self.tickets), 0)


def board(filters: TicketFilter, *, limit: int, offset: int = 0) -> list[BoardColumn]:
    """The board: for each status (or the one filtered), its tickets ranked by TICKET_RANK,
    the `limit` after `offset`, and how many match in all. Two queries.

    A window numbers the tickets within each status and counts them, so the database returns
    only the rows shown, whatever the number that match. It reads only the columns of the
    ticket_rank_status index (status and TICKET_RANK's), so unfiltered it walks that index
    alone; with_tickets then reads the tickets shown, their stored counts with them.
    """
    # filter_tickets refuses an unknown status first.
    matches = filter_tickets(FeedbackTicket.objects.all(), filters).values("pk", "status")
    statuses = [TicketStatus(filters.status)] if filters.status else list(TicketStatus)
    rows = (
        matches.annotate(
            rank=Window(RowNumber(), partition_by=F("status"), order_by=TICKET_RANK),
            in_status=Window(Count("pk"), partition_by=F("status")),
        )
        .filter(rank__gt=offset, rank__lte=offset + limit)
        .order_by("status", "rank")
    )
    columns = {
        status.value: BoardColumn(status.value, str(status.label), [], 0, offset)
        for status in statuses
    }
    for ticket in with_tickets(rows):
        column = columns[ticket.status]
        column.tickets.append(ticket)
        column.total = ticket.in_status
    return list(columns.values())


def ticket_export(filters: TicketFilter, *, chunk: int = 1000) -> Iterator[dict]:
    """Every ticket the filters match, for the CSV: by status (board order), then rank. Each
    is a dict: its ranked row (pk, status, TICKET_COUNTS) with title, product_area, owner
    (a username or None), created_at and status_changed_at.

    The ranked rows stream from a server-side cursor and the rest is read `chunk` tickets at
    a time, as plain values: 20,000 tickets are never all in memory. Invalid filters raise
    at once, not when the iterator is read.
    """
    status_order = Case(
        *(When(status=status, then=Value(index)) for index, status in enumerate(TicketStatus)),
        output_field=IntegerField(),
    )
    rows = ranked_tickets(filters).order_by(status_order, *TICKET_RANK)
    fields = ("pk", "title", "product_area", "owner__username", "created_at", "status_changed_at")

    def read() -> Iterator[dict]:
        for batch in itertools.batched(rows.iterator(chunk_size=chunk), chunk):
            details = {
                values["pk"]: values
                for values in FeedbackTicket.objects.filter(
                    pk__in=[row["pk"] for row in batch]
                ).values(*fields)
            }
            for row in batch:
                if row["pk"] in details:
                    found = details[row["pk"]]
                    yield {**row, **found, "owner": found["owner__username"]}

    return read()


def ticket_detail(ticket_id: int) -> FeedbackTicket:
    """One ticket with its evidence (newest first, with each person and conversation), its
    history and the tickets merged into it, in a fixed number of queries."""
    return (
        tickets()
        .prefetch_related(
            Prefetch(
                "links",
                queryset=FeedbackLink.objects.select_related(
                    "conversation__contact",
                    "conversation__source",
                    "conversation__assignee",
                    "created_by",
                ).order_by("-created_at", "-id"),
            ),
            Prefetch("events", queryset=Event.objects.select_related("actor")),
            Prefetch(
                "merged_from",
                queryset=FeedbackTicket.objects.only("id", "title", "merged_into").order_by("id"),
            ),
        )
        .get(pk=ticket_id)
    )


def product_areas(*, limit: int = 200) -> list[str]:
    """The product areas of the tickets on the board, offered by its filter."""
    return list(
        FeedbackTicket.objects.filter(merged_into__isnull=True)
        .exclude(product_area="")
        .order_by("product_area")
        .values_list("product_area", flat=True)
        .distinct()[:limit]
    )


def ticket_owners() -> list:
    """The people who may own a ticket (engage.permissions): the product team and staff."""
    from django.contrib.auth import get_user_model

    from engage.choices import Role

    return list(
        get_user_model()
        .objects.filter(
            Q(groups__name=Role.PRODUCT_TEAM) | Q(is_staff=True) | Q(is_superuser=True),
            is_active=True,
        )
        .order_by("username")
        .distinct()
    )


def community_managers() -> list:
    """Active community managers, by username: the people a conversation can be given to."""
    from django.contrib.auth import get_user_model

    from engage.choices import Role

    return list(
        get_user_model()
        .objects.filter(is_active=True, groups__name=Role.COMMUNITY_MANAGER)
        .order_by("username")
        .distinct()
    )


def tag_suggestions(*, limit: int = 300) -> list[str]:
    """Existing tag names offered while typing a tag."""
    return list(Tag.objects.order_by("name").values_list("name", flat=True)[:limit])


# The conversation page refreshes its presence every 15 s; unseen for longer means gone.
PRESENCE_FRESH_FOR = timedelta(seconds=45)


def present_users(conversation_id: int, *, exclude_user) -> list:
    """Who else has this conversation open right now."""
    return [
        presence.user
        for presence in Presence.objects.filter(
            conversation_id=conversation_id, seen_at__gte=timezone.now() - PRESENCE_FRESH_FOR
        )
        .exclude(user=exclude_user)
        .select_related("user")
        .order_by("user__username")
    ]


def unread_notifications(user, *, limit: int = 5) -> list:
    """The newest unread notifications of `user`, for the banner every page shows."""
    if not user.is_authenticated:
        return []
    return list(
        Notification.objects.filter(user=user, read_at__isnull=True).order_by("-created_at", "-id")[
            :limit
        ]
    )


@dataclass(frozen=True)
class VersionSeen:
    version: int
    changed_by: str | None


def conversation_version(conversation_id: int) -> VersionSeen | None:
    """The current version of a conversation and who made the latest change (one query)."""
    latest_actor = (
        Event.objects.filter(conversation_id=OuterRef("pk"))
        .order_by("-created_at", "-id")
        .values("actor__username")[:1]
    )
    row = (
        Conversation.objects.filter(pk=conversation_id)
        .annotate(changed_by=Subquery(latest_actor))
        .values_list("version", "changed_by")
        .first()
    )
    return VersionSeen(*row) if row else None


# Saved replies ------------------------------------------------------------------------------
# (Imports are local: this block was appended while others edited the top of the module.)


def _saved_replies():
    from django.db.models.functions import Lower

    from engage.models import SavedReply

    return SavedReply.objects.order_by(Lower("title"), "id")


def saved_replies_for(language: str) -> list:
    """Every saved reply, for a conversation in `language`: those in that language first,
    then those for any language, then the others (by language); by title within each.

    `language` may be a tag such as "it-IT" or empty (not detected): only its primary
    subtag counts, and an empty one puts the "any language" replies first.
    """
    from django.db.models import Case, Value, When
    from django.db.models.functions import Lower

    primary = (language or "").split("-")[0].strip().lower()
    rank = Case(
        When(language=primary, then=Value(0)),
        When(language="", then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return list(
        _saved_replies().alias(rank=rank).order_by("rank", "language", Lower("title"), "id")
    )


def saved_reply_groups() -> list[dict]:
    """The /saved-replies/ page: replies grouped by language in the order of ReplyLanguage
    ("any language" first), empty groups left out. One query, whatever the number."""
    from engage.choices import ReplyLanguage

    groups: dict[str, list] = {value: [] for value in ReplyLanguage.values}
    for reply in _saved_replies().select_related("created_by"):
        groups.setdefault(reply.language, []).append(reply)
    return [
        {"language": value, "label": label, "replies": groups[value]}
        for value, label in ReplyLanguage.choices
        if groups[value]
    ]


# Reacting from a conversation: ticket search, similar tickets, what to tell the person ------
# (Imports are local: this block was appended while others edited the top of the module.)

# Words that say nothing about a need, in English and Italian: left out of the similarity.
_STOP_WORDS = """
    about after again all also and any are because been before being but can cannot could did
    does doing don each even ever for from get gets got had has have having hello her here hers
    him his how into its just let like more most much must myself not now off once only other
    our ours out over own please same she should some still such than thank thanks that the
    their them then there these they this those through too under until very was way we were
    what when where which while who whom why will with would yes yet you your yours
    anche ancora che chi come con cosa dal dalla dei del della delle dello per gli grazie hanno
    loro molto nei nel nella nelle non per perché però più poi quale quando quello questa questo
    sono sul sulla tra tutti tutto una uno vostro ciao buongiorno salve
    """
STOP_WORDS = frozenset(_STOP_WORDS.split())
# A word counts from its first letters: "reminders" and "reminder" meet at "remind", and
# "descaling" and "descale" at "descal". Cheap, language-blind, and the same on both databases.
WORD_KEY_LENGTH = 6
# How many words of the conversation the similarity uses.
SIMILAR_MAX_WORDS = 30
# On SQLite, the most recent tickets compared word by word (PostgreSQL ranks them all).
SIMILAR_CANDIDATES = 500
# A declined ticket is still suggested this long after it was declined; after that a new
# request deserves a new ticket. Shipped ones are always suggested: linking to one asks the
# community manager to tell the person that it exists.
SUGGEST_DECLINED_WITHIN = timedelta(days=180)


def significant_words(text: str, *, limit: int = SIMILAR_MAX_WORDS) -> list[str]:
    """The words of `text` that may name a need, as match keys: lower case, at least three
    letters, no stop words and no numbers, cut to WORD_KEY_LENGTH letters, each once, in the
    order they first appear."""
    import re

    keys: list[str] = []
    for word in re.findall(r"[^\W_]+", text.lower()):
        if len(word) < 3 or word in STOP_WORDS or word.isdigit():
            continue
        key = word[:WORD_KEY_LENGTH]
        if key not in keys:
            keys.append(key)
            if len(keys) == limit:
                break
    return keys


def _suggestable_tickets(conversation: Conversation) -> QuerySet[FeedbackTicket]:
    """Tickets a conversation may be linked to instead of opening a new one: not merged (a
    merged ticket points to the kept one), not declined long ago, not already linked to it."""
    recently = timezone.now() - SUGGEST_DECLINED_WITHIN
    return (
        tickets()
        .filter(merged_into__isnull=True)
        .filter(~Q(status=TicketStatus.DECLINED) | Q(status_changed_at__gte=recently))
        .filter(
            ~Exists(FeedbackLink.objects.filter(ticket=OuterRef("pk"), conversation=conversation))
        )
    )


def similar_tickets(conversation: Conversation, limit: int = 5) -> list[FeedbackTicket]:
    """The tickets most like the conversation's text, best first, so that a community manager
    links evidence to an existing ticket rather than opening a duplicate. Each carries
    `demand` like tickets(). One query; none when the text has no significant word.

    On PostgreSQL: full-text match of the conversation's words (an OR of prefixes) against
    the ticket's title and problem, ranked by ts_rank with the title weighing more. On
    SQLite: the same words compared in Python with the SIMILAR_CANDIDATES newest tickets.
    """
    words = significant_words(conversation.text)
    if not words:
        return []
    candidates = _suggestable_tickets(conversation)
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchRank
        from django.db.models import F

        document = SearchVector("title", weight="A", config="simple") + SearchVector(
            "problem", weight="B", config="simple"
        )
        # Keys are letters and digits only (see significant_words): safe in a raw tsquery.
        query = SearchQuery(
            " | ".join(f"{word}:*" for word in words), config="simple", search_type="raw"
        )
        return list(
            candidates.alias(document=document)
            .filter(document=query)
            .annotate(rank=SearchRank(F("document"), query))
            .order_by("-rank", "-demand", "-pk")[:limit]
        )
    scored = []
    for ticket in candidates.order_by("-created_at", "-pk")[:SIMILAR_CANDIDATES]:
        score = _word_overlap(words, ticket)
        if score:
            ticket.rank = score
            scored.append(ticket)
    scored.sort(key=lambda ticket: (-ticket.rank, -ticket.demand, -ticket.pk))
    return scored[:limit]


def _word_overlap(words: list[str], ticket: FeedbackTicket) -> float:
    """ts_rank's idea in Python: each word found counts, more in the title than the problem
    (PostgreSQL's default weights for A and B)."""
    import re

    title = re.findall(r"[^\W_]+", ticket.title.lower())
    problem = re.findall(r"[^\W_]+", ticket.problem.lower())
    score = 0.0
    for key in words:
        if any(word.startswith(key) for word in title):
            score += 1.0
        elif any(word.startswith(key) for word in problem):
            score += 0.4
    return score


def ticket_search(q: str, *, limit: int = 20) -> list[FeedbackTicket]:
    """Tickets to link evidence to: every word of `q` in the title or the problem (or `q` is
    the ticket's number, "#12" or "12"). Open ones first, then by demand; merged ones are
    left out. Each carries `demand` like tickets(). One query; none for a blank `q`."""
    from django.db.models import Case, Value, When

    from engage.choices import CLOSED_TICKET_STATUSES

    words = q.split()[:10]
    if not words:
        return []
    matches = Q()
    for word in words:
        matches &= Q(title__icontains=word) | Q(problem__icontains=word)
    number = q.strip().removeprefix("#")
    if number.isdigit() and int(number) <= MAX_ID:
        matches |= Q(pk=int(number))
    closed_last = Case(
        When(status__in=CLOSED_TICKET_STATUSES, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
    return list(
        tickets()
        .filter(merged_into__isnull=True)
        .filter(matches)
        .alias(closed_last=closed_last)
        .order_by("closed_last", "-demand", "-created_at", "-pk")[:limit]
    )


@dataclass(frozen=True)
class FollowUpNews:
    """A ticket the person of a conversation must be told about, and what the product team
    wants them told (the note of the status change, may be empty)."""

    ticket: FeedbackTicket
    note: str


def follow_up_news(conversation: Conversation) -> list[FollowUpNews]:
    """What to tell the person of a conversation waiting for a follow-up: each shipped or
    declined ticket they have not been told about yet (what logging the reply marks told),
    with the product team's note from the latest follow-up Event for that ticket.

    Reads what conversation_detail prefetched: no more queries.
    """
    from engage.choices import CLOSED_TICKET_STATUSES

    if not conversation.needs_follow_up:
        return []
    notes: dict = {}
    for event in conversation.events.all():  # oldest first: the latest note wins
        if event.kind == EventKind.FOLLOW_UP_FLAGGED and isinstance(event.data, dict):
            notes[event.data.get("ticket")] = str(event.data.get("note") or "")
    return [
        FollowUpNews(link.ticket, notes.get(link.ticket_id, ""))
        for link in conversation.feedback_links.all()
        if link.told_at is None and link.ticket.status in CLOSED_TICKET_STATUSES
    ]
