"""django-rq jobs. Each takes ids, re-fetches, does only what is missing, and may run twice.

Without REDIS_URL the queue runs jobs inline, in-process (see config/settings.py).

Notifications are in the app (a Notification row) and, when ENGAGE_EMAIL_NOTIFICATIONS is
on and the user has an address, by email too. The row is what makes a job idempotent: it is
unique per (user, key), and a notice is emailed only by the run that created its row.
"""

import logging
from datetime import timedelta

import django_rq
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from engage.choices import EventKind
from engage.models import Conversation, Event, FeedbackLink, FeedbackTicket, Notification

log = logging.getLogger(__name__)


def enqueue(func, *args, **kwargs):
    """Enqueue on the default queue. Call it from transaction.on_commit."""
    return django_rq.get_queue("default").enqueue(func, *args, **kwargs)


def emails_enabled() -> bool:
    """Whether notices also go by email: off unless settings.ENGAGE_EMAIL_NOTIFICATIONS."""
    return settings.ENGAGE_EMAIL_NOTIFICATIONS


def _notify(
    user, key: str, text: str, *, subject: str, body: str = "", conversation=None, ticket=None
) -> bool:
    """Write the in-app notice once per (user, key) and, the first time only, email it.

    Returns whether this run created the notice. The row is committed before the mail goes
    out (no mail about something that may roll back); if sending fails, the row is removed
    again and the error raised, so that the job fails and a retry does both once more.
    """
    with transaction.atomic():
        notification, created = Notification.objects.get_or_create(
            user=user,
            key=key,
            defaults={"text": text[:500], "conversation": conversation, "ticket": ticket},
        )
    if created and emails_enabled() and user.email:
        try:
            send_mail(subject, body or text, None, [user.email])
        except Exception:
            log.exception("Could not email notice %s to user %s", key, user.pk)
            notification.delete()
            raise
    return created


def _link_to(path: str) -> str:
    """The page's full address when ENGAGE_SITE_URL names the site, else nothing."""
    site = settings.ENGAGE_SITE_URL.rstrip("/")
    return f"{site}{path}" if site else ""


def _email_body(*paragraphs: str) -> str:
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph) + "\n"


def notify_follow_ups(ticket_id: int) -> int:
    """Tell each assignee whose conversation waits for news of this ticket. Idempotent.

    The email carries the product team's note (the follow-up Event's `data["note"]`).
    """
    ticket = FeedbackTicket.objects.filter(pk=ticket_id).first()
    if ticket is None:
        return 0
    conversations = list(
        Conversation.objects.filter(
            feedback_links__ticket=ticket, needs_follow_up=True, assignee__isnull=False
        ).select_related("assignee")
    )
    notes = _follow_up_notes(ticket, [conversation.pk for conversation in conversations])
    sent = 0
    for conversation in conversations:
        text = _("Tell the person: “%(title)s” is now %(status)s (conversation #%(id)s).") % {
            "title": ticket.title,
            "status": ticket.get_status_display(),
            "id": conversation.pk,
        }
        note = notes.get(conversation.pk, "")
        if note:
            text += " " + _("Tell them: %(note)s") % {"note": note}
        body = _email_body(
            text,
            _("The product team's note: %(note)s") % {"note": note} if note else "",
            _link_to(reverse("conversation", args=[conversation.pk])),
        )
        key = f"follow-up:{ticket.pk}:{ticket.status}:{conversation.pk}"
        sent += _notify(
            conversation.assignee,
            key,
            text,
            subject=_("[engage] Tell the person: “%(title)s” is %(status)s")
            % {"title": ticket.title, "status": ticket.get_status_display()},
            body=body,
            conversation=conversation,
            ticket=ticket,
        )
    return sent


def _follow_up_notes(ticket: FeedbackTicket, conversation_ids: list[int]) -> dict[int, str]:
    """The note of the latest follow-up each conversation got for this ticket (one query)."""
    if not conversation_ids:
        return {}
    notes: dict[int, str] = {}
    for conversation_id, data in (
        Event.objects.filter(
            kind=EventKind.FOLLOW_UP_FLAGGED,
            conversation_id__in=conversation_ids,
            data__ticket=ticket.pk,
        )
        .order_by("created_at", "id")
        .values_list("conversation_id", "data")
    ):
        if isinstance(data, dict):
            notes[conversation_id] = str(data.get("note") or "")
    return notes


