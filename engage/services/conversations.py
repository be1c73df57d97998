"""Writes on conversations: create, assign, claim, advance, restart, reply, note, reaction."""

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from engage import history, markup, permissions, workflow
from engage.choices import (
    CLOSED_TICKET_STATUSES,
    Channel,
    Direction,
    EventKind,
    Priority,
    Role,
    Stage,
    State,
)
from engage.errors import Conflict, InvalidInput, TransitionNotAllowed
from engage.items import CHANNELS, PRIORITY_KEYS, IncomingItem
from engage.models import (
    Conversation,
    Event,
    FeedbackLink,
    Message,
    Note,
    Notification,
)
from engage.services import retry_on_deadlock
from engage.services.targets import first_response_due

User = get_user_model()


@dataclass(frozen=True)
class Author:
    handle: str
    name: str = ""
    url: str = ""


@dataclass(frozen=True)
class Item:
    """The item shape shared by the API, imports and feeds (see the README's API section)."""

    source: str
    external_id: str
    channel: str
    author: Author
    text: str
    url: str = ""
    created_at: datetime | None = None
    priority: str = "normal"
    extra: dict = field(default_factory=dict)


def _validate_item(item: Item) -> None:
    if item.channel not in CHANNELS:
        raise InvalidInput(
            _("Unknown channel “%(channel)s”: use one of %(choices)s.")
            % {"channel": item.channel, "choices": ", ".join(Channel.values)},
            field="channel",
        )
    if item.priority not in PRIORITY_KEYS:
        raise InvalidInput(
            _("Unknown priority “%(priority)s”: use low, normal, high or urgent.")
            % {"priority": item.priority},
            field="priority",
        )
    for name, value in (
        ("source", item.source),
        ("external_id", item.external_id),
        ("author.handle", item.author.handle),
        ("text", item.text),
    ):
        if not value or not str(value).strip():
            raise InvalidInput(_("This field is required and may not be blank."), field=name)
    for name, value in (("url", item.url), ("author.url", item.author.url)):
        _check_url(value, field=name)


def _check_url(value: str, *, field: str) -> None:
    """Addresses are stored only when they are absolute http(s) ones, as every way in checks
    them (engage.items): the pages link to them."""
    if value and not markup.external_url(value):
        raise InvalidInput(
            _("Expected an http(s) address, got “%(v)s”.") % {"v": value[:80]}, field=field
        )


def create_conversation(item: Item, *, actor=None) -> tuple[Conversation, bool]:
    """Store a conversation and its opening message, once per (source, external id).

    Returns (conversation, created). The same path as every other way in
    (engage.services.ingest): a known (source, external id), or the same person's same
    text again within minutes, returns the stored conversation unchanged, even when two
    callers race. Enrichment (language, sentiment, priority, routing) is queued.
    """
    # Imported here: the ingest service builds on this module (cycle_facts, locks).
    from engage.services.ingest import CREATED, ERROR, ingest

    permissions.require_work(actor)
    _validate_item(item)
    incoming = IncomingItem(
        source=item.source.strip(),
        external_id=item.external_id,
        channel=item.channel,
        author_handle=item.author.handle,
        author_name=item.author.name,
        author_url=item.author.url,
        text=item.text,
        url=item.url,
        created_at=item.created_at,
        priority=item.priority,
    )
    outcome = ingest([incoming], actor=actor)[0]
    if outcome.status == ERROR:
        raise InvalidInput(outcome.errors[0].message, field=outcome.errors[0].field)
    return Conversation.objects.get(pk=outcome.conversation), outcome.status == CREATED


def lock_conversation(conversation_id: int) -> Conversation:
    """Lock the conversation's row for this transaction; InvalidInput if it does not exist."""
    try:
        return Conversation.objects.select_for_update().get(pk=conversation_id)
    except Conversation.DoesNotExist:
        raise InvalidInput(
            _("Conversation %(id)s does not exist.") % {"id": conversation_id}, field="conversation"
        ) from None


