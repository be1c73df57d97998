"""Every read path: pre-joined querysets, keyset pages and aggregates run by the database."""

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import OperationalError, connection, transaction
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    prefetch_related_objects,
)
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from engage import workflow
from engage.choices import Direction, EventKind, Priority, Sentiment, Stage, State, TicketStatus
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
    if filters.state:
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
    if filters.state != State.CLOSED:
        segments.append((0, waiting()))
    if not filters.overdue:
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


def queue_page(
    filters: QueueFilter, *, user, cursor: str | None = None, limit: int | None = None
) -> Page:
    """A page of the queue: its rows (one query per segment reached), then their tags."""
    limit = limit or settings.ENGAGE_PAGE_SIZE
    page = keyset_page(
        queue_matches(filters, user=user).select_related("source", "contact", "assignee"),
        sort=filters.sort,
        cursor=cursor,
        limit=limit,
        filters=filters,
    )
    prefetch_related_objects(page.items, "tags")
    return page


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


def stage_counts(filters: QueueFilter, *, user, cap: int | None = None) -> list[StageCount]:
    """How many conversations the filter (without its own stage) finds in each stage, and in
    all: counted up to `cap`, past which the count says "cap+". One query (on PostgreSQL,
    with its statement timeout: two).

    Each count reads at most cap + 1 matching rows (a LIMIT inside the count), so a filter
    matching a million rows costs no more than one matching a thousand.
    """
    cap = cap or settings.ENGAGE_STAGE_COUNT_CAP
    matches = queue_matches(replace(filters, stage=None), user=user)
    parts = [("", str(_("All stages")), matches)] + [
        (stage.value, str(stage.label), matches.filter(stage=stage)) for stage in Stage
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


def tickets() -> QuerySet[FeedbackTicket]:
    """Tickets with demand (distinct people who asked) and how many of them were told."""
    return FeedbackTicket.objects.select_related("owner").annotate(
        demand=Count("links__conversation__contact", distinct=True),
        evidence_count=Count("links", distinct=True),
        told_count=Count("links", filter=Q(links__told_at__isnull=False), distinct=True),
    )


def ticket_list(
    *, status: str | None = None, product_area: str | None = None, q: str = ""
) -> QuerySet:
    queryset = tickets()
    if status:
        if status not in TicketStatus.values:
            raise InvalidInput(
                _("“%(value)s” is not a ticket status.") % {"value": status}, field="status"
            )
        queryset = queryset.filter(status=status)
    if product_area:
        queryset = queryset.filter(product_area=product_area)
    if q.strip():
        queryset = queryset.filter(Q(title__icontains=q.strip()) | Q(problem__icontains=q.strip()))
    return queryset.order_by("-demand", "-created_at", "-id")


def ticket_detail(ticket_id: int) -> FeedbackTicket:
    return (
        tickets()
        .prefetch_related(
            Prefetch(
                "links",
                queryset=FeedbackLink.objects.select_related(
                    "conversation__contact", "conversation__source", "created_by"
                ),
            ),
            Prefetch("events", queryset=Event.objects.select_related("actor")),
        )
        .get(pk=ticket_id)
    )


def tickets_for_linking(*, limit: int = 100) -> list[FeedbackTicket]:
    """Open tickets offered in a conversation's "link to a ticket" form."""
    return list(
        FeedbackTicket.objects.exclude(status__in=[TicketStatus.DECLINED])
        .order_by("-created_at")
        .only("id", "title", "status")[:limit]
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
