"""What engage works out about each stored message, in a job after it arrived: language,
sentiment, a default priority and its first-response due time, routing, and a restart of
the cycle when a person comes back unhappy.

`enrich` is idempotent: it does only messages whose `enriched_at` is empty, under the lock
of their conversation, and stamps them in the same transaction — a job killed half-way
leaves nothing half-written, and a retry (or the sweeper) does exactly what was missing.
"""

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from engage import analysis, history, permissions, workflow
from engage.choices import Direction, EventKind, Priority, Role, Sentiment, Stage, State
from engage.errors import TransitionNotAllowed
from engage.models import (
    Availability,
    Conversation,
    Event,
    Message,
    Notification,
    RoutingRule,
)
from engage.services.conversations import cycle_facts
from engage.services.targets import first_response_due, response_targets

User = get_user_model()

NEGATIVE_FEEDBACK = "negative feedback"


def signal_priority(signals: frozenset[str]) -> Priority:
    """Each signal — negative, refund, waiting — raises the default one level."""
    found = len(signals & {"negative", "refund", "waiting"})
    return [Priority.NORMAL, Priority.HIGH, Priority.URGENT, Priority.URGENT][found]


# Changes that many conversations share, written with one UPDATE per combination.
SIMPLE = frozenset({"language", "sentiment", "priority", "first_response_due_at", "assignee"})


def enrich(message_ids: list[int]) -> int:
    """Enrich the given messages that still need it; returns how many it did.

    A batch is written with a handful of statements (grouped updates, bulk inserts), so the
    job keeps up with imports of millions of lines.
    """
    with transaction.atomic():
        conversation_ids = set(
            Message.objects.filter(
                pk__in=message_ids, enriched_at__isnull=True, conversation__isnull=False
            ).values_list("conversation_id", flat=True)
        )
        if not conversation_ids:
            return 0
        # Conversations first, in primary-key order, as every other writer locks them;
        # then the messages are read again under that lock, so two runs never both do one.
        locked = {
            c.pk: c
            for c in Conversation.objects.select_for_update()
            .filter(pk__in=conversation_ids)
            .order_by("pk")
        }
        messages = list(
            Message.objects.filter(
                pk__in=message_ids, enriched_at__isnull=True, conversation_id__in=locked
            )
            .only(
                "pk",
                "conversation_id",
                "source_id",
                "external_id",
                "direction",
                "text",
                "author_handle",
            )
            .order_by("sent_at", "pk")
        )
        now = timezone.now()
        by_conversation = defaultdict(list)
        same_values = defaultdict(list)
        for message in messages:
            message.language = analysis.detect_language(message.text)
            message.sentiment = analysis.sentiment(message.text, message.language)
            by_conversation[message.conversation_id].append(message)
            same_values[(message.language, message.sentiment)].append(message.pk)
        for (language, sentiment), pks in same_values.items():
            Message.objects.filter(pk__in=pks).update(
                language=language, sentiment=sentiment, enriched_at=now
            )
        router = _Router(now)
        events: list[Event] = []
        grouped = defaultdict(list)
        for conversation_id, batch in by_conversation.items():
            conversation = locked[conversation_id]
            changed = _apply(conversation, batch, router, events, now)
            if not changed:
                continue
            if changed <= SIMPLE:
                key = (
                    conversation.language,
                    conversation.sentiment,
                    conversation.priority,
                    conversation.assignee_id,
                    "first_response_due_at" in changed,
                )
                grouped[key].append(conversation_id)
            else:
                conversation.version += 1
                conversation.save(update_fields=[*changed, "version", "updated_at"])
        for (language, sentiment, priority, assignee_id, due), pks in grouped.items():
            values = {"language": language, "sentiment": sentiment, "priority": priority}
            values["assignee_id"] = assignee_id
            if due:
                values["first_response_due_at"] = F("received_at") + router.targets[priority]
            Conversation.objects.filter(pk__in=pks).update(
                **values, version=F("version") + 1, updated_at=now
            )
        history.record_many(events)
        router.save()
        return len(messages)