def _bump(conversation: Conversation, *fields: str) -> None:
    conversation.version += 1
    conversation.save(update_fields=[*fields, "version", "updated_at"])


def cycle_facts(conversation: Conversation) -> workflow.CycleFacts:
    """What the cycle's guards need, read from the database for the current cycle."""
    cycle = conversation.cycle
    return workflow.CycleFacts(
        stage=conversation.stage,
        state=conversation.state,
        version=conversation.version,
        has_assignee=conversation.assignee_id is not None,
        has_reply_in_cycle=conversation.messages.filter(
            direction=Direction.OUTBOUND, cycle=cycle
        ).exists(),
        has_reaction_in_cycle=(
            conversation.feedback_links.filter(cycle=cycle).exists()
            or conversation.events.filter(cycle=cycle, kind=EventKind.NO_CHANGE_RECORDED).exists()
        ),
    )


@transaction.atomic
def advance(
    conversation_id: int, *, actor, to: str | None = None, expected_version: int | None = None
) -> Conversation:
    """Move the conversation exactly one step on.

    Raises TransitionNotAllowed (a skipped step, a step back, an unmet guard),
    VersionConflict (the caller saw an older version), PermissionDenied.
    """
    permissions.require_work(actor)
    conversation = lock_conversation(conversation_id)
    target = workflow.check_advance(
        cycle_facts(conversation), to=to, expected_version=expected_version
    )
    previous = conversation.stage
    _bump(conversation, *conversation.enter_stage(target, timezone.now()))
    history.stage_change(conversation, previous, actor=actor)
    return conversation


@transaction.atomic
def restart(
    conversation_id: int, *, actor, reason: str, expected_version: int | None = None
) -> Conversation:
    """Go back to listen from any stage, starting the next cycle. A reason is required."""
    permissions.require_work(actor)
    conversation = lock_conversation(conversation_id)
    workflow.check_restart(
        cycle_facts(conversation), reason=reason, expected_version=expected_version
    )
    previous = conversation.stage
    changed = conversation.enter_stage(Stage.LISTEN, timezone.now())
    conversation.cycle += 1
    _bump(conversation, *changed, "cycle")
    history.stage_change(conversation, previous, actor=actor, reason=reason.strip())
    return conversation


def _check_assignable(user) -> None:
    if not permissions.can_work(user):
        raise InvalidInput(
            _("%(user)s cannot be assigned: only community managers work conversations.")
            % {"user": user.get_username()},
            field="assignee",
        )


@transaction.atomic
def assign(
    conversation_id: int, assignee, *, actor, expected_version: int | None = None
) -> Conversation:
    """Give the conversation to `assignee`, or to nobody with None. Same person: no change."""
    permissions.require_work(actor)
    if assignee is not None:
        _check_assignable(assignee)
    conversation = lock_conversation(conversation_id)
    workflow.check_version(conversation.version, expected_version)
    if conversation.assignee_id == (assignee.pk if assignee else None):
        return conversation
    previous = conversation.assignee
    conversation.assignee = assignee
    _bump(conversation, "assignee")
    data = {
        "from": previous.get_username() if previous else None,
        "to": assignee.get_username() if assignee else None,
    }
    kind = EventKind.ASSIGNED if assignee else EventKind.UNASSIGNED
    history.record(kind, conversation=conversation, actor=actor, data=data)
    return conversation


