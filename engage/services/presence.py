"""Who has a conversation open right now. Presence is a heartbeat, not history: it records
no Event and changes no version."""

from django.utils import timezone

from engage import permissions
from engage.models import Presence


def touch(conversation_id: int, *, user) -> None:
    """Record that `user` has the conversation open now: one upsert."""
    permissions.require_view(user)
    Presence.objects.bulk_create(
        [Presence(conversation_id=conversation_id, user=user, seen_at=timezone.now())],
        update_conflicts=True,
        unique_fields=["conversation", "user"],
        update_fields=["seen_at"],
    )
