"""Listening: store incoming messages — pushed, imported or polled — once, in their thread.

One call stores a batch in one transaction with a constant number of queries (lookups are
done for the whole batch, rows are inserted in bulk), so the push API, the file import and
the feed poller share it and stay fast. What it guarantees, per item:

- **Once**: a (source, external id) already stored is "known"; the database's unique
  constraint has the last word when two callers race (the batch is then redone one item at
  a time, and each sees the other's row).
- **Threading**: a message whose `in_reply_to` names a stored message joins that message's
  conversation. A message that arrives before its parent is not lost: a person's message
  opens a conversation of its own, our reply waits (conversation NULL); when the parent
  comes, the waiting replies join it and the person's conversation is merged into it.
- **Duplicates**: the same person's same text on the same source within
  ENGAGE_DUPLICATE_WINDOW_MINUTES is stored as a duplicate of the first, on its
  conversation, with an Event: "known", never silently dropped.
- **Enrichment** (language, sentiment, priority, routing) runs in a job after commit; if it
  cannot be queued (Redis down) the stored item is unaffected and the sweeper finds it.
"""

import hashlib
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from engage import copy, permissions
from engage.choices import Direction, EventKind, Priority, SourceKind, State
from engage.items import FieldError, IncomingItem
from engage.models import Contact, Conversation, Event, Message, Source
from engage.services.merge import merge
from engage.services.targets import first_response_due, response_targets

log = logging.getLogger(__name__)

CREATED, KNOWN, ERROR = "created", "known", "error"


@dataclass(frozen=True)
class Outcome:
    status: str
    conversation: int | None = None
    duplicate: bool = False
    errors: list[FieldError] = field(default_factory=list)


def content_hash(text: str) -> str:
    """The same words, whatever the case and spacing: what the duplicate check compares."""
    normal = re.sub(r"\s+", " ", text.casefold()).strip()
    return hashlib.blake2b(normal.encode(), digest_size=8).hexdigest()


def ingest(items: list[IncomingItem], *, actor=None, kind: str = SourceKind.API) -> list[Outcome]:
    """Store `items` (validated by engage.items.parse_item); one Outcome each, in order.

    `actor` is the person or token owner pushing (a community manager or staff), or None
    when engage itself imports or polls. `kind` is the kind of the sources this creates.
    """
    if actor is not None:
        permissions.require_work(actor)
    if not items:
        return []
    # A collision means someone stored one of these ids, contacts or sources between our
    # reads and our writes (or a deadlock chose us). They have committed by the time we
    # learn it, so the batch is tried again, seeing their rows; then one item at a time.
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return _store(items, actor, kind)
        except (IntegrityError, OperationalError):
            log.info("A batch of %s collided with a concurrent writer", len(items))
    outcomes = []
    for item in items:
        for attempt in range(3):
            try:
                with transaction.atomic():
                    outcomes += _store([item], actor, kind)
                break
            except (IntegrityError, OperationalError):
                if attempt == 2:
                    raise
    return outcomes


@dataclass(slots=True)
class _NewEvent:
    """An Event the batch will write: lighter than a model instance, thousands a batch."""

    kind: str
    conversation: Conversation
    actor: object
    data: dict = field(default_factory=dict)

    def row(self, now) -> dict:
        return {
            "conversation_id": self.conversation.pk,
            "ticket_id": None,
            "kind": self.kind,
            "actor_id": self.actor.pk if self.actor is not None else None,
            "from_stage": "",
            "to_stage": "",
            "cycle": self.conversation.cycle,
            "reason": "",
            "data": self.data,
            "created_at": now,
        }


@dataclass
class _Ref:
    """A stored message as the batch sees it: its id (or the unsaved Message), its
    conversation (None while a reply waits for its parent) and when it was sent."""

    message: object
    conversation: Conversation | None
    sent_at: object
    external_id: str
    in_reply_to: str = ""


