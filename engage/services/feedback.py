"""Writes on product feedback: tickets, evidence links, status changes and the loop back."""

from collections.abc import Iterable
from functools import partial

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from engage import history, permissions, tasks
from engage.choices import CLOSED_TICKET_STATUSES, EventKind, State, TicketStatus
from engage.errors import Conflict, InvalidInput
from engage.models import Conversation, Event, FeedbackLink, FeedbackTicket
from engage.services import retry_on_deadlock
from engage.services.conversations import lock_conversation

User = get_user_model()


def _lock_ticket(ticket_id: int, *, field: str = "ticket") -> FeedbackTicket:
    try:
        return FeedbackTicket.objects.select_for_update().get(pk=ticket_id)
    except FeedbackTicket.DoesNotExist:
        raise InvalidInput(
            _("Ticket %(id)s does not exist.") % {"id": ticket_id}, field=field
        ) from None


def _refuse_merged(ticket: FeedbackTicket) -> None:
    """A merged ticket is a signpost to the kept one: nothing changes on it any more."""
    if ticket.merged_into_id is not None:
        raise Conflict(
            _("Ticket #%(id)s was merged into #%(into)s: work on that one instead.")
            % {"id": ticket.pk, "into": ticket.merged_into_id}
        )


def _status_note(ticket: FeedbackTicket) -> str:
    """The note of the change that brought the ticket to its current status, if any."""
    event = (
        Event.objects.filter(
            ticket=ticket, kind=EventKind.TICKET_STATUS_CHANGED, data__to=ticket.status
        )
        .order_by("-created_at", "-id")
        .only("reason")
        .first()
    )
    return event.reason if event is not None else ""


# The stored counts (FeedbackTicket.COUNTS) of a ticket without links.
NO_EVIDENCE = {
    "demand": 0,
    "evidence_count": 0,
    "told_count": 0,
    "told_people": 0,
    "latest_evidence_at": None,
}


def ticket_counts(ticket_ids: list[int]) -> dict[int, dict]:
    """What the links of each ticket add up to, by ticket id (tickets without links are
    missing). One aggregate query, served by the links' (ticket, conversation) index.

    demand: distinct people (contacts) linked; evidence_count: links; told_count: links whose
    person was told; told_people: distinct people told; latest_evidence_at: the newest link.
    """
    told = Q(told_at__isnull=False)
    rows = (
        FeedbackLink.objects.filter(ticket__in=ticket_ids)
        .order_by()  # not the links' default order: it would split the groups
        .values("ticket")
        .annotate(
            demand=Count("conversation__contact", distinct=True),
            evidence_count=Count("pk"),
            told_count=Count("pk", filter=told),
            told_people=Count("conversation__contact", filter=told, distinct=True),
            latest_evidence_at=Max("created_at"),
        )
    )
    return {row.pop("ticket"): row for row in rows}


def refresh_ticket_counts(ticket_ids: Iterable[int]) -> dict[int, dict]:
    """Recount the stored counts of these tickets from their links and save the ones that
    changed; return every ticket's counts by id. At most three queries, whatever the number
    of links.

    Call it in the transaction that deletes or moves links or changes the person of a
    linked conversation (merges), after the change: the counts then commit (or roll back)
    with it. Linking and telling add to the counts instead (_count_link, count_told).
    """
    ids = sorted(set(ticket_ids))
    if not ids:
        return {}
    # Lock the tickets (in primary-key order, like every lock on several rows) before
    # counting: a transaction changing the same ticket's links meanwhile waits here, then
    # counts what this one committed, so neither saves a count that misses the other's change.
    tickets = list(
        FeedbackTicket.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .only("pk", *FeedbackTicket.COUNTS)
    )
    found = ticket_counts(ids)
    counts, changed = {}, []
    for ticket in tickets:
        counts[ticket.pk] = found.get(ticket.pk, NO_EVIDENCE)
        if any(getattr(ticket, name) != value for name, value in counts[ticket.pk].items()):
            for name, value in counts[ticket.pk].items():
                setattr(ticket, name, value)
            changed.append(ticket)
    if changed:
        FeedbackTicket.objects.bulk_update(changed, FeedbackTicket.COUNTS)
    return counts


def _recount(*tickets: FeedbackTicket) -> None:
    """refresh_ticket_counts for tickets at hand, which then carry their new counts too."""
    counts = refresh_ticket_counts(ticket.pk for ticket in tickets)
    for ticket in tickets:
        for name, value in counts.get(ticket.pk, NO_EVIDENCE).items():
            setattr(ticket, name, value)


# Linking evidence and telling people happen all day, and the most demanded tickets have
# tens of thousands of links: a recount joins each to its conversation for the person (half
# a second for 19,000 links among a million conversations). So these two add their change
# to the stored counts instead, after looking up only the links of the same person (a few,
# through the conversations' contact index and link_unique). They run under the ticket's
# lock, so that lookup sees every link committed before: the counts stay what a recount
# would find. Merges, rarer and wider, recount.