@functools.cache
def _claim_statement(stage: str | None, recorded: str) -> tuple[str, tuple[str, ...]]:
    """The claim as one PostgreSQL statement, and the model attributes of the row it returns:
    lock the oldest-due candidate nobody else holds (SKIP LOCKED), assign it, record the
    ASSIGNED Event (`recorded`, which reads the CTE `taken`) and read the conversation back."""
    table = connection.ops.quote_name(Conversation._meta.db_table)
    fields = Conversation._meta.concrete_fields
    returned = ", ".join(f"{table}.{connection.ops.quote_name(f.column)}" for f in fields)
    # The candidate's conditions are those of the partial indexes conv_claimable(_any).
    in_stage = "AND stage = %s " if stage is not None else ""
    sql = (
        "WITH picked AS ("  # noqa: S608 - table and column names come from the model
        f"SELECT id FROM {table} WHERE assignee_id IS NULL AND state = %s {in_stage}"
        "ORDER BY first_response_due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED), "
        f"taken AS (UPDATE {table} SET assignee_id = %s, version = version + 1, "
        f"updated_at = %s FROM picked WHERE {table}.id = picked.id "
        f"AND {table}.assignee_id IS NULL RETURNING {returned}), "
        f"recorded AS ({recorded}) SELECT * FROM taken"
    )
    return sql, tuple(f.attname for f in fields)


def _take_returning(actor, stage: str | None) -> Conversation | None:
    """PostgreSQL: the claim in one statement, so one round trip and, outside a transaction,
    no BEGIN and COMMIT of its own (a claimer's hot path: sixteen at once on two cores)."""
    now = timezone.now()
    recorded, event_params = history.insert_for_each(
        "taken",
        EventKind.ASSIGNED,
        actor=actor,
        data={"from": None, "to": actor.get_username(), "claimed": True},
        at=now,
    )
    sql, attnames = _claim_statement(stage, recorded)
    params = [State.OPEN, *([stage] if stage is not None else []), actor.pk, now, *event_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return Conversation.from_db(connection.alias, attnames, row)


def _take(oldest_due: QuerySet, actor) -> Conversation | None:
    """Elsewhere (SQLite, no row locks): a compare-and-set on `assignee IS NULL`; None when
    another claimer took the row first (or nothing is left: the caller tells which)."""
    conversation = oldest_due.first()
    if conversation is None:
        return None
    taken = Conversation.objects.filter(pk=conversation.pk, assignee__isnull=True).update(
        assignee=actor, version=F("version") + 1, updated_at=timezone.now()
    )
    if not taken:
        return None
    conversation.refresh_from_db()
    return conversation


def claim_next(*, actor, stage: str | None = None) -> Conversation | None:
    """Give the caller the oldest-due unassigned open conversation (of `stage`, if given).

    On PostgreSQL one statement locks the candidate row with SKIP LOCKED (so concurrent
    claimers pass over each other's rows instead of waiting or colliding), assigns it,
    records the Event and reads it back: one transaction even when no caller opened one.
    Elsewhere the assignment is a compare-and-set on `assignee IS NULL`, which keeps SQLite
    (no row locks) safe. Returns None when nothing is left.
    """
    permissions.require_work(actor)
    _check_assignable(actor)
    if stage is not None and stage not in Stage.values:
        raise InvalidInput(_("“%(stage)s” is not a stage.") % {"stage": stage}, field="stage")
    if connection.vendor == "postgresql":
        # Locked rows are skipped, never fought over: None means none is left.
        return _take_returning(actor, stage)
    candidates = Conversation.objects.filter(assignee__isnull=True, state=State.OPEN)
    if stage is not None:
        candidates = candidates.filter(stage=stage)
    oldest_due = candidates.order_by("first_response_due_at", "id")
    for _attempt in range(20):
        with transaction.atomic():
            conversation = _take(oldest_due, actor)
            if conversation is None:
                if not oldest_due.exists():
                    return None
                continue
            history.record(
                EventKind.ASSIGNED,
                conversation=conversation,
                actor=actor,
                data={"from": None, "to": actor.get_username(), "claimed": True},
            )
            return conversation
    return None


@retry_on_deadlock
@transaction.atomic
def log_reply(
    conversation_id: int,
    *,
    actor,
    text: str,
    url: str = "",
    external_id: str | None = None,
    sent_at: datetime | None = None,
) -> Message:
    """Log our reply (written here or on the network itself) in the current cycle.

    Sets the first-response time once. When the conversation was waiting to be told about a
    shipped or declined ticket, this reply is the telling: the follow-up clears and the
    evidence links record when the person was told.
    """
    permissions.require_work(actor)
    if not text or not text.strip():
        raise InvalidInput(_("A reply needs its text."), field="text")
    url = (url or "").strip()
    _check_url(url, field="url")
    conversation = lock_conversation(conversation_id)
    now = timezone.now()
    message = Message.objects.create(
        conversation=conversation,
        source_id=conversation.source_id,
        external_id=external_id or None,
        direction=Direction.OUTBOUND,
        author_user=actor,
        author_handle=actor.get_username() if actor else "",
        author_name=actor.get_full_name() if actor else "",
        text=text.strip(),
        url=url,
        sent_at=sent_at or now,
        cycle=conversation.cycle,
        # Our own words: nothing for the enrichment job to work out.
        enriched_at=now,
    )
    fields = []
    if conversation.first_response_at is None:
        conversation.first_response_at = message.sent_at
        fields.append("first_response_at")
    history.record(
        EventKind.REPLY_LOGGED, conversation=conversation, actor=actor, data={"message": message.pk}
    )
    if conversation.needs_follow_up:
        conversation.needs_follow_up = False
        fields.append("needs_follow_up")
        told = FeedbackLink.objects.filter(
            conversation=conversation,
            told_at__isnull=True,
            ticket__status__in=CLOSED_TICKET_STATUSES,
        )
        tickets = list(told.values_list("ticket_id", flat=True))
        told.update(told_at=now)
        # Imported here: services.feedback imports this module.
        from engage.services.feedback import count_told

        count_told(tickets, conversation=conversation)
        history.record(
            EventKind.FOLLOW_UP_CLEARED,
            conversation=conversation,
            actor=actor,
            data={"tickets": tickets},
        )
    if fields:
        _bump(conversation, *fields)
    return message


# "@giulia" in a note, not an e-mail address ("me@example.com") nor a trailing full stop.
MENTION = re.compile(r"(?<![\w@.])@([\w.+-]*[\w+-])")


def mentioned_users(text: str, *, author) -> list:
    """The active users with a role that `text` mentions, other than its author."""
    names = {match.group(1) for match in MENTION.finditer(text)}
    if not names:
        return []
    return list(
        User.objects.filter(username__in=names, is_active=True)
        .filter(Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name__in=Role.values))
        .exclude(pk=getattr(author, "pk", None))
        .distinct()
        .order_by("username")
    )