class _Batch:
    """The working state of one call: what the database already holds for these items,
    and what this call is about to write."""

    def __init__(self, items: list[IncomingItem], actor, kind: str):
        self.items, self.actor, self.kind = items, actor, kind
        self.now = timezone.now()
        self.window = timedelta(minutes=settings.ENGAGE_DUPLICATE_WINDOW_MINUTES)
        self.new_conversations: list[Conversation] = []
        self.new_messages: list[Message] = []
        self.duplicates: list[Message] = []
        self.events: list[_NewEvent] = []
        self.changed: dict[int, tuple[Conversation, set[str]]] = {}
        self.attach: list[tuple[int, Conversation]] = []
        self.merges: list[tuple[Conversation, Conversation]] = []
        # (source id, external id) -> the stored message.
        self.stored: dict[tuple[int, str], _Ref] = {}
        # (source id, external id of a parent) -> stored replies that answer it.
        self.children: dict[tuple[int, str], list[tuple[_Ref, str]]] = defaultdict(list)
        # (source id, handle, text hash) -> earlier messages of that person with that text.
        self.same_text: dict[tuple[int, str, str], list[_Ref]] = defaultdict(list)
        # (channel, handle) -> the contact's id.
        self.contacts: dict[tuple[str, str], int] = {}
        self.targets = response_targets()


def _store(items: list[IncomingItem], actor, kind: str) -> list[Outcome]:
    batch = _Batch(items, actor, kind)
    sources = _sources(items, kind)
    outcomes: dict[int, Outcome] = {}
    for index, item in enumerate(items):
        source = sources[item.source]
        if source.removed_at is not None:
            outcomes[index] = Outcome(
                ERROR,
                errors=[
                    FieldError(
                        "source",
                        _("The source “%(name)s” was removed; restore it to add to it.")
                        % {"name": source.name},
                    )
                ],
            )
    live = [(i, item, sources[item.source]) for i, item in enumerate(items) if i not in outcomes]
    _load(batch, live)
    for index, item, source in _thread_order(live):
        outcomes[index] = _place(batch, item, source)
    _write(batch)
    to_enrich = [m.pk for m in batch.new_messages if m.enriched_at is None]
    if to_enrich:
        from engage import tasks

        transaction.on_commit(partial(tasks.enqueue_enrichment, to_enrich), robust=True)
    return [_resolved(outcomes[i]) for i in range(len(items))]


def _resolved(outcome: Outcome) -> Outcome:
    conversation = outcome.conversation
    if isinstance(conversation, Conversation):
        return Outcome(outcome.status, conversation.pk, outcome.duplicate, outcome.errors)
    return outcome


def _sources(items: list[IncomingItem], kind: str) -> dict[str, Source]:
    """The named sources; a name seen for the first time creates a source of `kind`."""
    names = {item.source for item in items}
    sources = {s.name: s for s in Source.objects.filter(name__in=names)}
    for item in items:
        if item.source not in sources:
            sources[item.source] = Source.objects.create(
                name=item.source, channel=item.channel, kind=kind
            )
    return sources


def _any_of(field: str, pairs) -> Q | None:
    """(source_id = s AND field IN (...)) OR ... for each source; None when nothing is asked."""
    wanted: dict[int, set[str]] = defaultdict(set)
    for source_id, value in pairs:
        if value:
            wanted[source_id].add(value)
    query = None
    for source_id, values in wanted.items():
        part = Q(source_id=source_id, **{f"{field}__any": sorted(values)})
        query = part if query is None else query | part
    return query