def _event(kind, conversation: Conversation, data: dict) -> Event:
    return Event(kind=kind, conversation=conversation, cycle=conversation.cycle, data=data)


def _apply(conversation: Conversation, messages: list[Message], router, events, now) -> set[str]:
    """Work out one conversation's changes; returns the names of the fields that changed."""
    changed: set[str] = set()
    for message in messages:
        if message.direction != Direction.INBOUND:
            continue
        opening = (
            message.source_id == conversation.source_id
            and message.external_id == conversation.external_id
        )
        if opening and message.language != conversation.language:
            conversation.language = message.language
            changed.add("language")
        if message.sentiment and message.sentiment != conversation.sentiment:
            # The conversation's mood is its person's latest.
            conversation.sentiment = message.sentiment
            changed.add("sentiment")
        signals = analysis.priority_signals(
            message.text, language=message.language, sentiment=message.sentiment
        )
        if not opening and conversation.first_response_at is None:
            # They wrote again before anyone answered: they are waiting.
            signals = signals | {"waiting"}
        rule_priority = None
        if opening and conversation.merged_into_id is None:
            rule_priority = router.route(conversation, message, changed, events)
        _prioritise(
            conversation, signal_priority(signals), rule_priority, changed, events, router.targets
        )
        if not opening and message.sentiment == Sentiment.NEGATIVE:
            _restart_on_negative(conversation, message, changed, now)
    return changed


def _prioritise(
    conversation, from_signals: Priority, from_rule, changed: set[str], events, targets
) -> None:
    """A rule's priority is taken as it is; signals only ever raise it."""
    target = from_rule if from_rule is not None else max(conversation.priority, from_signals)
    if target == conversation.priority:
        return
    events.append(
        _event(
            EventKind.PRIORITY_CHANGED,
            conversation,
            {
                "from": Priority(conversation.priority).key,
                "to": Priority(target).key,
                "by": "rule" if from_rule is not None else "signals",
            },
        )
    )
    conversation.priority = target
    changed.add("priority")
    if conversation.first_response_at is None:
        conversation.first_response_due_at = first_response_due(
            conversation.received_at, target, targets
        )
        changed.add("first_response_due_at")


def _restart_on_negative(conversation, message, changed: set[str], now) -> None:
    """Negative feedback sends the company back to listening (DESIGN: the cycle)."""
    if not settings.ENGAGE_RESTART_ON_NEGATIVE or conversation.stage == Stage.LISTEN:
        return
    try:
        workflow.check_restart(cycle_facts(conversation), reason=NEGATIVE_FEEDBACK)
    except TransitionNotAllowed:
        return  # e.g. closed: a person decided it is over; the new message reopened it if not.
    previous = conversation.stage
    changed.update(conversation.enter_stage(Stage.LISTEN, now))
    conversation.cycle += 1
    changed.add("cycle")
    history.stage_change(conversation, previous, actor=None, reason=NEGATIVE_FEEDBACK)
    if conversation.assignee_id:
        Notification.objects.get_or_create(
            user_id=conversation.assignee_id,
            key=f"negative:{message.pk}",
            defaults={
                "conversation": conversation,
                "text": (
                    _(
                        "Conversation #%(id)s went back to listen: negative feedback from "
                        "%(handle)s."
                    )
                    % {"id": conversation.pk, "handle": message.author_handle}
                )[:500],
            },
        )


