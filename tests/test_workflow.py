"""The cycle's rules over every (from, to) pair, without a database."""

import itertools

import pytest

from engage import workflow
from engage.choices import Stage, State
from engage.errors import TransitionNotAllowed, VersionConflict

STAGES = list(workflow.ORDER)


def facts(stage=Stage.LISTEN, **overrides) -> workflow.CycleFacts:
    values = {
        "stage": stage,
        "state": State.OPEN,
        "version": 3,
        "has_assignee": True,
        "has_reply_in_cycle": True,
        "has_reaction_in_cycle": True,
    }
    values.update(overrides)
    return workflow.CycleFacts(**values)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(STAGES, STAGES)))
def test_only_the_next_stage_is_reachable(current, target):
    here, there = STAGES.index(current), STAGES.index(target)
    if there == here + 1:
        assert workflow.check_advance(facts(current), to=target) == target
    else:
        with pytest.raises(TransitionNotAllowed):
            workflow.check_advance(facts(current), to=target)


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        (
            Stage.LISTEN,
            Stage.SELL,
            "Interact and react come before sell: this conversation is still in listen.",
        ),
        (
            Stage.LISTEN,
            Stage.REACT,
            "Interact comes before react: this conversation is still in listen.",
        ),
        (
            Stage.INTERACT,
            Stage.SELL,
            "React comes before sell: this conversation is still in interact.",
        ),
    ],
)
def test_skipping_names_the_missing_steps(current, target, message):
    with pytest.raises(TransitionNotAllowed) as refused:
        workflow.check_advance(facts(current), to=target)
    assert refused.value.message == message


def test_stepping_back_points_to_restart():
    with pytest.raises(TransitionNotAllowed) as refused:
        workflow.check_advance(facts(Stage.REACT), to=Stage.INTERACT)
    assert "restart" in refused.value.message


def test_staying_put_is_refused():
    with pytest.raises(TransitionNotAllowed) as refused:
        workflow.check_advance(facts(Stage.REACT), to=Stage.REACT)
    assert refused.value.message == "This conversation is already in react."


def test_an_unknown_stage_is_refused_with_the_valid_names():
    with pytest.raises(TransitionNotAllowed) as refused:
        workflow.check_advance(facts(Stage.LISTEN), to="buy")
    assert "listen, interact, react or sell" in refused.value.message


@pytest.mark.parametrize(("current", "expected"), list(zip(STAGES, STAGES[1:], strict=False)))
def test_advance_without_target_goes_one_step(current, expected):
    assert workflow.check_advance(facts(current)) == expected


def test_sell_is_the_last_step():
    with pytest.raises(TransitionNotAllowed) as refused:
        workflow.check_advance(facts(Stage.SELL))
    assert "restart" in refused.value.message


@pytest.mark.parametrize(
    ("current", "missing", "message"),
    [
        (Stage.LISTEN, {"has_assignee": False}, "Assign someone before moving to interact"),
        (Stage.INTERACT, {"has_reply_in_cycle": False}, "Log a reply before moving to react"),
        (
            Stage.REACT,
            {"has_reaction_in_cycle": False},
            "Link a feedback ticket or record that no product change is needed",
        ),
    ],
)
def test_each_guard_refuses_until_met(current, missing, message):
    with pytest.raises(TransitionNotAllowed) as refused:
        workflow.check_advance(facts(current, **missing))
    assert refused.value.message.startswith(message)
    # The same move passes once the guard is met.
    assert workflow.check_advance(facts(current)) == workflow.next_stage(current)


def test_guards_only_apply_to_their_own_step():
    # No assignee does not block interact → react when a reply exists.
    assert workflow.check_advance(facts(Stage.INTERACT, has_assignee=False)) == Stage.REACT


def test_a_stale_version_is_a_conflict():
    with pytest.raises(VersionConflict):
        workflow.check_advance(facts(Stage.LISTEN, version=4), expected_version=3)
    assert workflow.check_advance(facts(Stage.LISTEN, version=4), expected_version=4)


def test_a_closed_conversation_does_not_move():
    with pytest.raises(TransitionNotAllowed) as refused:
        workflow.check_advance(facts(Stage.LISTEN, state=State.CLOSED))
    assert "reopen" in refused.value.message


@pytest.mark.parametrize("current", STAGES)
def test_restart_from_any_stage_goes_to_listen(current):
    assert workflow.check_restart(facts(current), reason="Negative feedback") == Stage.LISTEN


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_restart_needs_a_reason(reason):
    with pytest.raises(TransitionNotAllowed) as refused:
        workflow.check_restart(facts(Stage.REACT), reason=reason)
    assert "reason is required" in refused.value.message