@transaction.atomic
def add_note(conversation_id: int, *, actor, text: str) -> Note:
    """Add an internal note; each @username mentioned is notified in the app.

    Notes do not change the conversation's version.
    """
    permissions.require_work(actor)
    if not text or not text.strip():
        raise InvalidInput(_("A note needs its text."), field="text")
    conversation = lock_conversation(conversation_id)
    note = Note.objects.create(conversation=conversation, author=actor, text=text.strip())
    mentioned = mentioned_users(note.text, author=actor)
    excerpt = note.text if len(note.text) <= 120 else note.text[:119] + "…"
    Notification.objects.bulk_create(
        [
            Notification(
                user=user,
                key=f"mention:{note.pk}",
                text=_("%(author)s mentioned you in conversation #%(id)s: “%(excerpt)s”")
                % {"author": actor.get_username(), "id": conversation.pk, "excerpt": excerpt},
                conversation=conversation,
            )
            for user in mentioned
        ],
        ignore_conflicts=True,
    )
    history.record(
        EventKind.NOTE_ADDED,
        conversation=conversation,
        actor=actor,
        data={"note": note.pk, "mentions": [user.get_username() for user in mentioned]},
    )
    return note


@transaction.atomic
def record_no_change(conversation_id: int, *, actor, reason: str) -> Event:
    """Record, in react, that this cycle needs no product change, and why."""
    permissions.require_work(actor)
    if not reason or not reason.strip():
        raise InvalidInput(_("Say why no product change is needed."), field="reason")
    conversation = lock_conversation(conversation_id)
    if conversation.stage != Stage.REACT:
        raise TransitionNotAllowed(
            _("“No product change needed” is decided in react: this conversation is in %(stage)s.")
            % {"stage": workflow.stage_label(conversation.stage)}
        )
    if conversation.events.filter(
        cycle=conversation.cycle, kind=EventKind.NO_CHANGE_RECORDED
    ).exists():
        raise Conflict(_("This cycle already records that no product change is needed."))
    return history.record(
        EventKind.NO_CHANGE_RECORDED, conversation=conversation, actor=actor, reason=reason.strip()
    )


