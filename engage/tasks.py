"""django-rq jobs. Each takes ids, re-fetches, does only what is missing, and may run twice.

Without REDIS_URL the queue runs jobs inline, in-process (see config/settings.py).
"""

import logging

import django_rq
from django.utils.translation import gettext as _

from engage.models import Conversation, FeedbackLink, FeedbackTicket, Notification

log = logging.getLogger(__name__)


def enqueue(func, *args, **kwargs):
    """Enqueue on the default queue. Call it from transaction.on_commit."""
    return django_rq.get_queue("default").enqueue(func, *args, **kwargs)


def _notify(user, key: str, text: str, *, conversation=None, ticket=None) -> bool:
    _notification, created = Notification.objects.get_or_create(
        user=user,
        key=key,
        defaults={"text": text[:500], "conversation": conversation, "ticket": ticket},
    )
    return created


def notify_follow_ups(ticket_id: int) -> int:
    """Tell each assignee whose conversation waits for news of this ticket. Idempotent."""
    ticket = FeedbackTicket.objects.filter(pk=ticket_id).first()
    if ticket is None:
        return 0
    conversations = Conversation.objects.filter(
        feedback_links__ticket=ticket, needs_follow_up=True, assignee__isnull=False
    ).select_related("assignee")
    sent = 0
    for conversation in conversations:
        text = _("Tell the person: “%(title)s” is now %(status)s (conversation #%(id)s).") % {
            "title": ticket.title,
            "status": ticket.get_status_display(),
            "id": conversation.pk,
        }
        key = f"follow-up:{ticket.pk}:{ticket.status}:{conversation.pk}"
        sent += _notify(conversation.assignee, key, text, conversation=conversation, ticket=ticket)
    return sent


def notify_new_evidence(link_id: int) -> bool:
    """Tell a ticket's owner that new evidence arrived. Idempotent."""
    link = FeedbackLink.objects.select_related("ticket__owner").filter(pk=link_id).first()
    if link is None or link.ticket.owner is None:
        return False
    text = _("New evidence for “%(title)s” from conversation #%(id)s.") % {
        "title": link.ticket.title,
        "id": link.conversation_id,
    }
    return _notify(
        link.ticket.owner,
        f"evidence:{link.pk}",
        text,
        conversation=link.conversation,
        ticket=link.ticket,
    )
