"""Who has a conversation open right now. Presence is a heartbeat, not history: it records
no Event and changes no version."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from engage import permissions
from engage.models import Presence


def touch(conversation_id: int, *, user) -> None:
    """Record that `user` has the conversation open now."""
    permissions.require_view(user)
    now = timezone.now()
    updated = Presence.objects.filter(conversation_id=conversation_id, user=user).update(
        seen_at=now
    )
    if not updated:
        try:
            with transaction.atomic():
                Presence.objects.create(conversation_id=conversation_id, user=user, seen_at=now)
        except IntegrityError:
            # Another tab of the same person created it first, or the conversation is gone.
            Presence.objects.filter(conversation_id=conversation_id, user=user).update(seen_at=now)


def leave(conversation_id: int, *, user) -> None:
    Presence.objects.filter(conversation_id=conversation_id, user=user).delete()