def notify_new_evidence(link_id: int) -> bool:
    """Tell a ticket's owner that new evidence arrived. Idempotent."""
    link = (
        FeedbackLink.objects.select_related("ticket__owner", "conversation__contact")
        .filter(pk=link_id)
        .first()
    )
    if link is None or link.ticket.owner is None:
        return False
    text = _("New evidence for “%(title)s” from conversation #%(id)s.") % {
        "title": link.ticket.title,
        "id": link.conversation_id,
    }
    contact = link.conversation.contact
    body = _email_body(
        text,
        _("%(person)s said: “%(quote)s”")
        % {"person": contact.name or contact.handle, "quote": link.quote},
        _link_to(reverse("feedback_ticket", args=[link.ticket_id])),
    )
    return _notify(
        link.ticket.owner,
        f"evidence:{link.pk}",
        text,
        subject=_("[engage] New evidence for “%(title)s”") % {"title": link.ticket.title},
        body=body,
        conversation=link.conversation,
        ticket=link.ticket,
    )


# Listening -------------------------------------------------------------------------------


def enqueue_enrichment(message_ids: list[int]) -> None:
    """Queue enrichment for stored messages. Called on commit, robustly: if Redis is down
    the messages stay stored with `enriched_at` empty and the sweeper enriches them later."""
    enqueue(enrich_messages, list(message_ids))


def enrich_messages(message_ids: list[int]) -> int:
    """Language, sentiment, priority, routing for these messages. Idempotent."""
    from engage.services import enrichment

    return enrichment.enrich(message_ids)


def sweep_unenriched(older_than_seconds: int = 60, limit: int = 50_000) -> int:
    """Enrich what was stored but never enriched (Redis was down, a worker died). Scheduled
    every minute; the age threshold leaves fresh messages to their own job."""
    from django.utils import timezone

    from engage.models import Message
    from engage.services import enrichment

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        Message.objects.filter(enriched_at__isnull=True, created_at__lt=cutoff)
        .exclude(conversation__isnull=True)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    done = 0
    for start in range(0, len(ids), 500):
        done += enrichment.enrich(ids[start : start + 500])
    return done


# Notices whose job could not be queued (Redis down) are sent by the sweep within this.
NOTICE_SWEEP_WINDOW = timedelta(days=1)


def sweep_notices(limit: int = 1000) -> int:
    """Send the notices a job should have sent but that was never queued (Redis was down
    when the change committed): new evidence for a ticket's owner, and follow-ups of the
    tickets shipped or declined, over the last NOTICE_SWEEP_WINDOW. Scheduled every five
    minutes; every notice is idempotent by its key, so sending twice tells once."""
    from django.db.models import CharField, Exists, OuterRef, Value
    from django.db.models.functions import Cast, Concat
    from django.utils import timezone

    from engage.choices import CLOSED_TICKET_STATUSES

    since = timezone.now() - NOTICE_SWEEP_WINDOW
    told = Notification.objects.filter(
        user=OuterRef("ticket__owner"),
        key=Concat(Value("evidence:"), Cast(OuterRef("pk"), CharField())),
    )
    links = list(
        FeedbackLink.objects.filter(created_at__gte=since, ticket__owner__isnull=False)
        .exclude(Exists(told))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    sent = sum(notify_new_evidence(pk) for pk in links)
    closed = FeedbackTicket.objects.filter(
        status__in=CLOSED_TICKET_STATUSES, status_changed_at__gte=since
    ).values_list("pk", flat=True)[:limit]
    return sent + sum(notify_follow_ups(pk) for pk in closed)


def poll_due_feeds() -> int:
    """Queue a poll for each feed that is due. Scheduled every minute (engage/cron.py)."""
    from engage.services import sources

    due = sources.due_feeds()
    for source_id in due:
        enqueue(poll_feed, source_id)
    return len(due)


def poll_feed(source_id: int):
    """Poll one feed. Two runs at once: one polls, the other returns (see sources.poll)."""
    from engage.services import sources

    return sources.poll(source_id)


# SLAs ------------------------------------------------------------------------------------


def snapshot_figures():
    """Compute the dashboard's funnel and first responses of its preset periods (7, 30 and 90
    days up to now), which the page then reads instead of aggregating for each view.
    Scheduled every minute (engage/cron.py); running it twice leaves the newer figures."""
    from engage.services import figures

    figures.take_figures_snapshots()


def check_slas():
    """Flag conversations about to miss (or past) their first-response target, raise new
    breaches one priority level, notify, and take the hourly backlog snapshot. Scheduled
    every minute (engage/cron.py); idempotent (see engage.services.sla)."""
    from engage.services import sla

    return sla.check()
