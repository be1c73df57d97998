"""The SLA job (engage.services.sla, scheduled as engage.tasks.check_slas): conversations
waiting for a first answer are flagged about to breach, then breached; a breach raises the
priority one level, once; the assignee (or the team) is told once per step; answered and
closed ones are cleared; the backlog snapshot is taken once per hour, the workload snapshot
every run; the queue shows the flag. Times are made by hand, and every check runs twice."""

import re
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.formats import date_format

from engage import metrics, tasks
from engage.choices import EventKind, Priority, Role, SlaState, State
from engage.models import (
    Availability,
    BacklogSnapshot,
    Conversation,
    Event,
    Notification,
    WorkloadSnapshot,
)
from engage.services import conversations as services
from engage.services import sla
from engage.services.merge import merge
from engage.services.targets import set_target
from tests import factories
from tests.conftest import run_in_threads, work

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 9, 10, tzinfo=UTC)
NOTHING = sla.SlaResult(at_risk=0, breached=0, notified=0, snapshot=False, cleared=0)


def waiting(
    *, due: datetime, priority: Priority = Priority.NORMAL, assignee=None, **fields
) -> Conversation:
    """A conversation waiting for its first answer, due at `due` (fixture state: the due
    time follows from when it arrived, which the test chooses)."""
    conversation = factories.conversation()
    if assignee is not None:
        services.assign(conversation.pk, assignee, actor=assignee)
    Conversation.objects.filter(pk=conversation.pk).update(
        priority=priority, first_response_due_at=due, received_at=due - timedelta(hours=1), **fields
    )
    return fresh(conversation)


