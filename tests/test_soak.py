"""Soak: many people working the same few conversations at once, then every invariant.

Sixteen threads, each with its own database connection (Django's connections are per
thread; each operation returns its connection to the pool, as a request does), run a
seeded random mix of the writes a community manager makes — claim next, advance, restart
with a reason, assign and unassign, notes, replies, "no product change needed", snooze,
close, reopen — on twenty shared conversations. The rules refuse many of them
(VersionConflict, TransitionNotAllowed, Conflict); any other exception fails the test.
Afterwards the history, the funnel record, the versions and the assignments must all tell
the same story as the conversations' rows.

The services read the clock twice for a stage move: once for the conversation's
stage_entered_at and once for the Event's created_at (auto_now_add), a few microseconds
apart. To compare the funnel record with the history exactly, the test's clock hands
every service call one instant, taken the first time the call reads the clock — after it
locked the row, so the instants of one conversation's moves follow its lock order.
"""

import random
import threading
import time
import traceback
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from engage import permissions
from engage.choices import Direction, EventKind, Stage, State
from engage.errors import Conflict, TransitionNotAllowed, VersionConflict
from engage.models import Conversation, Event, Message, Note
from engage.services import conversations as cs
from engage.services import reaction
from engage.workflow import next_stage
from tests import factories
from tests.conftest import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 20261121
CONVERSATIONS = 20
REFUSALS = (VersionConflict, TransitionNotAllowed, Conflict)
# Events that come with a new version of the conversation (see conversations._bump and
# claim_next); a reply bumps it only when it is the first response.
VERSIONED_KINDS = {
    EventKind.STAGE_CHANGED,
    EventKind.RESTARTED,
    EventKind.ASSIGNED,
    EventKind.UNASSIGNED,
    EventKind.STATE_CHANGED,
}
# What the mix draws from, with weights: more of what moves conversations on.
OPERATIONS = {
    "claim": 8,
    "advance": 18,
    "restart": 5,
    "assign": 7,
    "unassign": 4,
    "note": 7,
    "reply": 10,
    "no_change": 9,
    "snooze": 4,
    "close": 3,
    "reopen": 7,
}


class OperationClock:
    """timezone.now() that gives every call inside `operation()` a single instant."""

    def __init__(self, real_now):
        self.real_now = real_now
        self.lock = threading.Lock()
        self.last = real_now()
        self.local = threading.local()

    def now(self):
        if not getattr(self.local, "active", False):
            return self.real_now()
        if self.local.instant is None:
            with self.lock:
                self.last = max(self.real_now(), self.last + timedelta(microseconds=1))
                self.local.instant = self.last
        return self.local.instant

    @contextmanager
    def operation(self):
        self.local.active, self.local.instant = True, None
        try:
            yield
        finally:
            self.local.active = False


@pytest.fixture
def clock(monkeypatch):
    clock = OperationClock(timezone.now)
    monkeypatch.setattr(timezone, "now", clock.now)
    return clock


@dataclass
class Outcome:
    op: str
    conversation: int | None
    actor: str
    result: str  # "changed", "unchanged", "none" (nothing to claim) or a refusal's class name
    version: int | None = None  # the version the service returned for a change
    expected: int | None = None  # the version the caller sent, if any
    detail: str = ""


def plan(worker: int, count: int, ids: list[int], people: list) -> list[tuple]:
    """The seeded operations of one worker: (op, conversation id, send a version?, other)."""
    rng = random.Random(SEED * 100 + worker)
    names, weights = zip(*OPERATIONS.items(), strict=True)
    return [
        (rng.choices(names, weights)[0], rng.choice(ids), rng.random() < 0.5, rng.choice(people))
        for _ in range(count)
    ]


def current_version(conversation_id: int) -> int:
    """The version a person would see on the page they act from."""
    return Conversation.objects.values_list("version", flat=True).get(pk=conversation_id)


