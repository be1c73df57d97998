"""Marking in-app notifications as read. Only their owner can."""

from django.utils import timezone

from engage.models import Notification


def mark_read(user, *, notification_id: int | None = None) -> int:
    """Mark one notification (or all, with None) of `user` as read; return how many."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if notification_id is not None:
        unread = unread.filter(pk=notification_id)
    return unread.update(read_at=timezone.now())