def _load(batch: _Batch, live) -> None:
    """Everything the batch needs from the database, in a handful of queries."""
    ids = [(source.pk, item.external_id) for _, item, source in live]
    parents = [(source.pk, item.in_reply_to) for _, item, source in live]
    known = _any_of("external_id", ids + parents)
    rows = (
        Message.objects.filter(known)
        .order_by()
        .values_list("pk", "source_id", "external_id", "conversation_id", "sent_at")
        if known is not None
        else []
    )
    # Replies already stored that answer one of these items (they arrived first).
    answering = _any_of("in_reply_to", ids)
    children = (
        # The exclusion states the partial index's condition (message_in_reply_to): the
        # planner cannot infer it from an IN list of more than 100 values.
        Message.objects.filter(answering)
        .exclude(in_reply_to="")
        .order_by()
        .values_list(
            "pk",
            "source_id",
            "in_reply_to",
            "conversation_id",
            "direction",
            "sent_at",
            "external_id",
        )
        if answering is not None
        else []
    )
    # The same person's same text, for the duplicate check.
    inbound = [(item, source) for _, item, source in live if item.direction == Direction.INBOUND]
    candidates = []
    if inbound:
        times = [item.created_at or batch.now for item, _ in inbound]
        candidates = list(
            Message.objects.filter(
                source_id__in={source.pk for _, source in inbound},
                author_handle__any={item.author_handle for item, _ in inbound},
                content_hash__any={content_hash(item.text) for item, _ in inbound},
                direction=Direction.INBOUND,
                duplicate_of__isnull=True,
                sent_at__gte=min(times) - batch.window,
                sent_at__lte=max(times) + batch.window,
            )
            .order_by()
            .values_list(
                "pk",
                "source_id",
                "author_handle",
                "content_hash",
                "sent_at",
                "conversation_id",
                "external_id",
                "in_reply_to",
            )
        )
    conversation_ids = {row[3] for row in rows} | {row[3] for row in children}
    conversation_ids |= {row[5] for row in candidates}
    conversation_ids.discard(None)
    # Lock the conversations this batch may change, in primary-key order (no deadlocks).
    locked = {
        c.pk: c
        for c in Conversation.objects.select_for_update()
        .filter(pk__any=conversation_ids)
        .order_by("pk")
    }
    for pk, source_id, external_id, conversation_id, sent_at in rows:
        ref = _Ref(pk, locked.get(conversation_id), sent_at, external_id)
        batch.stored[(source_id, external_id)] = ref
    for pk, source_id, in_reply_to, conversation_id, direction, sent_at, external_id in children:
        ref = _Ref(pk, locked.get(conversation_id), sent_at, external_id)
        batch.children[(source_id, in_reply_to)].append((ref, direction))
    for pk, source_id, handle, digest, sent_at, conversation_id, external_id, parent in candidates:
        ref = _Ref(pk, locked[conversation_id], sent_at, external_id, parent)
        batch.same_text[(source_id, handle, digest)].append(ref)
    batch.contacts = _contacts(inbound)


def _group(pairs) -> dict[int, set[str]]:
    grouped: dict[int, set[str]] = defaultdict(set)
    for source_id, value in pairs:
        grouped[source_id].add(value)
    return grouped


def _contacts(inbound) -> dict[tuple[str, str], int]:
    """The ids of the people behind the inbound items, created where new (name and profile
    kept up to date from the latest item that carries them). Read as plain rows: a batch
    has hundreds of people, and model instances of them would only be thrown away."""
    if not inbound:
        return {}
    latest = {}
    for item, _source in inbound:
        latest[(item.channel, item.author_handle)] = item
    Contact.objects.bulk_create(
        [
            Contact(
                channel=channel, handle=handle, name=item.author_name, profile_url=item.author_url
            )
            for (channel, handle), item in sorted(latest.items())
        ],
        ignore_conflicts=True,
    )
    query = None
    for channel, handles in _group(latest).items():
        part = Q(channel=channel, handle__any=sorted(handles))
        query = part if query is None else query | part
    contacts, stale = {}, []
    for pk, channel, handle, name, url in (
        Contact.objects.filter(query)
        .order_by()
        .values_list("pk", "channel", "handle", "name", "profile_url")
    ):
        contacts[(channel, handle)] = pk
        item = latest[(channel, handle)]
        fresh = (item.author_name or name, item.author_url or url)
        if fresh != (name, url):
            stale.append(Contact(pk=pk, name=fresh[0], profile_url=fresh[1]))
    if stale:
        Contact.objects.bulk_update(stale, ["name", "profile_url"])
    return contacts


def _thread_order(live):
    """Parents before their replies when both are in the batch; otherwise as given."""
    position = {(source.pk, item.external_id): n for n, (_, item, source) in enumerate(live)}
    depth: dict[int, int] = {}

    def depth_of(n: int, seen: frozenset = frozenset()) -> int:
        if n in depth:
            return depth[n]
        _index, item, source = live[n]
        parent = position.get((source.pk, item.in_reply_to))
        if parent is None or parent in seen or parent == n:
            depth[n] = 0
        else:
            depth[n] = depth_of(parent, seen | {n}) + 1
        return depth[n]

    if len(live) < 900:
        order = sorted(range(len(live)), key=lambda n: (depth_of(n), n))
    else:
        # Deep chains could exhaust the recursion limit; iterate instead.
        order = _iterative_order(live, position)
    return [live[n] for n in order]


def _iterative_order(live, position) -> list[int]:
    done, order = set(), []
    for start in range(len(live)):
        chain, n = [], start
        while n is not None and n not in done and n not in chain:
            chain.append(n)
            _index, item, source = live[n]
            n = position.get((source.pk, item.in_reply_to))
        for n in reversed(chain):
            done.add(n)
            order.append(n)
    return order


