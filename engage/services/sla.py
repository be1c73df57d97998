"""First-response SLAs: the scheduled check that flags the conversations still waiting for a
first answer as "about to breach" or "breached", raises the priority of each new breach one
level, tells the people concerned, and records the hourly backlog snapshot and the minute's
workload snapshot.

`check` runs every minute (engage.tasks.check_slas, scheduled in engage/cron.py) and may
run twice, or twice at once:

- A conversation waits while it has no first response, is not closed and is not merged
  (`first_response_at IS NULL AND state <> closed`: the partial index conv_unanswered).
  It is "about to breach" (at_risk) in the last WARNING_SHARE of its priority's target, but
  never less than WARNING_MINIMUM before its due time; "breached" once the due time passed.
  Answered, closed or merged conversations, and those whose due time moved out of the
  window (their priority or target changed), go back to "" (within target).
- Flags are set-based: each step selects the rows whose flag must change, in due-time
  order, BATCH at a time, locked (SKIP LOCKED on PostgreSQL: a concurrent run or a person's
  open transaction is passed over and left to the next run), and updates exactly those
  with a few UPDATE statements. A row already in the right state is never written.
  Batches go on while they come back full and the run is within TIME_BUDGET_SECONDS;
  what is left waits for the next run.
- What is read stays small: every minute the steps look only at conversations due after
  `now - RECENT` (ranges of conv_unanswered and conv_due). Once an hour — the run that
  takes the hour's snapshot — they go on to older due times, for what rarely happens to
  older conversations: a closed one reopened, old items imported, a target shortened, the
  job stopped for a while, or its first run over an existing backlog (which the time
  budget may spread over several hours; `check(sweep=True)` catches up at once).
- The transition to breached raises the priority one level (never above urgent), at most
  once per conversation and cycle, with a PRIORITY_CHANGED Event {"from", "to", "by": "sla"}
  and a new version; the due time stays as it was. No other transition records an Event:
  the queue's badge and the notice show it.
- Notices go to the assignee, or, when nobody (active) has the conversation, to every
  active community manager marked available (or to all active community managers when
  none is). Each is a Notification keyed "sla:<state>:<conversation id>:<cycle>", unique
  per user, so no one is told twice. They are sent after the flags are committed, and they
  are worked out from the flags themselves, not from this run's transitions: a notice that
  was not sent (the cap below, a crash, a mail server down) is sent by a later run.
  At most NOTICE_LIMIT notices are created per run (each commits on its own row and may
  email); the rest wait for the next run, most pressing due time first. A breach due
  before `now - RECENT` is flagged and raised but not announced: that happens only after
  the job was stopped for long, or on its first run over an old backlog, and a flood of
  stale notices helps nobody (the queue shows them first anyway).
- The backlog snapshot (conversations not closed — open or snoozed, as the dashboard's
  workload counts them — and those of them unassigned) is taken once per hour: `taken_at`
  is the start of the UTC hour, and get_or_create on that unique value makes a second run
  in the same hour add nothing.
- The workload snapshot (conversations not closed per assignee, stage and channel: what the
  dashboard's workload shows) is taken by every run, and replaces the earlier ones. The
  dashboard shows it, with its time, while it is at most metrics.SNAPSHOT_AGE old: counting
  nearly a million conversations once a minute here spares every page view from doing it.
"""

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import CharField, Count, Exists, F, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from engage import history, metrics, tasks
from engage.choices import EventKind, Priority, Role, SlaState, State
from engage.models import (
    BacklogSnapshot,
    Conversation,
    Event,
    Notification,
    WorkloadSnapshot,
)
from engage.services.targets import response_targets

User = get_user_model()

# The warning window: the last quarter of the target, but at least 15 minutes. (Constants
# here rather than settings: they are policy, tested, and nobody asked to tune them yet.)
WARNING_SHARE = 0.25
WARNING_MINIMUM = timedelta(minutes=15)
# Notices created per run at most (each is its own transaction and maybe an email).
NOTICE_LIMIT = 500
# Every minute the steps look at conversations due after now - RECENT (older ones: hourly);
# breaches due before it are not announced.
RECENT = timedelta(hours=24)
# Rows changed per transaction: a step repeats with the next batch while its batches come
# back full and the run is within its time budget. A first run over a large backlog is
# thereby spread over short transactions, and over several runs if it must.
BATCH = 5000
TIME_BUDGET_SECONDS = 30
# Primary keys per UPDATE … WHERE id IN (…): well under every database's parameter limit.
CHUNK = 1000

