"""First-response targets per priority: read by every write that sets a due time, edited
by staff (a change moves the due time of every conversation still waiting at that
priority, in the same transaction)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from engage import permissions
from engage.choices import Priority, State
from engage.errors import InvalidInput
from engage.models import Conversation, ResponseTarget

# A week: anything longer is not a first-response target.
MAX_MINUTES = 7 * 24 * 60


def response_targets() -> dict[int, timedelta]:
    """Each priority's target (one query); the settings' defaults fill any missing row."""
    targets = {
        Priority.from_key(key).value: timedelta(hours=hours)
        for key, hours in settings.ENGAGE_FIRST_RESPONSE_HOURS.items()
    }
    for priority, minutes in ResponseTarget.objects.values_list("priority", "minutes"):
        targets[priority] = timedelta(minutes=minutes)
    return targets


def first_response_due(
    received_at: datetime, priority: int, targets: dict[int, timedelta] | None = None
) -> datetime:
    """When the first answer is due. Pass `targets` when setting many at once."""
    return received_at + (targets or response_targets())[int(priority)]


@transaction.atomic
def set_target(priority: int, *, actor, minutes: int) -> ResponseTarget:
    """Staff change a priority's target; conversations still waiting at that priority get
    their due time from it at once."""
    permissions.require(permissions.is_staff(actor), _("Only staff can change targets."))
    if priority not in Priority.values:
        raise InvalidInput(_("“%(p)s” is not a priority.") % {"p": priority}, field="priority")
    if not 1 <= minutes <= MAX_MINUTES:
        raise InvalidInput(
            _("A target is between 1 minute and 7 days (10,080 minutes)."), field="minutes"
        )
    target, _created = ResponseTarget.objects.select_for_update().get_or_create(
        priority=priority, defaults={"minutes": minutes, "updated_by": actor}
    )
    target.minutes, target.updated_by = minutes, actor
    target.save()
    Conversation.objects.filter(priority=priority, first_response_at__isnull=True).exclude(
        state=State.CLOSED
    ).update(first_response_due_at=F("received_at") + timedelta(minutes=minutes))
    return target