def _count_link(ticket: FeedbackTicket, link: FeedbackLink, *, contact_id: int) -> None:
    """Add a link just made to the stored counts of its ticket, locked by the caller."""
    asked_before = (
        FeedbackLink.objects.filter(ticket=ticket, conversation__contact_id=contact_id)
        .exclude(pk=link.pk)
        .exists()
    )
    ticket.evidence_count += 1
    if not asked_before:
        ticket.demand += 1
    if ticket.latest_evidence_at is None or link.created_at > ticket.latest_evidence_at:
        ticket.latest_evidence_at = link.created_at
    ticket.save(update_fields=["evidence_count", "demand", "latest_evidence_at"])


def count_told(ticket_ids: Iterable[int], *, conversation: Conversation) -> None:
    """Add to the stored counts of these tickets the conversation's links to them, just
    marked told (services.conversations.log_reply): one more link told on each, and one
    more person told unless another conversation of theirs was told about it before.
    Three queries; none without tickets."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return
    # Locked in primary-key order before looking: telling the same person from another
    # conversation at the same moment waits here, then finds them told already.
    tickets = list(
        FeedbackTicket.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .only("pk", "told_count", "told_people")
    )
    told_before = set(
        FeedbackLink.objects.filter(
            ticket__in=ids,
            told_at__isnull=False,
            conversation__contact_id=conversation.contact_id,
        )
        .exclude(conversation=conversation)
        .values_list("ticket", flat=True)
    )
    for ticket in tickets:
        ticket.told_count += 1
        if ticket.pk not in told_before:
            ticket.told_people += 1
    FeedbackTicket.objects.bulk_update(tickets, ["told_count", "told_people"])


@retry_on_deadlock
@transaction.atomic
def create_ticket(
    *,
    actor,
    title: str,
    problem: str = "",
    product_area: str = "",
    conversation_id: int | None = None,
    quote: str = "",
) -> FeedbackTicket:
    """Open a ticket; from a conversation, that conversation becomes its first evidence."""
    permissions.require_link_evidence(actor)
    if not title or not title.strip():
        raise InvalidInput(_("A ticket needs a title."), field="title")
    ticket = FeedbackTicket.objects.create(
        title=title.strip(),
        problem=problem.strip(),
        product_area=product_area.strip(),
        created_by=actor,
    )
    history.record(
        EventKind.TICKET_CREATED, ticket=ticket, actor=actor, data={"title": ticket.title}
    )
    if conversation_id is not None:
        _link(ticket, conversation_id, quote=quote or ticket.title, actor=actor)
    return ticket


@retry_on_deadlock
@transaction.atomic
def link_evidence(ticket_id: int, conversation_id: int, *, actor, quote: str) -> FeedbackLink:
    """Link a conversation to a ticket with the quote that shows the need.

    The link counts as the reaction of the conversation's current cycle. Linking to a
    ticket that already shipped or was declined asks for the person to be told at once.
    Raises Conflict when the conversation is already evidence for this ticket.
    """
    permissions.require_link_evidence(actor)
    ticket = _lock_ticket(ticket_id)
    _refuse_merged(ticket)
    return _link(ticket, conversation_id, quote=quote, actor=actor)


def _link(ticket: FeedbackTicket, conversation_id: int, *, quote: str, actor) -> FeedbackLink:
    if not quote or not quote.strip():
        raise InvalidInput(_("Quote the words that show the need."), field="quote")
    conversation = lock_conversation(conversation_id)
    try:
        with transaction.atomic():
            link = FeedbackLink.objects.create(
                ticket=ticket,
                conversation=conversation,
                quote=quote.strip(),
                cycle=conversation.cycle,
                created_by=actor,
            )
    except IntegrityError:
        raise Conflict(
            _("Conversation %(conversation)s is already evidence for this ticket.")
            % {"conversation": conversation.pk}
        ) from None
    _count_link(ticket, link, contact_id=conversation.contact_id)
    history.record(
        EventKind.FEEDBACK_LINKED,
        conversation=conversation,
        actor=actor,
        data={"ticket": ticket.pk, "title": ticket.title, "link": link.pk},
    )
    if ticket.status in CLOSED_TICKET_STATUSES:
        _flag_follow_ups(ticket, [conversation.pk], actor=actor, note=_status_note(ticket))
    # Robust: by now the link (and the move to sell it may allow) is committed, and Redis
    # being down must not answer that with an error page. The notice is then not queued;
    # nothing sends it later yet (tests/test_faults.py marks that as expected to fail).
    transaction.on_commit(partial(tasks.enqueue, tasks.notify_new_evidence, link.pk), robust=True)
    return link


def _flag_follow_ups(
    ticket: FeedbackTicket, conversation_ids: list[int], *, actor, note: str = ""
) -> None:
    """Mark conversations as waiting to be told about the ticket, with one Event each.

    `note` is what the product team wants the people told (the status change's note): it
    goes into each Event's data so that the conversation page and the notification job
    can show the community manager what to say.
    """
    if not conversation_ids:
        return
    # Lock in primary-key order so two tickets shipping at once cannot deadlock.
    locked = list(
        Conversation.objects.filter(pk__in=conversation_ids).order_by("pk").select_for_update()
    )
    Conversation.objects.filter(pk__in=conversation_ids).update(
        needs_follow_up=True, version=F("version") + 1, updated_at=timezone.now()
    )
    # Telling the person is work again: a closed or snoozed conversation opens, or its
    # follow-up would hide from the queue, which shows the open ones. (A merged conversation
    # stays closed; its evidence moved to the kept one anyway.)
    reopened = [c for c in locked if c.state != State.OPEN and c.merged_into_id is None]
    Conversation.objects.filter(pk__in=[c.pk for c in reopened]).update(
        state=State.OPEN, snoozed_until=None
    )
    history.record_many(
        [
            Event(
                kind=EventKind.STATE_CHANGED,
                conversation=conversation,
                actor=actor,
                cycle=conversation.cycle,
                reason=_("The person must be told about “%(title)s”.") % {"title": ticket.title},
                data={"from": conversation.state, "to": State.OPEN, "until": None},
            )
            for conversation in reopened
        ]
        + [
            Event(
                kind=EventKind.FOLLOW_UP_FLAGGED,
                conversation=conversation,
                actor=actor,
                cycle=conversation.cycle,
                data={
                    "ticket": ticket.pk,
                    "title": ticket.title,
                    "status": ticket.status,
                    **({"note": note} if note else {}),
                },
            )
            for conversation in locked
        ]
    )
    # Robust, as above: the follow-ups are committed and show in the queue without the job.
    transaction.on_commit(partial(tasks.enqueue, tasks.notify_follow_ups, ticket.pk), robust=True)


@retry_on_deadlock
@transaction.atomic
def change_ticket_status(ticket_id: int, status: str, *, actor, note: str = "") -> FeedbackTicket:
    """Move a ticket to `status`. Shipping or declining asks for every person who asked
    (and has not been told yet) to be told: their conversations get a follow-up.

    `note` is the message for the people who asked: it is the status Event's reason and the
    follow-ups carry it (`data["note"]`). Raises InvalidInput for an unknown status or
    ticket, Conflict for a merged ticket.
    """
    permissions.require_manage_tickets(actor)
    if status not in TicketStatus.values:
        raise InvalidInput(
            _("“%(status)s” is not a ticket status: use %(choices)s.")
            % {"status": status, "choices": ", ".join(TicketStatus.values)},
            field="status",
        )
    ticket = _lock_ticket(ticket_id)
    _refuse_merged(ticket)
    if ticket.status == status:
        return ticket
    previous = ticket.status
    ticket.status, ticket.status_changed_at = status, timezone.now()
    ticket.save(update_fields=["status", "status_changed_at", "updated_at"])
    history.record(
        EventKind.TICKET_STATUS_CHANGED,
        ticket=ticket,
        actor=actor,
        reason=note.strip(),
        data={"from": previous, "to": status},
    )
    if status in CLOSED_TICKET_STATUSES:
        untold = ticket.links.filter(told_at__isnull=True).values_list("conversation_id", flat=True)
        _flag_follow_ups(ticket, list(untold), actor=actor, note=note.strip())
    return ticket


@transaction.atomic
def update_ticket(
    ticket_id: int,
    *,
    actor,
    title: str | None = None,
    problem: str | None = None,
    product_area: str | None = None,
    owner=None,
    clear_owner: bool = False,
) -> FeedbackTicket:
    """Edit a ticket's text or owner. Only the fields given change.

    Raises InvalidInput (a blank title, an owner outside the product team), Conflict for a
    merged ticket.
    """
    permissions.require_manage_tickets(actor)
    ticket = _lock_ticket(ticket_id)
    _refuse_merged(ticket)
    changes = {}
    if title is not None:
        if not title.strip():
            raise InvalidInput(_("A ticket needs a title."), field="title")
        changes["title"] = title.strip()
    if problem is not None:
        changes["problem"] = problem.strip()
    if product_area is not None:
        changes["product_area"] = product_area.strip()
    if owner is not None or clear_owner:
        if owner is not None and not permissions.can_manage_tickets(owner):
            raise InvalidInput(
                _("%(user)s cannot own tickets: only the product team can.")
                % {"user": owner.get_username()},
                field="owner",
            )
        changes["owner"] = owner
    changed = {name: value for name, value in changes.items() if getattr(ticket, name) != value}
    if not changed:
        return ticket
    for name, value in changed.items():
        setattr(ticket, name, value)
    ticket.save(update_fields=[*changed, "updated_at"])
    history.record(
        EventKind.TICKET_UPDATED,
        ticket=ticket,
        actor=actor,
        data={
            name: (value.get_username() if name == "owner" and value else value)
            for name, value in changed.items()
        },
    )
    return ticket


@retry_on_deadlock
@transaction.atomic
def merge_tickets(duplicate_id: int, into_id: int, *, actor) -> FeedbackTicket:
    """Merge the duplicate ticket into the kept one (`into_id`) and return the kept one.

    The duplicate's evidence moves to the kept ticket, so its people count there once. A
    conversation that is evidence for both keeps the kept ticket's link; the dropped quote is
    recorded in the merge Events. A moved link keeps its "told" time only when the kept
    ticket has the status the person was told about; otherwise the person has not heard of
    the kept ticket's outcome yet, and when that ticket already shipped or was declined their
    conversation gets a follow-up, as when linking. Both tickets get a TICKET_MERGED Event;
    the duplicate points to the kept one (its page redirects there) and leaves the board, and
    tickets merged into it earlier now point to the kept one too.

    Product team and staff only. Raises InvalidInput for the same ticket twice or an unknown
    one, Conflict when either ticket was already merged.
    """
    permissions.require_manage_tickets(actor)
    if duplicate_id == into_id:
        raise InvalidInput(_("A ticket cannot be merged into itself."), field="into")
    # Lock both rows in primary-key order, so that merging A into B while someone merges B
    # into A cannot deadlock: the second waits, then sees the first's merge and is refused.
    locked = {
        ticket.pk: ticket
        for ticket in FeedbackTicket.objects.select_for_update()
        .filter(pk__in=[duplicate_id, into_id])
        .order_by("pk")
    }
    if duplicate_id not in locked:
        raise InvalidInput(
            _("Ticket %(id)s does not exist.") % {"id": duplicate_id}, field="ticket"
        )
    if into_id not in locked:
        raise InvalidInput(_("Ticket %(id)s does not exist.") % {"id": into_id}, field="into")
    duplicate, kept = locked[duplicate_id], locked[into_id]
    if duplicate.merged_into_id is not None:
        raise Conflict(
            _("Ticket #%(id)s was already merged into #%(into)s.")
            % {"id": duplicate.pk, "into": duplicate.merged_into_id}
        )
    if kept.merged_into_id is not None:
        raise Conflict(
            _("Ticket #%(id)s was itself merged into #%(into)s: merge into that one instead.")
            % {"id": kept.pk, "into": kept.merged_into_id}
        )

    kept_conversations = set(kept.links.values_list("conversation_id", flat=True))
    moving, dropped = [], []
    # Locked too: a reply logged meanwhile sets their "told" time (log_reply).
    for link in duplicate.links.select_for_update().order_by("pk"):
        if link.conversation_id in kept_conversations:
            dropped.append(link)
        else:
            moving.append(link)
    FeedbackLink.objects.filter(pk__in=[link.pk for link in dropped]).delete()
    FeedbackLink.objects.filter(pk__in=[link.pk for link in moving]).update(ticket=kept)
    if kept.status != duplicate.status or kept.status not in CLOSED_TICKET_STATUSES:
        FeedbackLink.objects.filter(pk__in=[link.pk for link in moving]).update(told_at=None)
        untold = [link.conversation_id for link in moving]
    else:
        untold = [link.conversation_id for link in moving if link.told_at is None]

    # The duplicate is left with no evidence; the kept ticket's people may be fewer than
    # both added up (one person asked on both).
    _recount(duplicate, kept)

    duplicate.merged_into = kept
    duplicate.save(update_fields=["merged_into", "updated_at"])
    FeedbackTicket.objects.filter(merged_into=duplicate).update(
        merged_into=kept, updated_at=timezone.now()
    )
    details = {
        "moved": [link.conversation_id for link in moving],
        "dropped": [
            {"conversation": link.conversation_id, "quote": link.quote} for link in dropped
        ],
    }
    history.record(
        EventKind.TICKET_MERGED,
        ticket=duplicate,
        actor=actor,
        data={"into": kept.pk, "title": kept.title, **details},
    )
    history.record(
        EventKind.TICKET_MERGED,
        ticket=kept,
        actor=actor,
        data={"from": duplicate.pk, "title": duplicate.title, **details},
    )
    if kept.status in CLOSED_TICKET_STATUSES and untold:
        _flag_follow_ups(kept, untold, actor=actor, note=_status_note(kept))
    return kept