FLAGGED = (SlaState.AT_RISK, SlaState.BREACHED)


@dataclass(frozen=True)
class SlaResult:
    """What one run changed: conversations that became at risk, breached, or went back
    within target; notices created; whether this run took the hour's backlog snapshot."""

    at_risk: int
    breached: int
    notified: int
    snapshot: bool
    cleared: int = 0


def warning_window(target: timedelta) -> timedelta:
    """How long before its due time a conversation is flagged "about to breach"."""
    return max(target * WARNING_SHARE, WARNING_MINIMUM)


def check(now: datetime | None = None, *, sweep: bool | None = None) -> SlaResult:
    """Take the hour's backlog snapshot, bring the SLA flags up to date, raise new breaches,
    then send the notices still owed. Idempotent (see above).

    `sweep` also looks at due times before `now - RECENT`; by default only the run that
    takes the hour's snapshot does. (Pass True to catch up on a large old backlog at once.)
    """
    now = now or timezone.now()
    deadline = time.monotonic() + TIME_BUDGET_SECONDS
    windows = {priority: warning_window(target) for priority, target in response_targets().items()}
    # The snapshots first: a mail server that fails the notices must not cost them.
    snapshot = take_snapshot(now)
    take_workload_snapshot()
    recent = Q(first_response_due_at__gt=now - RECENT)
    spans = [recent, ~recent] if (snapshot if sweep is None else sweep) else [recent]
    # Recent due times first: whatever the time budget leaves undone is the oldest.
    cleared = sum(_repeat(_answered(span), _set(SlaState.OK), deadline) for span in spans)
    cleared += _repeat(_no_longer_due(now, windows), _set(SlaState.OK), deadline)
    at_risk = _repeat(_at_risk(now, windows), _set(SlaState.AT_RISK), deadline)
    breached = sum(
        _repeat(_breached(now, span), _breach, deadline, "cycle", "priority", "raised")
        for span in spans
    )
    notified = send_notices(now, windows)
    return SlaResult(at_risk, breached, notified, snapshot, cleared)


# Flags -------------------------------------------------------------------------------------


def _waiting() -> Q:
    """Still owed a first response: the condition of the partial index conv_unanswered
    (a merged conversation is closed, so the last term only states it)."""
    return Q(first_response_at__isnull=True) & ~Q(state=State.CLOSED) & Q(merged_into__isnull=True)


def _within(now: datetime, windows: dict[int, timedelta]) -> Q:
    """Due within its own priority's warning window from `now` (or already past due)."""
    conditions = Q()
    for priority, window in windows.items():
        conditions |= Q(priority=priority, first_response_due_at__lte=now + window)
    return conditions


def _repeat(rows, change, deadline: float, *fields: str) -> int:
    """Lock the next BATCH of `rows` (a queryset) in due-time order and `change` them, each
    batch in its own transaction; again, from where the last batch ended, while batches
    come back full and time remains. Returns how many rows changed. Rows another
    transaction holds are skipped (PostgreSQL): the next run takes them."""
    changed, after = 0, None
    while True:
        batch = rows
        if after is not None:
            pk, due = after
            batch = batch.filter(
                Q(first_response_due_at__gt=due) | Q(first_response_due_at=due, pk__gt=pk)
            )
        with transaction.atomic():
            locked = list(
                batch.order_by("first_response_due_at", "pk")
                .select_for_update(skip_locked=True)
                .values_list("pk", "first_response_due_at", *fields)[:BATCH]
            )
            changed += change(locked)
        if len(locked) < BATCH or time.monotonic() > deadline:
            return changed
        after = locked[-1][:2]


def _update(ids: list[int], **values) -> int:
    changed = 0
    for start in range(0, len(ids), CHUNK):
        changed += Conversation.objects.filter(pk__in=ids[start : start + CHUNK]).update(**values)
    return changed


def _set(state: SlaState):
    return lambda rows: _update([row[0] for row in rows], sla_state=state)


def _answered(span: Q):
    """Answered, closed or merged (so closed) conversations that are still flagged.

    The condition reads as the partial index `(first_response_due_at, id) WHERE sla_state
    <> '' AND (first_response_at IS NOT NULL OR state = 'closed')` would, so that
    PostgreSQL uses it once it exists; until then the minute's runs read the conv_due
    range of recent due times, and the hourly sweep reads the table.
    """
    return Conversation.objects.exclude(sla_state=SlaState.OK).filter(
        Q(first_response_at__isnull=False) | Q(state=State.CLOSED), span
    )