class _Router:
    """Routing rules and round robin, loaded once per enrichment run."""

    def __init__(self, now):
        self.now = now
        self._rules = None
        self._people = None
        self._given = set()
        self.targets = response_targets()

    @property
    def rules(self) -> list[RoutingRule]:
        if self._rules is None:
            self._rules = list(
                RoutingRule.objects.filter(is_active=True)
                .select_related("assignee", "team")
                .prefetch_related("add_tags")
            )
        return self._rules

    def route(self, conversation: Conversation, message: Message, changed: set[str], events):
        """Apply the matching rules; returns the priority a rule set, or None."""
        priority, target, rule_name = None, None, None
        tags = []
        for rule in self.rules:
            if not self._matches(rule, conversation, message):
                continue
            tags += list(rule.add_tags.all())
            if priority is None and rule.set_priority is not None:
                priority = rule.set_priority
            if target is None and (rule.assignee_id or rule.team_id):
                target, rule_name = rule, rule.name
        if tags:
            conversation.tags.add(*tags)
            events.append(
                _event(
                    EventKind.TAGS_CHANGED,
                    conversation,
                    {"added": sorted({t.name for t in tags}), "removed": [], "by": "rule"},
                )
            )
        if conversation.assignee_id is None:
            if target is not None and target.assignee_id:
                assignee = target.assignee if permissions.can_work(target.assignee) else None
            else:
                assignee = self.next_available(target.team if target is not None else None)
                rule_name = rule_name or "round robin"
            if assignee is not None:
                conversation.assignee = assignee
                changed.add("assignee")
                events.append(
                    _event(
                        EventKind.ASSIGNED,
                        conversation,
                        {"from": None, "to": assignee.get_username(), "routed": rule_name},
                    )
                )
        return priority

    @staticmethod
    def _matches(rule: RoutingRule, conversation: Conversation, message: Message) -> bool:
        return (
            (rule.source_id is None or rule.source_id == conversation.source_id)
            and (not rule.channel or rule.channel == conversation.channel)
            and (not rule.language or rule.language == message.language)
            and (not rule.keywords or analysis.mentions_any(message.text, rule.keywords))
        )

    def _load_people(self) -> None:
        """The available community managers, locked for this run, and their open counts."""
        workers = User.objects.filter(
            Q(groups__name=Role.COMMUNITY_MANAGER) | Q(is_staff=True) | Q(is_superuser=True),
            is_active=True,
        ).values("pk")
        self._people = list(
            Availability.objects.select_for_update(of=("self",))
            .filter(is_available=True, user_id__in=workers)
            .select_related("user")
            .order_by("user_id")
        )
        self._open = dict(
            Conversation.objects.filter(assignee_id__in=[p.user_id for p in self._people])
            .exclude(state=State.CLOSED)
            .values_list("assignee_id")
            .annotate(n=Count("pk"))
        )
        self._teams = {}

    def next_available(self, team=None):
        """The available community manager (of `team`, if given) who has waited longest
        since their last new conversation and is under their cap of open ones; None when
        everyone is away or full — the conversation then waits in the queue."""
        if self._people is None:
            self._load_people()
        people = self._people
        if team is not None:
            if team.pk not in self._teams:
                self._teams[team.pk] = set(team.members.values_list("pk", flat=True))
            people = [p for p in people if p.user_id in self._teams[team.pk]]
        # Never given one yet first, then whoever waited longest.
        for person in sorted(
            people,
            key=lambda p: (p.last_assigned_at is not None, p.last_assigned_at or 0, p.user_id),
        ):
            cap = (
                person.max_open if person.max_open is not None else settings.ENGAGE_ROUND_ROBIN_CAP
            )
            if self._open.get(person.user_id, 0) < cap:
                # Strictly later than the last hand-out of this run, so the order rotates.
                self.now = max(timezone.now(), self.now + timedelta(microseconds=1))
                person.last_assigned_at = self.now
                self._open[person.user_id] = self._open.get(person.user_id, 0) + 1
                self._given.add(person)
                return person.user
        return None

    def save(self) -> None:
        for person in self._given:
            Availability.objects.filter(pk=person.pk).update(
                last_assigned_at=person.last_assigned_at
            )
