"""The domain of DESIGN.md. Constraints and indexes live here; business writes live in services."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from engage.choices import (
    Channel,
    Direction,
    EventKind,
    Priority,
    ReplyLanguage,
    Sentiment,
    SlaState,
    SourceKind,
    Stage,
    State,
    TicketStatus,
)


def _in_choices(field: str, choices) -> Q:
    return Q(**{f"{field}__in": choices.values})


class Source(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    kind = models.CharField(_("kind"), max_length=10, choices=SourceKind.choices)
    url = models.URLField(_("feed URL"), max_length=1000, blank=True)
    keywords = models.CharField(
        _("keywords"), max_length=500, blank=True, help_text=_("Comma-separated brand terms.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # Removing a source keeps its conversations: it only disappears from the list.
    removed_at = models.DateTimeField(_("removed"), null=True, blank=True)

    # Feed polling: how often, what the server said last time, and how it went.
    poll_interval_minutes = models.PositiveIntegerField(_("poll every (minutes)"), default=15)
    next_poll_at = models.DateTimeField(_("next poll"), null=True, blank=True)
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    last_polled_at = models.DateTimeField(_("last polled"), null=True, blank=True)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True)
    failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    items_added_last = models.PositiveIntegerField(_("items added by the last poll"), default=0)
    items_added_total = models.PositiveBigIntegerField(_("items added in all"), default=0)

    class Meta:
        ordering = ["name"]
        verbose_name = _("source")
        verbose_name_plural = _("sources")
        constraints = [
            models.CheckConstraint(
                condition=_in_choices("channel", Channel), name="source_channel_valid"
            ),
            models.CheckConstraint(
                condition=_in_choices("kind", SourceKind), name="source_kind_valid"
            ),
            models.CheckConstraint(
                condition=~Q(kind=SourceKind.FEED) | ~Q(url=""), name="source_feed_has_url"
            ),
            models.CheckConstraint(
                condition=Q(poll_interval_minutes__gte=1), name="source_poll_interval_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    """A person on one channel. Their conversations form one relationship timeline."""

    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    handle = models.CharField(_("handle"), max_length=200)
    name = models.CharField(_("name"), max_length=200, blank=True)
    profile_url = models.URLField(_("profile URL"), max_length=1000, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["handle"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.UniqueConstraint(fields=["channel", "handle"], name="contact_unique_handle"),
            models.CheckConstraint(
                condition=_in_choices("channel", Channel), name="contact_channel_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.handle


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=60, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self) -> str:
        return self.name


# The dashboard funnel's record on each conversation, kept by Conversation.enter_stage.
FUNNEL_RECORD = (
    "interact_reached_at",
    "react_reached_at",
    "sell_reached_at",
    "time_in_listen",
    "time_in_interact",
    "time_in_react",
    "time_in_sell",
)


class Conversation(models.Model):
    # Served by conversation_unique_external_id (source, external_id).
    source = models.ForeignKey(
        Source,
        on_delete=models.PROTECT,
        related_name="conversations",
        verbose_name=_("source"),
        db_index=False,
    )
    external_id = models.CharField(_("external id"), max_length=255)
    # The item's own channel: one API source may push several networks.
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    # Served by conv_contact (contact, received_at).
    contact = models.ForeignKey(
        Contact,
        on_delete=models.PROTECT,
        related_name="conversations",
        verbose_name=_("contact"),
        db_index=False,
    )
    url = models.URLField(_("URL"), max_length=1000, blank=True)
    text = models.TextField(_("text"))
    language = models.CharField(_("language"), max_length=10, blank=True)
    sentiment = models.CharField(
        _("sentiment"), max_length=10, choices=Sentiment.choices, blank=True
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"), choices=Priority.choices, default=Priority.NORMAL
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="conversations")

    stage = models.CharField(_("stage"), max_length=10, choices=Stage.choices, default=Stage.LISTEN)
    cycle = models.PositiveIntegerField(_("cycle"), default=1)
    stage_entered_at = models.DateTimeField(_("in stage since"))
    # One assignee at most: a single nullable foreign key makes two impossible.
    # Served by conv_assignee_due (assignee, stage, due, id).
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
        verbose_name=_("assignee"),
        db_index=False,
    )
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.OPEN)
    snoozed_until = models.DateTimeField(_("snoozed until"), null=True, blank=True)
    needs_follow_up = models.BooleanField(_("needs follow-up"), default=False)

    received_at = models.DateTimeField(_("received"))
    first_response_due_at = models.DateTimeField(_("first response due"))
    first_response_at = models.DateTimeField(_("first response"), null=True, blank=True)
    # Set by the SLA job while the conversation waits for its first response.
    sla_state = models.CharField(
        _("first-response target"), max_length=10, choices=SlaState.choices, blank=True
    )

    # The funnel's record (engage.metrics), kept by enter_stage: when the conversation first
    # reached each later step (in any cycle), and the time it spent in each step over the
    # visits it has left (the current visit counts once it ends).
    interact_reached_at = models.DateTimeField(_("first reached interact"), null=True, blank=True)
    react_reached_at = models.DateTimeField(_("first reached react"), null=True, blank=True)
    sell_reached_at = models.DateTimeField(_("first reached sell"), null=True, blank=True)
    time_in_listen = models.DurationField(_("time spent in listen"), null=True, blank=True)
    time_in_interact = models.DurationField(_("time spent in interact"), null=True, blank=True)
    time_in_react = models.DurationField(_("time spent in react"), null=True, blank=True)
    time_in_sell = models.DurationField(_("time spent in sell"), null=True, blank=True)

    # Set when this conversation was merged into another: it then points there, closed.
    # Few are merged: a partial index (conv_merged_into) serves them.
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="merged_from",
        verbose_name=_("merged into"),
        db_index=False,
    )

    # Optimistic concurrency: every change increments it; callers may send the one they saw.
    version = models.PositiveIntegerField(_("version"), default=1)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="conversation_unique_external_id"
            ),
            models.CheckConstraint(
                condition=_in_choices("stage", Stage), name="conversation_stage_valid"
            ),
            models.CheckConstraint(
                condition=_in_choices("state", State), name="conversation_state_valid"
            ),
            models.CheckConstraint(
                condition=_in_choices("channel", Channel), name="conversation_channel_valid"
            ),
            models.CheckConstraint(
                condition=_in_choices("priority", Priority), name="conversation_priority_valid"
            ),
            models.CheckConstraint(
                condition=Q(sentiment="") | _in_choices("sentiment", Sentiment),
                name="conversation_sentiment_valid",
            ),
            models.CheckConstraint(condition=Q(cycle__gte=1), name="conversation_cycle_positive"),
            models.CheckConstraint(
                condition=_in_choices("sla_state", SlaState), name="conversation_sla_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(version__gte=1), name="conversation_version_positive"
            ),
            models.CheckConstraint(
                condition=~Q(state=State.SNOOZED) | Q(snoozed_until__isnull=False),
                name="conversation_snoozed_has_until",
            ),
            models.CheckConstraint(
                condition=Q(merged_into__isnull=True) | Q(state=State.CLOSED),
                name="conversation_merged_is_closed",
            ),
            models.CheckConstraint(
                condition=~Q(merged_into=F("pk")), name="conversation_not_merged_into_itself"
            ),
        ]
        indexes = [
            # The queue's default order (due time) and its keyset.
            models.Index(fields=["first_response_due_at", "id"], name="conv_due"),
            # The dashboard's cohort (engage.metrics), read from the index alone on PostgreSQL:
            # the received range, with every column its figures read.
            models.Index(
                fields=["received_at", "id"],
                name="conv_cohort",
                include=[
                    "channel",
                    "assignee",
                    "priority",
                    "state",
                    "merged_into",
                    "first_response_at",
                    "first_response_due_at",
                    *FUNNEL_RECORD,
                ],
            ),
            # The dashboard's workload: who carries what, of the conversations not closed.
            models.Index(
                fields=["assignee", "stage", "channel"],
                name="conv_open_load",
                condition=~Q(state=State.CLOSED),
            ),
            models.Index(fields=["stage", "first_response_due_at", "id"], name="conv_stage_due"),
            models.Index(
                fields=["assignee", "stage", "first_response_due_at", "id"],
                name="conv_assignee_due",
            ),
            # Claim next: oldest-due unassigned open conversation of a stage.
            models.Index(
                fields=["stage", "first_response_due_at", "id"],
                name="conv_claimable",
                condition=Q(assignee__isnull=True, state=State.OPEN),
            ),
            models.Index(
                fields=["first_response_due_at", "id"],
                name="conv_claimable_any",
                condition=Q(assignee__isnull=True, state=State.OPEN),
            ),
            models.Index(
                fields=["first_response_due_at", "id"],
                name="conv_follow_up",
                condition=Q(needs_follow_up=True),
            ),
            models.Index(fields=["contact", "received_at"], name="conv_contact"),
            # Waiting for a first answer: the overdue filter and the triage order.
            models.Index(
                fields=["first_response_due_at", "id"],
                name="conv_unanswered",
                condition=Q(first_response_at__isnull=True) & ~Q(state=State.CLOSED),
            ),
            # The same per stage: a stage tab with no waiting rows is proved empty at once.
            models.Index(
                fields=["stage", "first_response_due_at", "id"],
                name="conv_stage_unanswered",
                condition=Q(first_response_at__isnull=True) & ~Q(state=State.CLOSED),
            ),
            # The few conversations that are not open: the snoozed and closed views.
            models.Index(
                fields=["state", "first_response_due_at", "id"],
                name="conv_not_open",
                condition=~Q(state=State.OPEN),
            ),
            # The SLA job (engage.services.sla): those still to flag breached, and flags to
            # clear on conversations answered or closed since.
            models.Index(
                fields=["first_response_due_at", "id"],
                name="conv_sla_unbreached",
                condition=Q(first_response_at__isnull=True)
                & ~Q(state=State.CLOSED)
                & ~Q(sla_state=SlaState.BREACHED),
            ),
            models.Index(
                fields=["merged_into"],
                name="conv_merged_into",
                condition=Q(merged_into__isnull=False),
            ),
            models.Index(
                fields=["first_response_due_at", "id"],
                name="conv_sla_stale",
                condition=~Q(sla_state=SlaState.OK)
                & (Q(first_response_at__isnull=False) | Q(state=State.CLOSED)),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.text[:60]}"

    def enter_stage(self, stage: str, now: datetime) -> list[str]:
        """Move to `stage` at `now` in memory, keeping the funnel's record: the visit of the
        step being left is added to its time, and the first arrival in a later step is kept.
        Returns the fields changed, for the caller's save (every move goes through here)."""
        spent = max(now - self.stage_entered_at, timedelta(0))
        time_field = f"time_in_{self.stage}"
        setattr(self, time_field, (getattr(self, time_field) or timedelta(0)) + spent)
        changed = ["stage", "stage_entered_at", time_field]
        if stage != Stage.LISTEN and getattr(self, f"{stage}_reached_at") is None:
            setattr(self, f"{stage}_reached_at", now)
            changed.append(f"{stage}_reached_at")
        self.stage, self.stage_entered_at = stage, now
        return changed

    def absorb_funnel(self, other: "Conversation") -> list[str]:
        """Take the funnel's record of `other`, merged into this one: the earlier arrival in
        each step and the times added up. Returns the fields changed."""
        changed = []
        for stage in Stage.values[1:]:  # the steps after listen
            field = f"{stage}_reached_at"
            theirs, ours = getattr(other, field), getattr(self, field)
            if theirs is not None and (ours is None or theirs < ours):
                setattr(self, field, theirs)
                changed.append(field)
        for stage in Stage.values:
            field = f"time_in_{stage}"
            theirs = getattr(other, field)
            if theirs is not None:
                setattr(self, field, (getattr(self, field) or timedelta(0)) + theirs)
                changed.append(field)
        return changed

    @property
    def priority_key(self) -> str:
        return Priority(self.priority).key


