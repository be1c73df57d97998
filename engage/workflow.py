"""The engagement cycle as data: listen → interact → react → sell, then restart.

Pure functions over plain values: no database, no side effects. Services gather the
facts (`CycleFacts`), call `check_advance` / `check_restart` under a row lock, and write.
Every refusal is a `TransitionNotAllowed` whose message is written for the person who
clicked and names what is missing.
"""

from dataclasses import dataclass

from django.utils.translation import gettext as _

from engage.choices import Stage, State
from engage.errors import TransitionNotAllowed, VersionConflict

__all__ = [
    "TransitionNotAllowed",
    "VersionConflict",
    "CycleFacts",
    "check_advance",
    "check_restart",
]

ORDER: tuple[Stage, ...] = (Stage.LISTEN, Stage.INTERACT, Stage.REACT, Stage.SELL)

# The only forward moves: each stage to the next one.
TRANSITIONS: dict[Stage, Stage] = {ORDER[i]: ORDER[i + 1] for i in range(len(ORDER) - 1)}


@dataclass(frozen=True)
class CycleFacts:
    """What the guards need to know about a conversation, in its current cycle."""

    stage: str
    state: str
    version: int
    has_assignee: bool
    has_reply_in_cycle: bool
    has_reaction_in_cycle: bool


def stage_label(stage: str) -> str:
    return str(Stage(stage).label).lower()


def next_stage(stage: str) -> Stage | None:
    return TRANSITIONS.get(Stage(stage))


def _join(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    return _("%(first)s and %(last)s") % {"first": ", ".join(labels[:-1]), "last": labels[-1]}


def check_version(current_version: int, expected_version: int | None) -> None:
    """Refuse a change made from a stale view of the conversation."""
    if expected_version is not None and expected_version != current_version:
        raise VersionConflict(
            _(
                "Someone else changed this conversation since you opened it "
                "(version %(expected)s, now %(current)s). Review the new state and try again."
            )
            % {"expected": expected_version, "current": current_version}
        )


def check_move(current: str, target: str) -> Stage:
    """Refuse any move but one step forward; return the target stage."""
    try:
        target_stage = Stage(target)
    except ValueError:
        raise TransitionNotAllowed(
            _("“%(target)s” is not a stage: use listen, interact, react or sell.")
            % {"target": target}
        ) from None
    here, there = ORDER.index(Stage(current)), ORDER.index(target_stage)
    if there == here:
        raise TransitionNotAllowed(
            _("This conversation is already in %(stage)s.") % {"stage": stage_label(current)}
        )
    if there < here:
        raise TransitionNotAllowed(
            _(
                "A conversation does not step back from %(current)s to %(target)s: "
                "restart it with a reason to begin a new cycle in listen."
            )
            % {"current": stage_label(current), "target": stage_label(target_stage)}
        )
    if there > here + 1:
        missing = [str(s.label) for s in ORDER[here + 1 : there]]
        verb = _("come before") if len(missing) > 1 else _("comes before")
        raise TransitionNotAllowed(
            _("%(missing)s %(verb)s %(target)s: this conversation is still in %(current)s.")
            % {
                "missing": _join(missing).capitalize(),
                "verb": verb,
                "target": stage_label(target_stage),
                "current": stage_label(current),
            }
        )
    return target_stage


def missing_for(facts: CycleFacts, target: Stage) -> str | None:
    """What the guard of the move into `target` still needs, or None when it is met."""
    if target == Stage.INTERACT and not facts.has_assignee:
        return _("Assign someone before moving to interact: this conversation has no assignee.")
    if target == Stage.REACT and not facts.has_reply_in_cycle:
        return _("Log a reply before moving to react: no reply has been logged in this cycle.")
    if target == Stage.SELL and not facts.has_reaction_in_cycle:
        return _(
            "Link a feedback ticket or record that no product change is needed "
            "before moving to sell."
        )
    return None


def check_advance(
    facts: CycleFacts, *, to: str | None = None, expected_version: int | None = None
) -> Stage:
    """Return the stage an advance leads to, or raise why it may not happen."""
    check_version(facts.version, expected_version)
    if facts.state == State.CLOSED:
        raise TransitionNotAllowed(_("This conversation is closed: reopen it before moving it on."))
    if to is None:
        target = next_stage(facts.stage)
        if target is None:
            raise TransitionNotAllowed(
                _("Sell is the last step: restart the conversation to begin a new cycle.")
            )
    else:
        target = check_move(facts.stage, to)
    problem = missing_for(facts, target)
    if problem:
        raise TransitionNotAllowed(problem)
    return target


def advance_outlook(facts: CycleFacts) -> tuple[Stage | None, str | None]:
    """The stage an advance would lead to and what it still needs (None when it may happen).

    Pages and the API use it to draw the next step; the write still checks the rule itself.
    """
    target = next_stage(facts.stage)
    if target is None:
        return None, None
    try:
        check_advance(facts)
    except TransitionNotAllowed as refusal:
        return target, refusal.message
    return target, None


def check_restart(facts: CycleFacts, *, reason: str, expected_version: int | None = None) -> Stage:
    """A restart goes back to listen from any stage and needs a reason."""
    check_version(facts.version, expected_version)
    if not reason or not reason.strip():
        raise TransitionNotAllowed(
            _("Say why the conversation goes back to listen: a reason is required.")
        )
    if facts.state == State.CLOSED:
        raise TransitionNotAllowed(
            _("This conversation is closed: reopen it before restarting it.")
        )
    return Stage.LISTEN
