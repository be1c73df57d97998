"""One action on many conversations: each row through the existing service, on its own.

A bulk action is not one transaction over every row: each row runs the service that does
that action for one conversation (assign, advance, restart, ...), which is itself one
transaction that locks the row and checks the rule. A row the rule refuses is reported with
the service's message and left exactly as it was; the others are done. Nothing is half done.

What the whole request gets wrong (too many rows, no reason for a restart, a snooze in the
past, a person who cannot be assigned) is refused before any row is touched.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from engage import permissions, workflow
from engage.choices import Priority, State
from engage.errors import EngageError, InvalidInput
from engage.services import conversations as conversation_services
from engage.services import tags as tag_services

logger = logging.getLogger(__name__)


def limit() -> int:
    """The most rows one bulk action may touch (setting ENGAGE_BULK_LIMIT)."""
    return int(settings.ENGAGE_BULK_LIMIT)


@dataclass(frozen=True)
class Outcome:
    """What happened to one row: done (`ok`) with what was done, or refused and why."""

    conversation_id: int
    ok: bool
    message: str


@dataclass(frozen=True)
class BulkAction:
    """An action ready to run on one conversation: `step(id, actor)` calls one service and
    returns what it did, in words, or raises the service's EngageError."""

    name: str
    step: Callable[[int, object], str]


def apply(conversation_ids: Iterable[int], action: BulkAction, *, actor) -> list[Outcome]:
    """Run `action` on each conversation, each in its own transaction, in id order.

    Returns one Outcome per distinct id. Raises PermissionDenied (the actor may not change
    conversations) and InvalidInput (no rows, or more than `limit()`) before touching any.
    """
    permissions.require_work(actor)
    ids = sorted({int(pk) for pk in conversation_ids})
    if not ids:
        raise InvalidInput(_("Select at least one conversation."), field="ids")
    if len(ids) > limit():
        raise InvalidInput(
            _("Select at most %(limit)s conversations at a time (you selected %(count)s).")
            % {"limit": limit(), "count": len(ids)},
            field="ids",
        )
    outcomes = []
    for pk in ids:
        try:
            done = action.step(pk, actor)
        except EngageError as refusal:
            outcomes.append(Outcome(pk, False, refusal.message))
        except IntegrityError:
            # The service's transaction rolled the row back; a constraint the rules do
            # not check yet refused it. Report it and go on with the other rows.
            logger.exception("Bulk %s refused by the database on conversation %s", action.name, pk)
            outcomes.append(
                Outcome(pk, False, _("This change conflicts with the conversation's state."))
            )
        else:
            outcomes.append(Outcome(pk, True, done))
    return outcomes


# The actions. Each checks what it can once, for the whole request, then builds the step.


def assign(assignee) -> BulkAction:
    """Give every row to `assignee` (a community manager), or to nobody with None."""
    if assignee is not None and not permissions.can_work(assignee):
        raise InvalidInput(
            _("%(user)s cannot be assigned: only community managers work conversations.")
            % {"user": assignee.get_username()},
            field="assignee",
        )

    def step(pk: int, actor) -> str:
        conversation_services.assign(pk, assignee, actor=actor)
        if assignee is None:
            return _("nobody is assigned now")
        return _("assigned to %(user)s") % {"user": assignee.get_username()}

    return BulkAction("unassign" if assignee is None else "assign", step)


def advance() -> BulkAction:
    def step(pk: int, actor) -> str:
        conversation = conversation_services.advance(pk, actor=actor)
        return _("moved to %(stage)s") % {"stage": workflow.stage_label(conversation.stage)}

    return BulkAction("advance", step)


def restart(reason: str) -> BulkAction:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            _("Say why the conversations go back to listen: a reason is required."),
            field="reason",
        )

    def step(pk: int, actor) -> str:
        conversation = conversation_services.restart(pk, actor=actor, reason=reason)
        return _("back to listen: cycle %(cycle)s begins") % {"cycle": conversation.cycle}

    return BulkAction("restart", step)


def set_priority(priority: str) -> BulkAction:
    try:
        label = Priority.from_key(priority).label
    except KeyError:
        raise InvalidInput(
            _("Unknown priority “%(priority)s”: use low, normal, high or urgent.")
            % {"priority": priority},
            field="priority",
        ) from None

    def step(pk: int, actor) -> str:
        conversation_services.set_priority(pk, priority, actor=actor)
        return _("priority is now %(priority)s") % {"priority": str(label).lower()}

    return BulkAction("priority", step)


def change_tags(*, add=(), remove=()) -> BulkAction:
    add, remove = tag_services.clean_tag_names(add), tag_services.clean_tag_names(remove)
    if not add and not remove:
        raise InvalidInput(_("Name the tags to add or remove."), field="tags")

    def step(pk: int, actor) -> str:
        names = tag_services.change_tags(pk, actor=actor, add=add, remove=remove)
        if not names:
            return _("no tags now")
        return _("tags: %(tags)s") % {"tags": ", ".join(names)}

    return BulkAction("tags", step)


def snooze(until: datetime | None) -> BulkAction:
    if until is None or until <= timezone.now():
        raise InvalidInput(_("Snooze until a time in the future."), field="snoozed_until")
    when = formats.date_format(timezone.localtime(until), "SHORT_DATETIME_FORMAT")

    def step(pk: int, actor) -> str:
        conversation_services.set_state(pk, State.SNOOZED, actor=actor, snoozed_until=until)
        return _("snoozed until %(when)s") % {"when": when}

    return BulkAction("snooze", step)


def close() -> BulkAction:
    def step(pk: int, actor) -> str:
        conversation_services.set_state(pk, State.CLOSED, actor=actor)
        return _("closed")

    return BulkAction("close", step)


def reopen() -> BulkAction:
    def step(pk: int, actor) -> str:
        conversation_services.set_state(pk, State.OPEN, actor=actor)
        return _("reopened")

    return BulkAction("reopen", step)