class Message(models.Model):
    """One entry of a thread: the person's (inbound) or our logged reply (outbound)."""

    # NULL only for our own reply that arrived before the message it answers: it waits,
    # invisible, and joins that message's conversation when it comes.
    # Served by message_thread (conversation, sent_at).
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=_("conversation"),
        null=True,
        blank=True,
        db_index=False,
    )
    # Denormalised from the conversation so the database can guard (source, external id).
    # Served by message_unique_external_id (source, external_id).
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+", db_index=False)
    external_id = models.CharField(_("external id"), max_length=255, null=True, blank=True)
    # The external id of the message this one answers, on the same source.
    in_reply_to = models.CharField(_("in reply to"), max_length=255, blank=True)
    # The same person's same text again within the window: kept, recorded, not a new thread.
    # Few messages are duplicates: a partial index (message_duplicates) serves them.
    duplicate_of = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="duplicates",
        verbose_name=_("duplicate of"),
        db_index=False,
    )
    # A short hash of the normalised text, for the duplicate check.
    content_hash = models.CharField(max_length=16, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True)
    sentiment = models.CharField(
        _("sentiment"), max_length=10, choices=Sentiment.choices, blank=True
    )
    # Set by the enrichment job; NULL means it is still to do (the sweeper looks for it).
    enriched_at = models.DateTimeField(_("enriched"), null=True, blank=True)
    direction = models.CharField(_("direction"), max_length=10, choices=Direction.choices)
    author_handle = models.CharField(_("author handle"), max_length=200, blank=True)
    author_name = models.CharField(_("author name"), max_length=200, blank=True)
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("logged by"),
    )
    text = models.TextField(_("text"))
    url = models.URLField(_("URL"), max_length=1000, blank=True)
    sent_at = models.DateTimeField(_("sent"))
    cycle = models.PositiveIntegerField(_("cycle"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["sent_at", "id"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints = [
            # NULL external ids (replies logged by hand) are distinct, so never collide.
            models.UniqueConstraint(
                fields=["source", "external_id"], name="message_unique_external_id"
            ),
            models.CheckConstraint(
                condition=_in_choices("direction", Direction), name="message_direction_valid"
            ),
            # Only a reply may wait for the message it answers.
            models.CheckConstraint(
                condition=Q(conversation__isnull=False)
                | (Q(direction=Direction.OUTBOUND) & ~Q(in_reply_to="")),
                name="message_waiting_is_reply",
            ),
            models.CheckConstraint(
                condition=Q(sentiment="") | _in_choices("sentiment", Sentiment),
                name="message_sentiment_valid",
            ),
            models.CheckConstraint(
                condition=~Q(duplicate_of=F("pk")), name="message_not_duplicate_of_itself"
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "sent_at"], name="message_thread"),
            # Threading: the replies that wait for (or already answer) a message.
            models.Index(
                fields=["source", "in_reply_to"],
                name="message_in_reply_to",
                condition=~Q(in_reply_to=""),
            ),
            # The duplicate check: same source, person and text.
            models.Index(
                fields=["source", "author_handle", "content_hash", "sent_at"],
                name="message_same_text",
                condition=Q(direction=Direction.INBOUND, duplicate_of__isnull=True),
            ),
            # The sweeper's work list stays tiny: only what is not enriched yet.
            models.Index(
                fields=["created_at"],
                name="message_to_enrich",
                condition=Q(enriched_at__isnull=True),
            ),
            models.Index(
                fields=["duplicate_of"],
                name="message_duplicates",
                condition=Q(duplicate_of__isnull=False),
            ),
            models.Index(
                fields=["conversation", "cycle"],
                name="message_replies",
                condition=Q(direction=Direction.OUTBOUND),
            ),
        ]

    def __str__(self) -> str:
        return self.text[:60]


class Note(models.Model):
    """An internal note, never shown outside. Markdown, sanitised when rendered."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="notes", verbose_name=_("conversation")
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("author"),
    )
    text = models.TextField(_("text"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("note")
        verbose_name_plural = _("notes")
        indexes = [models.Index(fields=["conversation", "created_at"], name="note_thread")]

    def __str__(self) -> str:
        return self.text[:60]


class FeedbackTicket(models.Model):
    title = models.CharField(_("title"), max_length=200)
    problem = models.TextField(_("problem statement"), blank=True)
    product_area = models.CharField(_("product area"), max_length=100, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=TicketStatus.choices, default=TicketStatus.NEW
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_tickets",
        verbose_name=_("owner"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    # Set when this ticket was merged into another as a duplicate: its page redirects there.
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="merged_from",
        verbose_name=_("merged into"),
    )
    status_changed_at = models.DateTimeField(_("status changed"), auto_now_add=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # What the links add up to, stored so that a list of tickets reads them instead of
    # aggregating every link. services.feedback keeps them in the transaction that changes
    # the links (linking and telling add to them, merges recount). The database default
    # lets bulk loaders (manage.py demo) insert tickets without them, then recount.
    demand = models.PositiveIntegerField(
        _("demand"), default=0, db_default=0, help_text=_("Distinct people who asked.")
    )
    evidence_count = models.PositiveIntegerField(_("evidence"), default=0, db_default=0)
    told_count = models.PositiveIntegerField(_("links told"), default=0, db_default=0)
    told_people = models.PositiveIntegerField(_("people told"), default=0, db_default=0)
    latest_evidence_at = models.DateTimeField(_("latest evidence"), null=True, blank=True)

    # The stored counts, in one place for the services that keep them and the reads.
    COUNTS = ("demand", "evidence_count", "told_count", "told_people", "latest_evidence_at")

    class Meta:
        verbose_name = _("feedback ticket")
        verbose_name_plural = _("feedback tickets")
        constraints = [
            models.CheckConstraint(
                condition=_in_choices("status", TicketStatus), name="ticket_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(merged_into=F("pk")), name="ticket_not_merged_into_itself"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="ticket_status"),
            # The board's order (queries.TICKET_RANK) among the tickets it shows: within each
            # status (the board's columns) and over all of them (the API list, the dashboard).
            models.Index(
                F("status"),
                F("demand").desc(),
                F("latest_evidence_at").desc(),
                F("id").desc(),
                name="ticket_rank_status",
                condition=Q(merged_into__isnull=True),
            ),
            models.Index(
                F("demand").desc(),
                F("latest_evidence_at").desc(),
                F("id").desc(),
                name="ticket_rank",
                condition=Q(merged_into__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return self.title


class FeedbackLink(models.Model):
    """Evidence: a conversation (and so a person) that shows the need, with the quote."""

    ticket = models.ForeignKey(
        FeedbackTicket, on_delete=models.CASCADE, related_name="links", verbose_name=_("ticket")
    )
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="feedback_links",
        verbose_name=_("conversation"),
    )
    quote = models.TextField(_("quote"))
    # The conversation's cycle when the link was made: it counts as that cycle's reaction.
    cycle = models.PositiveIntegerField(_("cycle"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # When the person was told that the ticket shipped or was declined.
    told_at = models.DateTimeField(_("told"), null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("feedback link")
        verbose_name_plural = _("feedback links")
        constraints = [
            models.UniqueConstraint(fields=["ticket", "conversation"], name="link_unique"),
        ]
        indexes = [models.Index(fields=["conversation", "cycle"], name="link_conversation")]

    def __str__(self) -> str:
        return f"{self.ticket_id} ← {self.conversation_id}"


class Event(models.Model):
    """Append-only history. Written only by engage.history."""

    # Served by event_conversation (conversation, created_at).
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
        db_index=False,
    )
    # Served by event_ticket (ticket, created_at).
    ticket = models.ForeignKey(
        FeedbackTicket,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
        db_index=False,
    )
    kind = models.CharField(_("kind"), max_length=30, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    from_stage = models.CharField(_("from"), max_length=10, choices=Stage.choices, blank=True)
    to_stage = models.CharField(_("to"), max_length=10, choices=Stage.choices, blank=True)
    cycle = models.PositiveIntegerField(_("cycle"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    data = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("event")
        verbose_name_plural = _("events")
        constraints = [
            models.CheckConstraint(
                condition=_in_choices("kind", EventKind), name="event_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(conversation__isnull=False) | Q(ticket__isnull=False),
                name="event_has_subject",
            ),
            models.CheckConstraint(
                condition=Q(from_stage="") | _in_choices("from_stage", Stage),
                name="event_from_stage_valid",
            ),
            models.CheckConstraint(
                condition=Q(to_stage="") | _in_choices("to_stage", Stage),
                name="event_to_stage_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="event_conversation"),
            models.Index(fields=["ticket", "created_at"], name="event_ticket"),
            models.Index(fields=["conversation", "cycle", "kind"], name="event_cycle_kind"),
            # The dashboard's tickets shipped or declined in a period.
            models.Index(
                fields=["created_at"],
                name="event_ticket_moves",
                include=["ticket", "data"],
                condition=Q(kind=EventKind.TICKET_STATUS_CHANGED),
            ),
            # The dashboard's restarts of a period.
            models.Index(
                fields=["created_at"],
                name="event_restarts",
                include=["conversation", "reason"],
                condition=Q(kind=EventKind.RESTARTED),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.created_at:%Y-%m-%d %H:%M}"


class Notification(models.Model):
    """An in-app notice for one user. `key` makes the job that writes it idempotent."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    key = models.CharField(max_length=200)
    text = models.CharField(_("text"), max_length=500)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, null=True, blank=True)
    ticket = models.ForeignKey(FeedbackTicket, on_delete=models.CASCADE, null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="notification_once")]
        indexes = [
            models.Index(
                fields=["user", "created_at"],
                name="notification_unread",
                condition=Q(read_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return self.text


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is stored; the token itself is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(_("prefix"), max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class SavedView(models.Model):
    """A person's named queue filter: the query string of /queue/."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    name = models.CharField(_("name"), max_length=80)
    query = models.CharField(_("filter"), max_length=2000, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("saved view")
        verbose_name_plural = _("saved views")
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="saved_view_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class SavedReply(models.Model):
    """A canned response, per language. `{name}` in the text becomes the contact's name."""

    title = models.CharField(_("title"), max_length=100)
    language = models.CharField(
        _("language"), max_length=10, choices=ReplyLanguage.choices, blank=True
    )
    text = models.TextField(_("text"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["language", "title"]
        verbose_name = _("saved reply")
        verbose_name_plural = _("saved replies")
        constraints = [
            models.UniqueConstraint(fields=["language", "title"], name="saved_reply_unique_title"),
            models.CheckConstraint(
                condition=_in_choices("language", ReplyLanguage), name="saved_reply_language_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Presence(models.Model):
    """Who has a conversation open: refreshed by the page while it stays open."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="presences"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    seen_at = models.DateTimeField()

    class Meta:
        verbose_name = _("presence")
        verbose_name_plural = _("presences")
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="presence_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} on {self.conversation_id}"


class Team(models.Model):
    """A group of community managers that routing rules can hand conversations to."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="teams", verbose_name=_("members")
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self) -> str:
        return self.name


class Availability(models.Model):
    """Whether a community manager takes new conversations by round robin, and how many."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="availability",
        verbose_name=_("user"),
    )
    is_available = models.BooleanField(_("available for new conversations"), default=False)
    # NULL: settings.ENGAGE_ROUND_ROBIN_CAP.
    max_open = models.PositiveIntegerField(_("most open conversations"), null=True, blank=True)
    # Round robin: the next conversation goes to whoever waited longest since their last.
    last_assigned_at = models.DateTimeField(_("last given a conversation"), null=True, blank=True)

    class Meta:
        verbose_name = _("availability")
        verbose_name_plural = _("availability")

    def __str__(self) -> str:
        state = _("available") if self.is_available else _("away")
        return f"{self.user} ({state})"


class RoutingRule(models.Model):
    """Applied to each new conversation once its language is known, in `position` order.

    A rule matches when every condition it sets matches (an empty condition matches all).
    Every matching rule adds its tags; the first matching rule that sets a priority sets
    it; the first that names an assignee or a team decides who gets the conversation.
    """

    name = models.CharField(_("name"), max_length=100)
    position = models.PositiveIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, null=True, blank=True, verbose_name=_("source")
    )
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True)
    keywords = models.CharField(
        _("keywords"),
        max_length=500,
        blank=True,
        help_text=_("Comma-separated; the rule matches when the text contains any of them."),
    )
    set_priority = models.PositiveSmallIntegerField(
        _("set priority"), choices=Priority.choices, null=True, blank=True
    )
    add_tags = models.ManyToManyField(Tag, blank=True, verbose_name=_("add tags"))
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assign to"),
    )
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("or to a team")
    )

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        constraints = [
            models.CheckConstraint(
                condition=Q(channel="") | _in_choices("channel", Channel),
                name="routing_channel_valid",
            ),
            models.CheckConstraint(
                condition=Q(set_priority__isnull=True) | _in_choices("set_priority", Priority),
                name="routing_priority_valid",
            ),
            models.CheckConstraint(
                condition=Q(assignee__isnull=True) | Q(team__isnull=True),
                name="routing_assignee_or_team",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ResponseTarget(models.Model):
    """The first-response target for one priority, editable by staff (defaults: urgent
    1 h, high 4 h, normal 24 h, low 72 h, from settings.ENGAGE_FIRST_RESPONSE_HOURS)."""

    priority = models.PositiveSmallIntegerField(
        _("priority"), choices=Priority.choices, primary_key=True
    )
    minutes = models.PositiveIntegerField(_("answer within (minutes)"))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("updated by"),
    )

    class Meta:
        ordering = ["-priority"]
        verbose_name = _("first-response target")
        verbose_name_plural = _("first-response targets")
        constraints = [
            models.CheckConstraint(
                condition=_in_choices("priority", Priority), name="target_priority_valid"
            ),
            models.CheckConstraint(condition=Q(minutes__gte=1), name="target_minutes_positive"),
        ]

    def __str__(self) -> str:
        return f"{Priority(self.priority).label}: {self.minutes} min"


class BacklogSnapshot(models.Model):
    """The open and unassigned counts, taken by the scheduled SLA job: the dashboard's
    backlog over time (history cannot be rebuilt cheaply from a million rows)."""

    taken_at = models.DateTimeField(_("taken at"), unique=True)
    open = models.PositiveIntegerField(_("open"))
    unassigned = models.PositiveIntegerField(_("open and unassigned"))

    class Meta:
        ordering = ["taken_at"]
        verbose_name = _("backlog snapshot")
        verbose_name_plural = _("backlog snapshots")

    def __str__(self) -> str:
        return f"{self.taken_at:%Y-%m-%d %H:%M}: {self.unassigned}/{self.open}"


class WorkloadSnapshot(models.Model):
    """The conversations not closed per assignee, stage and channel, counted by the SLA job
    every minute: the dashboard's workload reads the latest one (engage.metrics.workload)
    instead of counting a million rows for each view. Each run deletes the earlier ones."""

    taken_at = models.DateTimeField(_("taken at"))
    # [[assignee id or null, username or "", stage, channel, conversations], ...]
    counts = models.JSONField(_("counts"))

    class Meta:
        ordering = ["taken_at"]
        verbose_name = _("workload snapshot")
        verbose_name_plural = _("workload snapshots")

    def __str__(self) -> str:
        return f"{self.taken_at:%Y-%m-%d %H:%M:%S}: {len(self.counts)} groups"


class FiguresSnapshot(models.Model):
    """The dashboard's funnel and first-response figures of one of its preset periods (the
    7, 30 or 90 days up to `taken_at`, every channel and person), computed by a job every
    minute: the page reads the latest instead of aggregating up to a quarter of a million
    conversations for each view (engage.metrics.funnel and .responsiveness). Each run
    deletes the earlier ones of its period."""

    period = models.CharField(_("period"), max_length=10)
    taken_at = models.DateTimeField(_("taken at"))
    # engage.metrics.Funnel as a dict (steps, restarts, restart_reasons).
    funnel = models.JSONField(_("funnel"))
    # engage.metrics._response_rows: [[grouping, key, {figure: value}], ...].
    responses = models.JSONField(_("first responses"))

    class Meta:
        ordering = ["taken_at"]
        verbose_name = _("figures snapshot")
        verbose_name_plural = _("figures snapshots")
        indexes = [models.Index(fields=["period", "taken_at"], name="figures_latest")]

    def __str__(self) -> str:
        return f"{self.period} {self.taken_at:%Y-%m-%d %H:%M:%S}"