def fresh(conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def check_twice(now: datetime) -> sla.SlaResult:
    """Run the check, then again at the same time: the second run must change nothing."""
    result = sla.check(now)
    assert sla.check(now) == NOTHING
    return result


def notices(user) -> list[Notification]:
    return list(Notification.objects.filter(user=user).order_by("pk"))


def at(when: datetime) -> str:
    """A due time as the notices write it (the site's time zone, same day)."""
    return date_format(timezone.localtime(when), "H:i")


def available(*users):
    for user in users:
        Availability.objects.create(user=user, is_available=True)


# Flags -------------------------------------------------------------------------------------


def test_inside_the_last_quarter_of_its_target_a_conversation_is_about_to_breach(manager):
    # Normal: 24 hours, so the last 6 hours warn.
    inside = waiting(due=T0 + timedelta(hours=5, minutes=59), assignee=manager)
    outside = waiting(due=T0 + timedelta(hours=6, minutes=1), assignee=manager)

    result = check_twice(T0)

    assert (result.at_risk, result.breached, result.notified) == (1, 0, 1)
    assert fresh(inside).sla_state == SlaState.AT_RISK
    assert fresh(outside).sla_state == SlaState.OK
    # Nothing else about the conversation changes, and no Event is recorded.
    assert fresh(inside).priority == Priority.NORMAL
    assert fresh(inside).version == inside.version
    assert not Event.objects.filter(conversation=inside, kind=EventKind.PRIORITY_CHANGED).exists()


def test_the_warning_starts_at_least_fifteen_minutes_before(staff, manager):
    # Urgent at 20 minutes: a quarter is 5 minutes, so the 15-minute floor applies.
    set_target(Priority.URGENT, actor=staff, minutes=20)
    inside = waiting(due=T0 + timedelta(minutes=14), priority=Priority.URGENT)
    outside = waiting(due=T0 + timedelta(minutes=16), priority=Priority.URGENT)

    check_twice(T0)

    assert fresh(inside).sla_state == SlaState.AT_RISK
    assert fresh(outside).sla_state == SlaState.OK


def test_past_due_is_breached_and_one_priority_level_higher_once(manager):
    due = T0 - timedelta(minutes=1)
    conversation = waiting(due=due, assignee=manager)

    result = check_twice(T0)

    assert (result.at_risk, result.breached) == (0, 1)
    after = fresh(conversation)
    assert after.sla_state == SlaState.BREACHED
    assert after.priority == Priority.HIGH
    assert after.first_response_due_at == due  # already first in the queue's due order
    assert after.version == conversation.version + 1
    raised = Event.objects.get(conversation=conversation, kind=EventKind.PRIORITY_CHANGED)
    assert raised.data == {"from": "normal", "to": "high", "by": "sla"}
    assert (raised.actor, raised.cycle) == (None, 1)
    # A later run neither raises it again nor records anything.
    events = conversation.events.count()
    assert sla.check(T0 + timedelta(hours=2)).breached == 0
    assert fresh(conversation).priority == Priority.HIGH
    assert conversation.events.count() == events


def test_an_urgent_breach_stays_urgent_and_records_nothing(manager):
    conversation = waiting(due=T0 - timedelta(hours=1), priority=Priority.URGENT)

    result = check_twice(T0)

    assert result.breached == 1
    after = fresh(conversation)
    assert (after.sla_state, after.priority, after.version) == (
        SlaState.BREACHED,
        Priority.URGENT,
        conversation.version,
    )
    assert not conversation.events.filter(kind=EventKind.PRIORITY_CHANGED).exists()


def test_about_to_breach_then_breached_tells_the_assignee_at_each_step_once(manager):
    due = T0 + timedelta(minutes=10)
    conversation = waiting(due=due, assignee=manager)

    assert check_twice(T0).notified == 1
    assert fresh(conversation).sla_state == SlaState.AT_RISK
    later = check_twice(T0 + timedelta(minutes=11))
    assert (later.at_risk, later.breached, later.notified) == (0, 1, 1)

    first, second = notices(manager)
    pk = conversation.pk
    assert first.key == f"sla:at_risk:{pk}:1"
    assert first.text == (
        f"Conversation #{pk} is about to miss its first-response target (due {at(due)})."
    )
    assert second.key == f"sla:breached:{pk}:1"
    assert second.text == (
        f"Conversation #{pk} missed its first-response target (due {at(due)}): "
        "it is now high priority."
    )
    assert first.conversation_id == second.conversation_id == pk


def test_a_snoozed_conversation_still_waits_and_is_flagged(manager):
    conversation = waiting(
        due=T0 - timedelta(minutes=5),
        state=State.SNOOZED,
        snoozed_until=T0 + timedelta(days=1),
    )

    check_twice(T0)

    assert fresh(conversation).sla_state == SlaState.BREACHED


def test_answered_closed_and_merged_conversations_are_cleared(manager):
    answered, closed, merged, kept, untouched = (
        waiting(due=T0 - timedelta(minutes=n), assignee=manager) for n in range(1, 6)
    )
    Conversation.objects.filter(pk=untouched.pk).update(first_response_at=T0 - timedelta(hours=1))
    sla.check(T0)
    flagged = Conversation.objects.filter(sla_state=SlaState.BREACHED)
    assert set(flagged.values_list("pk", flat=True)) == {
        answered.pk,
        closed.pk,
        merged.pk,
        kept.pk,
    }
    services.log_reply(answered.pk, actor=manager, text="Thanks, we are on it.")
    services.set_state(closed.pk, State.CLOSED, actor=manager)
    merge(merged.pk, kept.pk, actor=manager)
    before = Notification.objects.count()

    result = check_twice(T0 + timedelta(minutes=1))

    assert result.cleared == 3
    assert [fresh(c).sla_state for c in (answered, closed, merged, kept, untouched)] == [
        SlaState.OK,
        SlaState.OK,
        SlaState.OK,
        SlaState.BREACHED,
        SlaState.OK,
    ]
    assert Notification.objects.count() == before


def test_a_longer_target_clears_the_flag_and_a_second_breach_raises_nothing(staff, manager):
    received = T0 - timedelta(hours=5)
    conversation = waiting(due=T0 - timedelta(hours=1), assignee=manager)
    Conversation.objects.filter(pk=conversation.pk).update(received_at=received)
    sla.check(T0)
    assert fresh(conversation).priority == Priority.HIGH

    # Staff give high priority three days: it is within target again.
    set_target(Priority.HIGH, actor=staff, minutes=72 * 60)
    assert check_twice(T0).cleared == 1
    assert fresh(conversation).sla_state == SlaState.OK

    # Six hours: due in one hour, inside the last quarter (1 h 30 min): about to breach.
    set_target(Priority.HIGH, actor=staff, minutes=6 * 60)
    assert check_twice(T0).at_risk == 1
    assert fresh(conversation).sla_state == SlaState.AT_RISK

    # It breaches again: flagged, but the job raised it once already in this cycle, and
    # the assignee was told of the breach already.
    again = check_twice(T0 + timedelta(hours=2))
    assert (again.breached, again.notified) == (1, 0)
    after = fresh(conversation)
    assert (after.sla_state, after.priority) == (SlaState.BREACHED, Priority.HIGH)
    assert conversation.events.filter(kind=EventKind.PRIORITY_CHANGED).count() == 1
    assert [n.key.split(":")[1] for n in notices(manager)] == ["breached", "at_risk"]


def test_a_breached_conversation_due_later_but_soon_is_about_to_breach_again(staff, manager):
    conversation = waiting(due=T0 - timedelta(minutes=1), priority=Priority.URGENT)
    sla.check(T0)
    # Fixture state: a person gave it more time (the due time moved to ten minutes ahead).
    Conversation.objects.filter(pk=conversation.pk).update(
        first_response_due_at=T0 + timedelta(minutes=10)
    )

    result = check_twice(T0)

    assert (result.at_risk, result.cleared) == (1, 0)
    assert fresh(conversation).sla_state == SlaState.AT_RISK


def test_large_backlogs_are_flagged_in_batches_and_over_runs_when_time_is_short(
    monkeypatch, manager
):
    monkeypatch.setattr(sla, "BATCH", 2)
    for n in range(5):
        waiting(due=T0 - timedelta(minutes=n + 1))
    assert sla.check(T0).breached == 5

    for n in range(5):
        waiting(due=T0 + timedelta(minutes=n + 1))
    monkeypatch.setattr(sla, "TIME_BUDGET_SECONDS", -1)  # one batch per step and run
    assert [sla.check(T0).at_risk for _ in range(4)] == [2, 2, 1, 0]
    assert Conversation.objects.exclude(sla_state="").count() == 10


def test_old_due_times_are_swept_by_the_first_run_of_each_hour(manager):
    sla.check(T0)  # this hour's sweep is done
    # Fixture state: an old conversation reopened, another answered, after that sweep.
    reopened = waiting(due=T0 - timedelta(days=3), assignee=manager)
    answered = waiting(due=T0 - timedelta(days=3), assignee=manager, sla_state="breached")
    Conversation.objects.filter(pk=answered.pk).update(first_response_at=T0)

    assert check_twice(T0 + timedelta(minutes=10)) == NOTHING

    next_hour = sla.check(T0 + timedelta(minutes=50))  # 10:00: a new hour
    assert (next_hour.snapshot, next_hour.breached, next_hour.cleared) == (True, 1, 1)
    assert (fresh(reopened).sla_state, fresh(reopened).priority) == ("breached", Priority.HIGH)
    assert fresh(answered).sla_state == ""
    assert notices(manager) == []  # breached three days ago: not news


def test_a_sweep_can_be_asked_for_to_catch_up_at_once(manager):
    sla.check(T0)
    old = waiting(due=T0 - timedelta(days=30))

    assert sla.check(T0, sweep=True).breached == 1
    assert fresh(old).sla_state == SlaState.BREACHED


def test_the_command_runs_the_check_where_no_scheduler_runs(manager, monkeypatch):
    # The embedded default has no scheduler: `manage.py check_slas` does one run.
    monkeypatch.setattr(timezone, "now", lambda: T0)  # every run in the same hour
    sla.check()  # this hour's sweep is done, before these came
    conversation = waiting(due=T0 - timedelta(minutes=1), assignee=manager)
    old = waiting(due=T0 - timedelta(days=30))

    out = StringIO()
    call_command("check_slas", stdout=out)
    assert fresh(conversation).sla_state == SlaState.BREACHED
    assert "1 breached" in out.getvalue()
    assert fresh(old).sla_state == ""

    call_command("check_slas", "--sweep", stdout=out)
    assert fresh(old).sla_state == SlaState.BREACHED
    assert len(notices(manager)) == 1


# Notices -----------------------------------------------------------------------------------


def test_an_unassigned_conversation_is_announced_to_the_available_community_managers():
    anna, bruno, carla = (factories.user(n, role=Role.COMMUNITY_MANAGER) for n in "abc")
    product = factories.user("pat", role=Role.PRODUCT_TEAM)
    available(anna, bruno, product)
    Availability.objects.create(user=carla, is_available=False)
    conversation = waiting(due=T0 - timedelta(minutes=1))

    assert check_twice(T0).notified == 2

    assert [len(notices(u)) for u in (anna, bruno, carla, product)] == [1, 1, 0, 0]
    assert notices(anna)[0].text.endswith("Nobody has taken it yet.")
    assert notices(anna)[0].key == f"sla:breached:{conversation.pk}:1"


def test_when_nobody_is_available_every_active_community_manager_is_told(staff):
    anna, bruno = (factories.user(n, role=Role.COMMUNITY_MANAGER) for n in ("anna", "bruno"))
    gone = factories.user("gone", role=Role.COMMUNITY_MANAGER, is_active=False)
    product = factories.user("pat", role=Role.PRODUCT_TEAM)
    waiting(due=T0 + timedelta(minutes=30))

    assert check_twice(T0).notified == 2

    assert [len(notices(u)) for u in (anna, bruno, gone, product, staff)] == [1, 1, 0, 0, 0]


def test_a_deactivated_assignee_is_replaced_by_the_team(manager, other_manager):
    conversation = waiting(due=T0 - timedelta(minutes=1), assignee=manager)
    manager.is_active = False
    manager.save(update_fields=["is_active"])

    check_twice(T0)

    assert notices(manager) == []
    assert [n.key for n in notices(other_manager)] == [f"sla:breached:{conversation.pk}:1"]


def test_the_assignee_alone_is_told_and_only_their_conversations(manager, other_manager):
    mine = waiting(due=T0 - timedelta(minutes=1), assignee=manager)
    waiting(due=T0 + timedelta(days=2), assignee=manager)  # within target

    check_twice(T0)

    assert [n.conversation_id for n in notices(manager)] == [mine.pk]
    assert notices(other_manager) == []


def test_notices_are_emailed_once(settings, mailoutbox):
    settings.ENGAGE_EMAIL_NOTIFICATIONS = True
    settings.ENGAGE_SITE_URL = "https://engage.example"
    mia = factories.user("mia", email="mia@example.com")
    conversation = waiting(due=T0 - timedelta(minutes=1), assignee=mia)

    check_twice(T0)

    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == ["mia@example.com"]
    assert email.subject == (
        f"[engage] Conversation #{conversation.pk} missed its first-response target"
    )
    assert "it is now high priority." in email.body
    assert f"https://engage.example/conversations/{conversation.pk}/" in email.body


def test_notices_over_the_cap_wait_for_the_next_run(monkeypatch, manager):
    monkeypatch.setattr(sla, "NOTICE_LIMIT", 2)
    first, second, third = (
        waiting(due=T0 - timedelta(minutes=n), assignee=manager) for n in (3, 2, 1)
    )

    assert sla.check(T0).notified == 2
    assert sla.check(T0).notified == 1
    assert sla.check(T0).notified == 0

    # Most overdue first.
    assert [n.conversation_id for n in notices(manager)] == [first.pk, second.pk, third.pk]


def test_a_team_is_never_split_between_two_runs(monkeypatch):
    monkeypatch.setattr(sla, "NOTICE_LIMIT", 1)
    team = [factories.user(f"cm{n}", role=Role.COMMUNITY_MANAGER) for n in range(3)]
    waiting(due=T0 - timedelta(minutes=2))
    waiting(due=T0 - timedelta(minutes=1))

    assert sla.check(T0).notified == 3
    assert sla.check(T0).notified == 3
    assert sla.check(T0).notified == 0
    assert [len(notices(person)) for person in team] == [2, 2, 2]


def test_a_stale_breach_is_flagged_and_raised_but_not_announced(manager):
    old = waiting(due=T0 - sla.RECENT - timedelta(minutes=1), assignee=manager)
    recent = waiting(due=T0 - sla.RECENT + timedelta(minutes=1), assignee=manager)

    result = check_twice(T0)

    assert (result.breached, result.notified) == (2, 1)
    assert fresh(old).sla_state == SlaState.BREACHED
    assert fresh(old).priority == Priority.HIGH
    assert [n.conversation_id for n in notices(manager)] == [recent.pk]


# The backlog snapshot ----------------------------------------------------------------------


def test_the_backlog_is_snapshotted_once_an_hour(manager):
    open_mine = factories.conversation()
    services.assign(open_mine.pk, manager, actor=manager)
    factories.conversation()  # open, unassigned
    snoozed = factories.conversation()
    services.set_state(
        snoozed.pk, State.SNOOZED, actor=manager, snoozed_until=timezone.now() + timedelta(days=1)
    )
    closed = factories.conversation()
    services.set_state(closed.pk, State.CLOSED, actor=manager)

    assert sla.check(T0).snapshot is True
    assert sla.check(T0 + timedelta(minutes=49)).snapshot is False
    factories.conversation()
    assert sla.check(T0 + timedelta(minutes=50)).snapshot is True

    first, second = BacklogSnapshot.objects.order_by("taken_at")
    assert first.taken_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    # Not closed (open or snoozed), and of those the unassigned ones.
    assert (first.open, first.unassigned) == (3, 2)
    assert second.taken_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert (second.open, second.unassigned) == (4, 3)


def test_every_run_takes_the_workload_snapshot_and_keeps_only_the_latest(manager):
    mine = factories.conversation()
    services.assign(mine.pk, manager, actor=manager)
    factories.conversation()  # open, unassigned
    closed = factories.conversation()
    services.set_state(closed.pk, State.CLOSED, actor=manager)
    started = timezone.now()

    sla.check(T0)
    first = WorkloadSnapshot.objects.get()
    factories.conversation()
    sla.check(T0 + timedelta(minutes=1))
    second = WorkloadSnapshot.objects.get()

    # Taken when counted (whatever `now` the check was given), and the dashboard reads it.
    assert started <= first.taken_at <= second.taken_at <= timezone.now()
    assert second.pk != first.pk
    channel = mine.channel
    assert sorted(first.counts, key=str) == sorted(
        [[None, "", "listen", channel, 1], [manager.pk, "manager", "listen", channel, 1]], key=str
    )
    assert sorted(second.counts, key=str) == sorted(
        [[None, "", "listen", channel, 2], [manager.pk, "manager", "listen", channel, 1]], key=str
    )
    workload = metrics.workload(metrics.Scope(start=T0 - timedelta(days=30), end=T0), snapshot=True)
    assert workload.as_of == second.taken_at
    assert [(p.username, p.total) for p in workload.people] == [("manager", 1), ("", 2)]


def test_the_hour_is_the_utc_hour_whatever_the_time_zone_of_now(manager):
    rome = T0.astimezone(timezone.get_default_timezone())

    sla.check(rome)

    assert BacklogSnapshot.objects.get().taken_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


# The job -----------------------------------------------------------------------------------


def test_the_scheduled_job_runs_the_check_and_may_run_twice(
    queue, manager, django_capture_on_commit_callbacks
):
    conversation = waiting(due=timezone.now() - timedelta(minutes=1), assignee=manager)

    with django_capture_on_commit_callbacks(execute=True):
        tasks.enqueue(tasks.check_slas)
        tasks.enqueue(tasks.check_slas)
    work(queue)

    assert fresh(conversation).sla_state == SlaState.BREACHED
    assert fresh(conversation).priority == Priority.HIGH
    assert len(notices(manager)) == 1
    assert BacklogSnapshot.objects.count() == 1
    again = tasks.check_slas()
    assert (again.at_risk, again.breached, again.notified, again.cleared) == (0, 0, 0, 0)


def _idle_check_queries(manager, count: int) -> int:
    for n in range(count):
        waiting(due=T0 - timedelta(minutes=n + 1), assignee=manager)
        waiting(due=T0 + timedelta(minutes=n + 1))
    sla.check(T0)
    with CaptureQueriesContext(connection) as captured:
        assert sla.check(T0 + timedelta(seconds=1)) == NOTHING
    return len(captured)


def test_a_run_with_nothing_to_change_runs_a_fixed_number_of_queries(manager):
    assert _idle_check_queries(manager, 2) == _idle_check_queries(manager, 20)
    # The targets; per step (two clearings, at risk, breached) one select, in a savepoint
    # here (the test runs in a transaction); the snapshot's check; the workload snapshot
    # (count, insert, delete the earlier); the team (available, then everyone: none is
    # available) and the notices owed.
    assert _idle_check_queries(manager, 1) == 1 + 4 * 3 + 1 + 3 + 2 + 1


# Concurrency (PostgreSQL) ------------------------------------------------------------------

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks and SKIP LOCKED need PostgreSQL; CI runs this with DATABASE_URL set",
)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_four_runs_at_once_raise_and_tell_once():
    manager = factories.user("racer", role=Role.COMMUNITY_MANAGER)
    conversations = [
        waiting(due=T0 - timedelta(minutes=n + 1), assignee=manager) for n in range(30)
    ]

    results = run_in_threads(4, lambda i: sla.check(T0))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.breached for r in results) == 30
    assert sum(r.notified for r in results) == 30
    assert sum(r.snapshot for r in results) == 1
    assert set(Conversation.objects.values_list("sla_state", "priority")) == {
        (SlaState.BREACHED, Priority.HIGH)
    }
    assert Event.objects.filter(kind=EventKind.PRIORITY_CHANGED).count() == len(conversations)
    assert Notification.objects.filter(user=manager).count() == 30


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_row_someone_is_changing_is_left_to_the_next_run():
    manager = factories.user("busy", role=Role.COMMUNITY_MANAGER)
    busy = waiting(due=T0 - timedelta(minutes=1), assignee=manager)
    free = waiting(due=T0 - timedelta(minutes=2), assignee=manager)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row():
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(pk=busy.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(10)
        first = sla.check(T0)
    finally:
        release.set()
        holder.join()

    assert first.breached == 1
    assert (fresh(busy).sla_state, fresh(free).sla_state) == ("", SlaState.BREACHED)
    assert sla.check(T0).breached == 1
    assert fresh(busy).sla_state == SlaState.BREACHED


# The queue ---------------------------------------------------------------------------------


def badge(body: str, conversation) -> str | None:
    row = re.search(rf'<tr [^>]*data-row-id="{conversation.pk}".*?</tr>', body, re.S).group(0)
    found = re.search(
        r'<span class="badge sla[^"]*" data-sla="([a-z_]+)">'
        r'<span class="visually-hidden">([^<]*)</span>([^<]*)</span>',
        row,
    )
    return found and (found.group(1), found.group(3))


def test_the_queue_shows_the_flag_next_to_the_due_time(client, manager):
    now = timezone.now()
    late = waiting(due=now - timedelta(minutes=5))
    soon = waiting(due=now + timedelta(minutes=10))
    calm = waiting(due=now + timedelta(days=2))
    sla.check(now)
    client.force_login(manager)

    body = client.get("/queue/").content.decode()

    assert badge(body, late) == ("breached", "Breached")
    assert badge(body, soon) == ("at_risk", "About to breach")
    assert badge(body, calm) is None
    # Screen readers hear what the badge is about.
    assert "First-response target: </span>About to breach" in body


def test_a_stale_flag_is_not_shown_once_answered(client, manager):
    now = timezone.now()
    conversation = waiting(due=now - timedelta(minutes=5), assignee=manager)
    sla.check(now)
    services.log_reply(conversation.pk, actor=manager, text="Sorry for the wait!")
    client.force_login(manager)

    body = client.get("/queue/?state=").content.decode()

    assert fresh(conversation).sla_state == SlaState.BREACHED  # until the next run
    assert badge(body, conversation) is None