def _place(batch: _Batch, item: IncomingItem, source: Source) -> Outcome:
    """Decide where one item goes; the writes happen in _write, in bulk."""
    key = (source.pk, item.external_id)
    if key in batch.stored:
        return Outcome(KNOWN, batch.stored[key].conversation)
    sent_at = item.created_at or batch.now
    digest = content_hash(item.text)
    message = Message(
        source=source,
        external_id=item.external_id,
        in_reply_to=item.in_reply_to,
        direction=item.direction,
        author_handle=item.author_handle,
        author_name=item.author_name,
        text=item.text,
        url=item.url,
        sent_at=sent_at,
        content_hash=digest,
        # Our own replies need no language or sentiment.
        enriched_at=None if item.direction == Direction.INBOUND else batch.now,
    )
    ref = _Ref(message, None, sent_at, item.external_id, item.in_reply_to)
    batch.stored[key] = ref

    if item.direction == Direction.INBOUND:
        original = _same_text(batch, (source.pk, item.author_handle, digest), ref)
        if original is not None:
            _keep_duplicate(batch, message, original)
            ref.conversation = original.conversation
            return Outcome(KNOWN, original.conversation, duplicate=True)

    parent = batch.stored.get((source.pk, item.in_reply_to)) if item.in_reply_to else None
    conversation = parent.conversation if parent else None
    waiting = batch.children.get(key, [])
    threads = sorted(
        {
            child.conversation.pk: child.conversation
            for child, _direction in waiting
            if child.conversation is not None and child.conversation is not conversation
        }.values(),
        key=lambda c: c.pk,
    )
    if conversation is None and threads:
        # The replies came first: this message joins the oldest of their conversations.
        conversation, threads = threads[0], threads[1:]
    if conversation is not None:
        kind = (
            EventKind.MESSAGE_RECEIVED
            if item.direction == Direction.INBOUND
            else EventKind.REPLY_LOGGED
        )
        _join(batch, conversation, message, kind=kind)
    elif item.direction == Direction.INBOUND:
        conversation = _new_conversation(batch, item, source, sent_at)
        message.conversation, message.cycle = conversation, conversation.cycle
    elif not item.in_reply_to:
        # Our own message answering nothing and answered by nothing stored: no conversation
        # to put it in, nor one to wait for.
        del batch.stored[key]
        return Outcome(
            ERROR,
            errors=[
                FieldError(
                    "in_reply_to",
                    _(
                        "Our own message must answer another: give in_reply_to, the "
                        "external id of the message it answers."
                    ),
                )
            ],
        )
    else:
        # Our reply to something not stored yet: it waits and joins its parent later.
        message.cycle = 1
    ref.conversation = conversation
    batch.new_messages.append(message)

    if conversation is not None:
        if parent is not None and parent.conversation is None and isinstance(parent.message, int):
            # The parent is our reply that waited for a conversation: this is the one.
            _attach(batch, parent, conversation)
        for child, _direction in waiting:
            if child.conversation is None:
                _attach(batch, child, conversation)
        batch.merges += [(thread, conversation) for thread in threads]
        if item.direction == Direction.INBOUND:
            batch.same_text[(source.pk, item.author_handle, digest)].append(ref)
    return Outcome(CREATED, conversation)


def _same_text(batch: _Batch, key, ref: _Ref) -> _Ref | None:
    """An earlier message of this person with this text, in answer to the same message
    (or to none), within the window: a double submit or an entry listed again."""
    for earlier in batch.same_text.get(key, []):
        if (
            abs(earlier.sent_at - ref.sent_at) <= batch.window
            and earlier.in_reply_to == ref.in_reply_to
            and earlier.conversation is not None
        ):
            return earlier
    return None


def _keep_duplicate(batch: _Batch, message: Message, original: _Ref) -> None:
    if isinstance(original.message, Message):
        message.duplicate_of = original.message
    else:
        message.duplicate_of_id = original.message
    message.enriched_at = batch.now
    message.conversation, message.cycle = original.conversation, original.conversation.cycle
    batch.duplicates.append(message)
    batch.events.append(
        _NewEvent(
            EventKind.DUPLICATE_RECEIVED,
            original.conversation,
            batch.actor,
            {"external_id": message.external_id, "duplicate_of": original.external_id},
        )
    )


