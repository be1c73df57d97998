"""The vocabularies of the domain. TextChoices/IntegerChoices only: no behaviour here."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Stage(models.TextChoices):
    LISTEN = "listen", _("Listen")
    INTERACT = "interact", _("Interact")
    REACT = "react", _("React")
    SELL = "sell", _("Sell")


class State(models.TextChoices):
    OPEN = "open", _("Open")
    SNOOZED = "snoozed", _("Snoozed")
    CLOSED = "closed", _("Closed")


class Priority(models.IntegerChoices):
    """Stored as a number so that the queue can sort and page by it."""

    LOW = 1, _("Low")
    NORMAL = 2, _("Normal")
    HIGH = 3, _("High")
    URGENT = 4, _("Urgent")

    @property
    def key(self) -> str:
        """The spelling used by the API and in settings: "low", "normal", ..."""
        return self.name.lower()

    @classmethod
    def from_key(cls, key: str) -> "Priority":
        return cls[key.upper()]


class Channel(models.TextChoices):
    TWITTER = "twitter", _("Twitter / X")
    FACEBOOK = "facebook", _("Facebook")
    INSTAGRAM = "instagram", _("Instagram")
    LINKEDIN = "linkedin", _("LinkedIn")
    BLOG = "blog", _("Blog")
    FORUM = "forum", _("Forum")
    REVIEW = "review", _("Review site")
    EMAIL = "email", _("Email")
    OTHER = "other", _("Other")


class SourceKind(models.TextChoices):
    API = "api", _("API push")
    FILE = "file", _("File import")
    FEED = "feed", _("RSS/Atom feed")


class Direction(models.TextChoices):
    INBOUND = "inbound", _("Inbound")
    OUTBOUND = "outbound", _("Outbound")


class Sentiment(models.TextChoices):
    POSITIVE = "positive", _("Positive")
    NEUTRAL = "neutral", _("Neutral")
    NEGATIVE = "negative", _("Negative")


class TicketStatus(models.TextChoices):
    NEW = "new", _("New")
    TRIAGED = "triaged", _("Triaged")
    PLANNED = "planned", _("Planned")
    IN_PROGRESS = "in_progress", _("In progress")
    SHIPPED = "shipped", _("Shipped")
    DECLINED = "declined", _("Declined")


# Statuses after which the people who asked must be told.
CLOSED_TICKET_STATUSES = frozenset({TicketStatus.SHIPPED, TicketStatus.DECLINED})


class EventKind(models.TextChoices):
    CREATED = "created", _("Created")
    STAGE_CHANGED = "stage_changed", _("Stage changed")
    RESTARTED = "restarted", _("Restarted")
    ASSIGNED = "assigned", _("Assigned")
    UNASSIGNED = "unassigned", _("Unassigned")
    REPLY_LOGGED = "reply_logged", _("Reply logged")
    NOTE_ADDED = "note_added", _("Note added")
    NO_CHANGE_RECORDED = "no_change_recorded", _("No product change needed")
    FEEDBACK_LINKED = "feedback_linked", _("Linked to feedback")
    FOLLOW_UP_FLAGGED = "follow_up_flagged", _("Follow-up needed")
    FOLLOW_UP_CLEARED = "follow_up_cleared", _("Follow-up done")
    PRIORITY_CHANGED = "priority_changed", _("Priority changed")
    STATE_CHANGED = "state_changed", _("State changed")
    TAGS_CHANGED = "tags_changed", _("Tags changed")
    MERGED = "merged", _("Merged")
    MESSAGE_RECEIVED = "message_received", _("Message received")
    DUPLICATE_RECEIVED = "duplicate_received", _("Duplicate received")
    TICKET_CREATED = "ticket_created", _("Ticket created")
    TICKET_STATUS_CHANGED = "ticket_status_changed", _("Ticket status changed")
    TICKET_UPDATED = "ticket_updated", _("Ticket updated")
    TICKET_MERGED = "ticket_merged", _("Ticket merged")


class ReplyLanguage(models.TextChoices):
    """Languages of saved replies; "" means any language."""

    ANY = "", _("Any language")
    ITALIAN = "it", _("Italian")
    ENGLISH = "en", _("English")


class Role(models.TextChoices):
    """Group names created by a migration."""

    COMMUNITY_MANAGER = "community_manager", _("Community manager")
    PRODUCT_TEAM = "product_team", _("Product team")


class SlaState(models.TextChoices):
    """Where a waiting conversation stands against its first-response target."""

    OK = "", _("Within target")
    AT_RISK = "at_risk", _("About to breach")
    BREACHED = "breached", _("Breached")
