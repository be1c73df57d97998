"""Whether a community manager takes new conversations by round robin (the header's
"Available for new conversations" / "Away" toggle). Each person sets only their own; staff
change anyone's, and their cap of open conversations, in the admin."""

from django.db import transaction
from django.utils.translation import gettext as _

from engage import permissions
from engage.models import Availability


@transaction.atomic
def set_available(user, *, available: bool) -> Availability:
    """Mark `user` available for new conversations, or away. Idempotent: setting the state
    the person is already in changes nothing (not even the round-robin turn).

    Raises PermissionDenied for anyone who cannot work conversations.
    """
    permissions.require(
        user is not None and permissions.can_work(user),
        _("Only community managers take new conversations."),
    )
    # The row is locked so that the round robin (which locks it too) and this toggle
    # never interleave; get_or_create copes with two first toggles at once.
    availability, created = Availability.objects.select_for_update().get_or_create(
        user=user, defaults={"is_available": available}
    )
    if not created and availability.is_available != available:
        availability.is_available = available
        availability.save(update_fields=["is_available"])
    return availability


def is_available(user) -> bool | None:
    """The header's state: None for whoever cannot work conversations (no query), else
    whether they take new conversations (one query; no row yet means away)."""
    if not permissions.can_work(user):
        return None
    return Availability.objects.filter(user=user, is_available=True).exists()