def _no_longer_due(now: datetime, windows: dict[int, timedelta]):
    """Waiting and flagged, but their due time moved out of the warning window (a lower
    priority, a longer target): within target again."""
    return Conversation.objects.filter(
        _waiting(), sla_state__in=FLAGGED, first_response_due_at__gt=now + min(windows.values())
    ).exclude(_within(now, windows))


def _at_risk(now: datetime, windows: dict[int, timedelta]):
    """Waiting, not yet due, inside the warning window: about to breach. A breached
    conversation whose due time moved later but still inside the window comes back here."""
    return Conversation.objects.filter(
        _waiting(),
        _within(now, windows),
        first_response_due_at__gt=now,
        first_response_due_at__lte=now + max(windows.values()),
    ).exclude(sla_state=SlaState.AT_RISK)


def _breached(now: datetime, span: Q):
    """Waiting and past due, not flagged breached yet; `raised`: the job already raised its
    priority in this cycle (a person may have lowered it since: it is not overruled twice).
    """
    raised_before = Event.objects.filter(
        conversation=OuterRef("pk"),
        cycle=OuterRef("cycle"),
        kind=EventKind.PRIORITY_CHANGED,
        data__by="sla",
    )
    return (
        Conversation.objects.filter(_waiting(), span, first_response_due_at__lte=now)
        .exclude(sla_state=SlaState.BREACHED)
        .annotate(raised=Exists(raised_before))
    )


def _breach(rows) -> int:
    """Flag the rows breached and raise each one priority level — unless already urgent or
    already raised — with its Event. One UPDATE per new priority, never one per row."""
    groups: dict[int | None, list[int]] = defaultdict(list)
    events = []
    for pk, _due, cycle, priority, raised in rows:
        if raised or priority >= Priority.URGENT:
            groups[None].append(pk)
            continue
        higher = Priority(priority + 1)
        groups[higher].append(pk)
        events.append(
            Event(
                kind=EventKind.PRIORITY_CHANGED,
                conversation_id=pk,
                cycle=cycle,
                data={"from": Priority(priority).key, "to": higher.key, "by": "sla"},
            )
        )
    changed = 0
    for priority, ids in groups.items():
        if priority is None:
            changed += _update(ids, sla_state=SlaState.BREACHED)
        else:
            # A priority change is a change people see: a new version, like set_priority.
            changed += _update(
                ids,
                sla_state=SlaState.BREACHED,
                priority=priority,
                version=F("version") + 1,
                updated_at=timezone.now(),
            )
    history.record_many(events)
    return changed


# Notices -----------------------------------------------------------------------------------


def notice_key(state: str, conversation_id: int, cycle: int) -> str:
    return f"sla:{state}:{conversation_id}:{cycle}"


def team() -> list:
    """Who hears about an unassigned conversation: the active community managers marked
    available (as round robin chooses them, staff included), else every active community
    manager. Two queries at most."""
    workers = User.objects.filter(
        Q(groups__name=Role.COMMUNITY_MANAGER) | Q(is_staff=True) | Q(is_superuser=True),
        is_active=True,
    ).values("pk")
    available = list(
        User.objects.filter(pk__in=workers, availability__is_available=True).order_by("pk")
    )
    if available:
        return available
    return list(
        User.objects.filter(groups__name=Role.COMMUNITY_MANAGER, is_active=True)
        .distinct()
        .order_by("pk")
    )


def _owed(now: datetime, windows: dict[int, timedelta], team_ids: list[int]):
    """Flagged waiting conversations that someone has not been told about yet, most
    pressing first. The key is rebuilt in SQL, so that the unique (user, key) index answers
    "was this person told?" for each of them."""
    key = Concat(
        Value("sla:"),
        F("sla_state"),
        Value(":"),
        Cast("pk", CharField()),
        Value(":"),
        Cast("cycle", CharField()),
        output_field=CharField(),
    )
    assignee_told = Notification.objects.filter(user=OuterRef("assignee"), key=OuterRef("key"))
    has_assignee = Q(assignee__isnull=False, assignee__is_active=True)
    owed = has_assignee & ~Exists(assignee_told)
    if team_ids:
        someone_not_told = User.objects.filter(pk__in=team_ids).exclude(
            Exists(Notification.objects.filter(user=OuterRef("pk"), key=OuterRef(OuterRef("key"))))
        )
        owed |= ~has_assignee & Exists(someone_not_told)
    return (
        Conversation.objects.filter(
            _waiting(),
            sla_state__in=FLAGGED,
            first_response_due_at__gt=now - RECENT,
            first_response_due_at__lte=now + max(windows.values()),
        )
        .annotate(key=key)
        .filter(owed)
        .select_related("assignee")
        .only("pk", "cycle", "priority", "sla_state", "first_response_due_at", "assignee")
        .order_by("first_response_due_at", "pk")
    )


