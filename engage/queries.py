"""Every read path: pre-joined querysets, keyset pages and aggregates run by the database."""

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import BooleanField, Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from engage import workflow
from engage.choices import Direction, EventKind, Priority, Stage, State, TicketStatus
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

# Sort name → (column, descending). The keyset is always (column, id) in the same direction.
SORTS: dict[str, tuple[str, bool]] = {
    "due": ("first_response_due_at", False),
    "newest": ("received_at", True),
    "oldest": ("received_at", False),
    "priority": ("priority", True),
}


@dataclass
class QueueFilter:
    stage: str | None = None
    state: str | None = None
    assignee: str | None = None  # a username, "me" or "none"
    channel: str | None = None
    priority: str | None = None
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
    if filters.follow_up is not None:
        queryset = queryset.filter(needs_follow_up=filters.follow_up)
    if filters.q.strip():
        queryset = _text_search(queryset, filters.q.strip())
    return queryset


def encode_cursor(value, pk: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Bounds for values read back from a cursor, which a client can forge: anything the
# database cannot compare with its columns is refused before it reaches SQL.
MAX_ID = 2**63 - 1
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def decode_cursor(cursor: str, sort: str):
    """Return (value, id) from a cursor made by encode_cursor, or raise InvalidInput."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(pk, int) or not 0 < pk <= MAX_ID:
            raise ValueError
        if SORTS[sort][0] == "priority":
            if not isinstance(value, int) or not 0 <= value <= MAX_ID:
                raise ValueError
        else:
            value = parse_datetime(value)
            if value is None or timezone.is_naive(value) or not EARLIEST <= value <= LATEST:
                raise ValueError
        return value, pk
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            _("This cursor is not valid: start again from the first page."), field="cursor"
        ) from None


def keyset_page(queryset: QuerySet, *, sort: str, cursor: str | None, limit: int) -> Page:
    """One page after `cursor`, ordered by (sort column, id): constant cost on any page."""
    if sort not in SORTS:
        raise InvalidInput(
            _("Unknown sort “%(sort)s”: use %(choices)s.")
            % {"sort": sort, "choices": ", ".join(SORTS)},
            field="sort",
        )
    column, descending = SORTS[sort]
    table = Conversation._meta.db_table
    if cursor:
        value, pk = decode_cursor(cursor, sort)
        if isinstance(value, datetime):
            # RawSQL bypasses field adaptation: SQLite stores naive UTC text, so compare
            # with the same representation (PostgreSQL gets a timestamptz either way).
            value = connection.ops.adapt_datetimefield_value(value)
        op = "<" if descending else ">"
        # A row-value comparison lets the database walk the (column, id) index directly.
        queryset = queryset.filter(
            RawSQL(  # noqa: S611 - table, column and operator are constants; values are parameters
                f'("{table}"."{column}", "{table}"."id") {op} (%s, %s)',
                (value, pk),
                output_field=BooleanField(),
            )
        )
    order = [f"-{column}", "-id"] if descending else [column, "id"]
    rows = list(queryset.order_by(*order)[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, column), last.pk)
    return Page(items=rows, next_cursor=next_cursor)


def queue_page(
    filters: QueueFilter, *, user, cursor: str | None = None, limit: int | None = None
) -> Page:
    limit = limit or settings.ENGAGE_PAGE_SIZE
    queryset = filter_conversations(conversations(), filters, user=user)
    return keyset_page(queryset, sort=filters.sort, cursor=cursor, limit=limit)


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
    from django.db.models import Case, IntegerField, Value, When
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