def _attach(batch: _Batch, waiting: _Ref, conversation: Conversation) -> None:
    """Our stored reply that waited for its parent joins the parent's conversation."""
    batch.attach.append((waiting.message, conversation))
    waiting.conversation = conversation
    batch.events.append(
        _NewEvent(
            EventKind.REPLY_LOGGED,
            conversation,
            batch.actor,
            {"external_id": waiting.external_id, "direction": Direction.OUTBOUND},
        )
    )
    _reply_effects(batch, conversation, waiting.sent_at)


def _new_conversation(batch: _Batch, item, source, sent_at) -> Conversation:
    priority = Priority.from_key(item.priority) if item.priority else Priority.NORMAL
    conversation = Conversation(
        source=source,
        external_id=item.external_id,
        channel=item.channel,
        contact_id=batch.contacts[(item.channel, item.author_handle)],
        url=item.url,
        text=item.text,
        priority=priority,
        received_at=sent_at,
        first_response_due_at=first_response_due(sent_at, priority, batch.targets),
        stage_entered_at=batch.now,
    )
    batch.new_conversations.append(conversation)
    batch.events.append(_NewEvent(EventKind.CREATED, conversation, batch.actor))
    return conversation


def _join(batch: _Batch, conversation: Conversation, message: Message, *, kind: str) -> None:
    """A message added to a conversation that exists (or was opened earlier in the batch)."""
    message.conversation, message.cycle = conversation, conversation.cycle
    data = {"external_id": message.external_id, "direction": message.direction}
    batch.events.append(_NewEvent(kind, conversation, batch.actor, data))
    if message.direction == Direction.OUTBOUND:
        _reply_effects(batch, conversation, message.sent_at)
    elif conversation.state != State.OPEN:
        # The person wrote again: a snoozed or closed conversation needs attention now.
        batch.events.append(
            _NewEvent(
                EventKind.STATE_CHANGED,
                conversation,
                batch.actor,
                {"from": conversation.state, "to": State.OPEN, "reason": "new message"},
            )
        )
        conversation.state, conversation.snoozed_until = State.OPEN, None
        _changed(batch, conversation, "state", "snoozed_until")
    _changed(batch, conversation)


def _reply_effects(batch: _Batch, conversation: Conversation, sent_at) -> None:
    """Our reply: it is the first response unless an earlier one is known."""
    if conversation.first_response_at is None or sent_at < conversation.first_response_at:
        conversation.first_response_at = sent_at
        _changed(batch, conversation, "first_response_at")


def _changed(batch: _Batch, conversation: Conversation, *fields: str) -> None:
    """Existing conversations get their version bumped once, with these fields saved."""
    if conversation.pk is not None:
        batch.changed.setdefault(conversation.pk, (conversation, set()))[1].update(fields)


def _save_changed(batch: _Batch) -> None:
    """Each existing conversation the batch touched gets its version bumped once: those
    that only gained a message in one UPDATE, the others in one UPDATE per set of changed
    fields (a thread's replies touch many conversations in a busy batch)."""
    by_fields: dict[tuple[str, ...], list[Conversation]] = defaultdict(list)
    for conversation, fields in batch.changed.values():
        by_fields[tuple(sorted(fields))].append(conversation)
    for fields, conversations in by_fields.items():
        for conversation in conversations:
            conversation.version += 1
            conversation.updated_at = batch.now
        if fields:
            copy.update(conversations, [*fields, "version", "updated_at"])
        else:
            Conversation.objects.filter(pk__any=[c.pk for c in conversations]).update(
                version=F("version") + 1, updated_at=batch.now
            )


def _write(batch: _Batch) -> None:
    # Bulk inserts return primary keys on PostgreSQL and SQLite; the messages and events
    # built on unsaved conversations pick them up as they are saved.
    copy.insert(batch.new_conversations)
    copy.insert(batch.new_messages)
    copy.insert(batch.duplicates)  # after the messages they may be duplicates of
    for message, conversation in batch.attach:
        Message.objects.filter(pk=message, conversation__isnull=True).update(
            conversation=conversation, cycle=conversation.cycle
        )
    _save_changed(batch)
    copy.insert_rows(Event, [event.row(batch.now) for event in batch.events])
    for thread, conversation in batch.merges:
        if thread.merged_into_id is None:
            merge(thread.pk, conversation.pk, actor=None)