def _when(due: datetime, now: datetime) -> str:
    """ "14:30" today, "21 Nov 14:30" another day, in the site's time zone."""
    local, today = timezone.localtime(due), timezone.localtime(now).date()
    return date_format(local, "H:i" if local.date() == today else "j M H:i")


def notice_text(conversation: Conversation, now: datetime) -> tuple[str, str]:
    """The notice and its email subject, in the active language."""
    values = {
        "id": conversation.pk,
        "due": _when(conversation.first_response_due_at, now),
        "priority": Priority(conversation.priority).label.lower(),
    }
    if conversation.sla_state == SlaState.BREACHED:
        text = (
            _(
                "Conversation #%(id)s missed its first-response target (due %(due)s): it is "
                "now %(priority)s priority."
            )
            % values
        )
        subject = _("[engage] Conversation #%(id)s missed its first-response target") % values
    else:
        text = (
            _("Conversation #%(id)s is about to miss its first-response target (due %(due)s).")
            % values
        )
        subject = (
            _("[engage] Conversation #%(id)s is about to miss its first-response target") % values
        )
    if conversation.assignee_id is None or not conversation.assignee.is_active:
        text += " " + _("Nobody has taken it yet.")
    return text, subject


def send_notices(now: datetime | None = None, windows: dict[int, timedelta] | None = None) -> int:
    """Create the notices still owed for flagged conversations (and email them when
    ENGAGE_EMAIL_NOTIFICATIONS is on); returns how many were created. About NOTICE_LIMIT at
    most: the cap is checked between conversations, so that all the people told of one
    conversation are told in the same run. Anyone missed (a mail that failed and raised)
    is still owed their notice, and a later run sends it."""
    now = now or timezone.now()
    if windows is None:
        windows = {p: warning_window(t) for p, t in response_targets().items()}
    people = team()
    sent = 0
    for conversation in _owed(now, windows, [person.pk for person in people])[:NOTICE_LIMIT]:
        if sent >= NOTICE_LIMIT:
            break
        assignee = conversation.assignee
        recipients = [assignee] if assignee is not None and assignee.is_active else people
        text, subject = notice_text(conversation, now)
        key = notice_key(conversation.sla_state, conversation.pk, conversation.cycle)
        link = tasks._link_to(reverse("conversation", args=[conversation.pk]))
        for person in recipients:
            sent += tasks._notify(
                person,
                key,
                text,
                subject=subject,
                body=tasks._email_body(text, link),
                conversation=conversation,
            )
    return sent


# Backlog -----------------------------------------------------------------------------------


def take_snapshot(now: datetime | None = None) -> bool:
    """Record this hour's backlog once: conversations not closed (open or snoozed), and those
    of them nobody has. Returns whether this call recorded it. Counting (a scan of the
    table) runs only when the hour has no snapshot yet."""
    now = now or timezone.now()
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if BacklogSnapshot.objects.filter(taken_at=hour).exists():
        return False
    counts = Conversation.objects.exclude(state=State.CLOSED).aggregate(
        open=Count("pk"), unassigned=Count("pk", filter=Q(assignee__isnull=True))
    )
    _snapshot, created = BacklogSnapshot.objects.get_or_create(taken_at=hour, defaults=counts)
    return created


def take_workload_snapshot() -> WorkloadSnapshot:
    """Count the conversations not closed per assignee, stage and channel now, record them,
    and delete the snapshots taken before (only the latest is read). Three queries, whatever
    the number of conversations; no transaction needed: a reader sees the old snapshot or
    the new one, and the latest wins."""
    taken_at = timezone.now()
    snapshot = WorkloadSnapshot.objects.create(taken_at=taken_at, counts=metrics.open_counts())
    WorkloadSnapshot.objects.filter(taken_at__lt=taken_at).delete()
    return snapshot