@transaction.atomic
def set_priority(
    conversation_id: int, priority: str, *, actor, expected_version: int | None = None
) -> Conversation:
    """Change the priority; the first-response due time follows unless already answered."""
    permissions.require_work(actor)
    try:
        value = Priority.from_key(priority)
    except KeyError:
        raise InvalidInput(
            _("Unknown priority “%(priority)s”: use low, normal, high or urgent.")
            % {"priority": priority},
            field="priority",
        ) from None
    conversation = lock_conversation(conversation_id)
    workflow.check_version(conversation.version, expected_version)
    if conversation.priority == value:
        return conversation
    previous = Priority(conversation.priority).key
    conversation.priority = value
    fields = ["priority"]
    if conversation.first_response_at is None:
        # Once answered, the target the answer was measured against stays as it was.
        conversation.first_response_due_at = first_response_due(conversation.received_at, value)
        fields.append("first_response_due_at")
    _bump(conversation, *fields)
    history.record(
        EventKind.PRIORITY_CHANGED,
        conversation=conversation,
        actor=actor,
        data={"from": previous, "to": value.key},
    )
    return conversation


@transaction.atomic
def set_state(
    conversation_id: int,
    state: str,
    *,
    actor,
    snoozed_until: datetime | None = None,
    expected_version: int | None = None,
) -> Conversation:
    """Open, snooze (until a time in the future) or close a conversation."""
    permissions.require_work(actor)
    if state not in State.values:
        raise InvalidInput(_("“%(state)s” is not a state.") % {"state": state}, field="state")
    if state == State.SNOOZED and (snoozed_until is None or snoozed_until <= timezone.now()):
        raise InvalidInput(_("Snooze until a time in the future."), field="snoozed_until")
    conversation = lock_conversation(conversation_id)
    workflow.check_version(conversation.version, expected_version)
    if conversation.merged_into_id is not None and state != State.CLOSED:
        raise Conflict(
            _("This conversation was merged into #%(into)s: work on that one instead.")
            % {"into": conversation.merged_into_id}
        )
    until = snoozed_until if state == State.SNOOZED else None
    if conversation.state == state and conversation.snoozed_until == until:
        return conversation
    previous = conversation.state
    conversation.state, conversation.snoozed_until = state, until
    _bump(conversation, "state", "snoozed_until")
    history.record(
        EventKind.STATE_CHANGED,
        conversation=conversation,
        actor=actor,
        data={"from": previous, "to": state, "until": until.isoformat() if until else None},
    )
    return conversation


def user_by_username(username: str, *, field: str = "assignee"):
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise InvalidInput(
            _("There is no user “%(username)s”.") % {"username": username}, field=field
        ) from None


__all__ = [
    "Author",
    "Item",
    "add_note",
    "advance",
    "assign",
    "claim_next",
    "create_conversation",
    "cycle_facts",
    "log_reply",
    "record_no_change",
    "restart",
    "set_priority",
    "set_state",
]