def perform(op: str, pk: int, send_version: bool, other, actor) -> Outcome:
    """Call one service the way the pages and the API do; describe what came back."""
    name = actor.get_username()
    if op == "claim":
        claimed = cs.claim_next(actor=actor)
        if claimed is None:
            return Outcome(op, None, name, "none")
        assert claimed.assignee_id == actor.pk
        return Outcome(op, claimed.pk, name, "changed", claimed.version)
    if op in {"note", "reply"}:
        if op == "note":
            cs.add_note(pk, actor=actor, text=f"Checked with @{other.get_username()}.")
        else:
            cs.log_reply(pk, actor=actor, text="Thanks for writing: we are on it.")
        return Outcome(op, pk, name, "changed")
    if op == "no_change":
        result = reaction.record_no_change(pk, actor=actor, reason="A question, not a defect.")
        moved = result.moved_on
        return Outcome(op, pk, name, "changed", moved.version if moved else None)
    if op in {"advance", "restart"}:
        expected = current_version(pk) if send_version else None
        if op == "advance":
            changed = cs.advance(pk, actor=actor, expected_version=expected)
        else:
            changed = cs.restart(
                pk, actor=actor, reason="The person wrote back unhappy.", expected_version=expected
            )
        return Outcome(op, pk, name, "changed", changed.version, expected)
    # Assignments and states are flips that may change nothing: the pages always send the
    # version they show, which tells a change (version + 1) from no change (the same one).
    expected = current_version(pk)
    if op in {"assign", "unassign"}:
        returned = cs.assign(
            pk, other if op == "assign" else None, actor=actor, expected_version=expected
        )
    else:
        state, until = {
            "snooze": (State.SNOOZED, timezone.now() + timedelta(hours=2)),
            "close": (State.CLOSED, None),
            "reopen": (State.OPEN, None),
        }[op]
        returned = cs.set_state(
            pk, state, actor=actor, snoozed_until=until, expected_version=expected
        )
    if returned.version == expected + 1:
        return Outcome(op, pk, name, "changed", returned.version, expected)
    if returned.version == expected:
        return Outcome(op, pk, name, "unchanged", returned.version, expected)
    return Outcome(op, pk, name, "BadVersion", returned.version, expected)


def run_worker(clock, steps, actor, *, close_connections: bool) -> list[Outcome]:
    outcomes = []
    for op, pk, send_version, other in steps:
        try:
            with clock.operation():
                outcomes.append(perform(op, pk, send_version, other, actor))
        except REFUSALS as refusal:
            outcomes.append(Outcome(op, pk, actor.get_username(), type(refusal).__name__))
        except Exception as error:  # noqa: BLE001 - reported by the test, with its traceback
            outcomes.append(
                Outcome(
                    op,
                    pk,
                    actor.get_username(),
                    "unexpected",
                    detail=f"{error!r}\n{traceback.format_exc()}",
                )
            )
        finally:
            if close_connections:
                # Like the end of a request: the connection goes back to the pool, so
                # sixteen threads share the pool's connections as web threads do.
                connections.close_all()
    return outcomes


@dataclass
class Start:
    """A conversation as it was when the soak began."""

    version: int
    stage: str
    cycle: int
    entered: object
    assignee: str | None
    state: str
    snoozed_until: str | None
    first_response_at: object
    funnel: dict


FUNNEL = [f"{stage}_reached_at" for stage in Stage.values[1:]] + [
    f"time_in_{stage}" for stage in Stage.values
]


def snapshot(ids: list[int]) -> dict[int, Start]:
    return {
        c.pk: Start(
            version=c.version,
            stage=c.stage,
            cycle=c.cycle,
            entered=c.stage_entered_at,
            assignee=c.assignee.get_username() if c.assignee else None,
            state=c.state,
            snoozed_until=c.snoozed_until.isoformat() if c.snoozed_until else None,
            first_response_at=c.first_response_at,
            funnel={field: getattr(c, field) for field in FUNNEL},
        )
        for c in Conversation.objects.filter(pk__in=ids).select_related("assignee")
    }


def soak(clock, *, workers: int, operations: int) -> tuple[list[Outcome], dict, int, float]:
    """Set up the conversations, run the mix, return what every call got."""
    people = [factories.user(f"soak{i}") for i in range(max(workers, 4))]
    for person in people:
        permissions.roles(person)  # read once here, not raced for by the threads
    ids = [factories.conversation().pk for _ in range(CONVERSATIONS)]
    start = snapshot(ids)
    first_event = (Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    per_worker = -(-operations // workers)
    plans = [plan(i, per_worker, ids, people) for i in range(workers)]

    began = time.monotonic()
    if workers == 1:
        results = [run_worker(clock, plans[0], people[0], close_connections=False)]
    else:
        results = run_in_threads(
            workers,
            lambda i: run_worker(clock, plans[i], people[i], close_connections=True),
        )
    elapsed = time.monotonic() - began
    crashed = [r for r in results if isinstance(r, Exception)]
    assert not crashed, crashed
    return [o for outcomes in results for o in outcomes], start, first_event, elapsed


def summarise(capsys, outcomes: list[Outcome], elapsed: float, workers: int) -> None:
    by_result = Counter(o.result for o in outcomes)
    refused = {kind: by_result[kind] for kind in sorted(by_result) if kind in _refusal_names()}
    with capsys.disabled():
        print(
            f"\nsoak: {len(outcomes)} operations by {workers} worker(s) in {elapsed:.1f} s, "
            f"seed {SEED}: {by_result['changed']} changed, {by_result['unchanged']} no change, "
            f"{by_result['none']} claims found nothing; refused {refused}; "
            f"by operation {dict(sorted(Counter(o.op for o in outcomes).items()))}"
        )


def _refusal_names() -> set[str]:
    return {kind.__name__ for kind in REFUSALS}


def check_invariants(outcomes: list[Outcome], start: dict[int, Start], first_event: int) -> None:
    unexpected = [o for o in outcomes if o.result not in {"changed", "unchanged", "none"}]
    unexpected = [o for o in unexpected if o.result not in _refusal_names()]
    assert not unexpected, "\n".join(
        f"{o.op} #{o.conversation}: {o.result} {o.detail}" for o in unexpected
    )
    # The mix did real work and met the rules: many changes, refusals, whole cycles.
    results = Counter(o.result for o in outcomes)
    assert results["changed"] > len(outcomes) // 4
    assert results["TransitionNotAllowed"] > 0
    # Ordered by id: a conversation's Events are inserted under its row lock, so their ids
    # follow the order in which the changes took the lock.
    events = defaultdict(list)
    for event in Event.objects.filter(pk__gte=first_event).order_by("pk"):
        events[event.conversation_id].append(event)
    every = [e for history in events.values() for e in history]
    assert any(e.to_stage == Stage.SELL for e in every)
    assert any(e.kind == EventKind.RESTARTED and e.from_stage != Stage.LISTEN for e in every)
    assert set(events) <= set(start), "an Event on a conversation the soak did not touch"
    changes = defaultdict(list)
    for o in outcomes:
        if o.result == "changed":
            changes[o.conversation].append(o)

    for conversation in Conversation.objects.filter(pk__in=start).select_related("assignee"):
        before, history, done = (
            start[conversation.pk],
            events[conversation.pk],
            changes[conversation.pk],
        )
        where = f"conversation #{conversation.pk}"
        _check_stage_history(conversation, before, history, where)
        _check_assignments_and_states(conversation, before, history, done, where)
        _check_versions(conversation, before, history, done, where)
        _check_no_duplicates(conversation, history, done, where)


def _check_stage_history(conversation, before: Start, history: list[Event], where: str) -> None:
    """Replay the moves: each starts where the last ended, one step forward or a restart to
    listen; the result is the stage, cycle and funnel record stored on the conversation."""
    stage, cycle, entered = before.stage, before.cycle, before.entered
    funnel = dict(before.funnel)
    for event in history:
        if event.kind not in {EventKind.STAGE_CHANGED, EventKind.RESTARTED}:
            continue
        assert event.from_stage == stage, f"{where}: a move from {event.from_stage} in {stage}"
        if event.kind == EventKind.RESTARTED:
            assert event.to_stage == Stage.LISTEN, where
            assert event.reason, f"{where}: a restart without its reason"
            cycle += 1
        else:
            assert event.to_stage == next_stage(stage), f"{where}: {stage} → {event.to_stage}"
        assert event.cycle == cycle, f"{where}: a move recorded in cycle {event.cycle} of {cycle}"
        spent = max(event.created_at - entered, timedelta(0))
        funnel[f"time_in_{stage}"] = (funnel[f"time_in_{stage}"] or timedelta(0)) + spent
        reached = f"{event.to_stage}_reached_at"
        if event.to_stage != Stage.LISTEN and funnel[reached] is None:
            funnel[reached] = event.created_at
        stage, entered = event.to_stage, event.created_at
    assert (conversation.stage, conversation.cycle) == (stage, cycle), where
    assert conversation.stage_entered_at == entered, where
    assert {field: getattr(conversation, field) for field in FUNNEL} == funnel, where


def _chain(history, kinds, first, where, *, key=lambda data: data["to"]):
    """Each change of a flip starts from where the previous one left it and changes it;
    returns where the last one left it (`key` reads that from an Event's data)."""
    value, here = first, first[0] if isinstance(first, tuple) else first
    for event in history:
        if event.kind in kinds:
            assert event.data["from"] == here, f"{where}: {event.kind} {event.data} at {value}"
            assert key(event.data) != value, f"{where}: {event.kind} changed nothing"
            value, here = key(event.data), event.data["to"]
    return value


def _check_assignments_and_states(conversation, before, history, done, where) -> None:
    # One assignee at most is structural (a single nullable foreign key); the history shows
    # who held it when, and a claim only ever took a conversation that nobody held.
    assignee = conversation.assignee.get_username() if conversation.assignee else None
    kinds = {EventKind.ASSIGNED, EventKind.UNASSIGNED}
    assert _chain(history, kinds, before.assignee, where) == assignee
    claims = [e for e in history if e.kind == EventKind.ASSIGNED and e.data.get("claimed")]
    assert all(e.data["from"] is None and e.data["to"] == e.actor.get_username() for e in claims)
    assert len(claims) == sum(o.op == "claim" for o in done), where
    # Snoozing again with another time is a change of the same state.
    state = _chain(
        history,
        {EventKind.STATE_CHANGED},
        (before.state, before.snoozed_until),
        where,
        key=lambda data: (data["to"], data["until"]),
    )
    until = conversation.snoozed_until
    assert state == (conversation.state, until.isoformat() if until else None), where
    assert (conversation.state == State.SNOOZED) == (conversation.snoozed_until is not None), where


def _check_versions(conversation, before, history, done, where) -> None:
    """Every change gives a new version, one more than the last; no two callers were told
    they made the same version; nothing else moved it."""
    first_reply = before.first_response_at is None and conversation.first_response_at is not None
    versioned = [e for e in history if e.kind in VERSIONED_KINDS]
    assert conversation.version == before.version + len(versioned) + first_reply, where
    returned = [o.version for o in done if o.version is not None]
    assert len(returned) == len(set(returned)), f"{where}: one version told to two callers"
    assert all(before.version < v <= conversation.version for v in returned), where
    assert all(o.version == o.expected + 1 for o in done if o.expected is not None), where
    # Each versioned Event is one change a caller was told about, and the other way round.
    assert len(versioned) == len(returned), where


def _check_no_duplicates(conversation, history, done, where) -> None:
    """Each successful call wrote its Event once; refusals and no-ops wrote none.

    A duplicate is defined per kind, from how the services call history.record: a reply or
    a note is one Event naming its row; a move to a stage happens once per cycle; a restart
    opens one cycle; a cycle records "no product change needed" once; assignment and state
    Events chain (checked above), so a repeated write would change nothing and fail there.
    """
    made = Counter(o.op for o in done)
    kinds = Counter(e.kind for e in history)
    moves = made["advance"] + sum(1 for o in done if o.op == "no_change" and o.version)
    assert kinds[EventKind.STAGE_CHANGED] == moves, where
    assert kinds[EventKind.RESTARTED] == made["restart"], where
    assert kinds[EventKind.ASSIGNED] == made["claim"] + made["assign"], where
    assert kinds[EventKind.UNASSIGNED] == made["unassign"], where
    assert kinds[EventKind.STATE_CHANGED] == made["snooze"] + made["close"] + made["reopen"], where
    assert kinds[EventKind.NOTE_ADDED] == made["note"], where
    assert kinds[EventKind.REPLY_LOGGED] == made["reply"], where
    assert kinds[EventKind.NO_CHANGE_RECORDED] == made["no_change"], where
    assert set(kinds) <= VERSIONED_KINDS | {
        EventKind.NOTE_ADDED,
        EventKind.REPLY_LOGGED,
        EventKind.NO_CHANGE_RECORDED,
    }, where

    def once(kind, key):
        keys = [key(e) for e in history if e.kind == kind]
        assert len(keys) == len(set(keys)), f"{where}: {kind} written twice"
        return set(keys)

    replies = Message.objects.filter(conversation=conversation, direction=Direction.OUTBOUND)
    assert once(EventKind.REPLY_LOGGED, lambda e: e.data["message"]) == set(
        replies.values_list("pk", flat=True)
    ), where
    notes = Note.objects.filter(conversation=conversation)
    assert once(EventKind.NOTE_ADDED, lambda e: e.data["note"]) == set(
        notes.values_list("pk", flat=True)
    ), where
    once(EventKind.STAGE_CHANGED, lambda e: (e.cycle, e.to_stage))
    once(EventKind.RESTARTED, lambda e: e.cycle)
    once(EventKind.NO_CHANGE_RECORDED, lambda e: e.cycle)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite serialises writers and has no row locks (no SELECT … FOR UPDATE SKIP "
    "LOCKED): sixteen concurrent writers need PostgreSQL; CI runs this with DATABASE_URL set",
)
def test_sixteen_people_racing_on_twenty_conversations_break_no_invariant(clock, queue, capsys):
    outcomes, start, first_event, elapsed = soak(clock, workers=16, operations=1500)
    summarise(capsys, outcomes, elapsed, 16)

    check_invariants(outcomes, start, first_event)
    results = Counter(o.result for o in outcomes)
    assert results["VersionConflict"] > 0  # people acting on a page someone else changed
    assert elapsed < 60


def test_one_person_working_the_same_mix_alone_breaks_no_invariant(clock, queue, capsys):
    """The same checks without concurrency (and on SQLite): what the rules refuse and what
    the history says do not depend on racing."""
    outcomes, start, first_event, elapsed = soak(clock, workers=1, operations=400)
    summarise(capsys, outcomes, elapsed, 1)

    check_invariants(outcomes, start, first_event)
