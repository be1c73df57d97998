"""Forms of the queue page: its filters (GET), bulk actions and saved views (POST)."""

from datetime import datetime, time, timedelta

from django import forms
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from engage import queries
from engage.choices import Channel, Priority, ReplyLanguage, Sentiment, SlaState, Stage, State
from engage.forms.conversation import offer_managers
from engage.services import bulk

# The queue's sort names, in the order the select offers them (see queries.SORTS).
SORT_CHOICES = [
    ("due", _("First response due")),
    ("newest", _("Newest first")),
    ("oldest", _("Oldest first")),
    ("priority", _("Highest priority")),
]
FOLLOW_UP_CHOICES = [("", _("Any")), ("yes", _("Needs follow-up")), ("no", _("No follow-up"))]
# "no" is "still waiting": not answered and not closed.
ANSWERED_CHOICES = [("", _("Any")), ("yes", _("Answered")), ("no", _("Waiting for an answer"))]
SLA_CHOICES = [
    ("", _("Any")),
    *((state.value, state.label) for state in (SlaState.AT_RISK, SlaState.BREACHED)),
]
REACHED_CHOICES = [("", _("Any stage")), *Stage.choices]


class DayOrTimeInput(forms.DateInput):
    """A date picker; a link may carry an exact time instead (the dashboard's rolling
    periods), which a date picker cannot show: that value is shown as text, kept as is."""

    input_type = "date"

    def format_value(self, value):
        return value or None

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        if value and parse_date(str(value)) is None:
            context["widget"]["type"] = "text"
        return context


class ReceivedField(forms.CharField):
    """A bound of the time received: a day (YYYY-MM-DD, in the site's time zone) or an
    exact time (ISO 8601). The range is [from, to): a day as `to` includes that whole day,
    an exact time as `to` is the first instant left out."""

    widget = DayOrTimeInput

    def __init__(self, *, end: bool, **kwargs):
        self.end = end
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 40)
        super().__init__(**kwargs)

    def clean(self, value) -> datetime | None:
        text = (super().clean(value) or "").strip()
        if not text:
            return None
        try:
            day = parse_date(text)
            moment = None if day else parse_datetime(text)
        except ValueError:
            day = moment = None
        if day is not None:
            if self.end:
                day += timedelta(days=1)
            moment = timezone.make_aware(datetime.combine(day, time.min))
        elif moment is not None and timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        if moment is None or not queries.EARLIEST <= moment <= queries.LATEST:
            raise forms.ValidationError(
                gettext("“%(value)s” is not a date (YYYY-MM-DD).") % {"value": text[:40]}
            )
        return moment


# The languages offered in the filter; a link may name any other code.
LANGUAGE_CHOICES = [
    ("", _("Any language")),
    *((code, name) for code, name in ReplyLanguage.choices if code),
]
# With no `state` in the query string the queue shows the open conversations: the work.
# "state=" (empty) asks for every state.
DEFAULT_STATE = State.OPEN


class QueueFilterForm(forms.Form):
    """The queue's GET filters. Values are passed on as given: `queries` says what is wrong,
    so a bad value in a shared link shows a clear message instead of being ignored."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=200,
        widget=forms.SearchInput(
            attrs={
                "data-shortcut": "/",
                "data-shortcut-help": _("Search"),
                "placeholder": _("Words in the post…"),
            }
        ),
    )
    stage = forms.CharField(required=False, widget=forms.HiddenInput)
    state = forms.CharField(
        label=_("State"),
        required=False,
        widget=forms.Select(
            choices=[
                ("", _("Any state")),
                *State.choices,
                (queries.NOT_CLOSED, _("Open or snoozed")),
            ]
        ),
    )
    assignee = forms.CharField(label=_("Assignee"), required=False)
    channel = forms.CharField(
        label=_("Channel"),
        required=False,
        widget=forms.Select(choices=[("", _("Any channel")), *Channel.choices]),
    )
    priority = forms.CharField(
        label=_("Priority"),
        required=False,
        widget=forms.Select(
            choices=[("", _("Any priority")), *((p.key, p.label) for p in Priority)]
        ),
    )
    language = forms.CharField(label=_("Language"), required=False, max_length=20)
    sentiment = forms.CharField(
        label=_("Sentiment"),
        required=False,
        widget=forms.Select(choices=[("", _("Any sentiment")), *Sentiment.choices]),
    )
    tag = forms.CharField(
        label=_("Tag"),
        required=False,
        max_length=80,
        widget=forms.TextInput(attrs={"list": "tag-suggestions", "size": 10}),
    )
    follow_up = forms.CharField(
        label=_("Follow-up"),
        required=False,
        widget=forms.Select(choices=FOLLOW_UP_CHOICES),
    )
    received_from = ReceivedField(label=_("Received from"), end=False)
    received_to = ReceivedField(label=_("Received to"), end=True)
    reached = forms.CharField(
        label=_("Reached"),
        required=False,
        widget=forms.Select(choices=REACHED_CHOICES),
    )
    answered = forms.CharField(
        label=_("Answered"),
        required=False,
        widget=forms.Select(choices=ANSWERED_CHOICES),
    )
    sla = forms.CharField(
        label=_("Response target"),
        required=False,
        widget=forms.Select(choices=SLA_CHOICES),
    )
    overdue = forms.BooleanField(label=_("Overdue only"), required=False)
    sort = forms.CharField(
        label=_("Sort"), required=False, widget=forms.Select(choices=SORT_CHOICES)
    )
    cursor = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    def __init__(self, data=None, *args, managers=(), **kwargs):
        if data is not None and "state" not in data:
            data = data.copy()
            data["state"] = DEFAULT_STATE
        super().__init__(data, *args, **kwargs)
        people = [(m.get_username(), m.get_full_name() or m.get_username()) for m in managers]
        self.fields["assignee"].widget = forms.Select(
            choices=[("", _("Anyone")), ("me", _("Me")), ("none", _("Nobody")), *people]
        )
        languages = list(LANGUAGE_CHOICES)
        asked = (data or {}).get("language", "")
        if asked and asked not in dict(languages):
            # A shared link may name a language the select does not offer: show it.
            languages.append((asked, asked))
        self.fields["language"].widget = forms.Select(choices=languages)

    def clean_channel(self) -> str:
        channel = self.cleaned_data["channel"]
        if channel and channel not in Channel.values:
            raise forms.ValidationError(
                gettext("“%(value)s” is not a channel.") % {"value": channel}
            )
        return channel

    def clean_follow_up(self) -> bool | None:
        value = self.cleaned_data["follow_up"]
        if value not in {"", "yes", "no"}:
            raise forms.ValidationError(
                gettext("Follow-up is “yes”, “no” or empty, not “%(value)s”.") % {"value": value}
            )
        return {"": None, "yes": True, "no": False}[value]

    def clean_answered(self) -> bool | None:
        value = self.cleaned_data["answered"]
        if value not in {"", "yes", "no"}:
            raise forms.ValidationError(
                gettext("Answered is “yes”, “no” or empty, not “%(value)s”.") % {"value": value}
            )
        return {"": None, "yes": True, "no": False}[value]

    def clean(self):
        data = super().clean()
        start, end = data.get("received_from"), data.get("received_to")
        if start is not None and end is not None and start >= end:
            self.add_error("received_to", gettext("“Received to” must come after “from”."))
        return data

    def queue_filter(self) -> queries.QueueFilter:
        data = self.cleaned_data
        return queries.QueueFilter(
            stage=data["stage"] or None,
            state=data["state"] or None,
            assignee=data["assignee"] or None,
            channel=data["channel"] or None,
            priority=data["priority"] or None,
            language=data["language"] or None,
            sentiment=data["sentiment"] or None,
            tag=data["tag"] or None,
            overdue=data["overdue"],
            follow_up=data["follow_up"],
            q=data["q"],
            sort=data["sort"] or "due",
            received_from=data["received_from"],
            received_to=data["received_to"],
            reached=data["reached"] or None,
            answered=data["answered"],
            sla=data["sla"] or None,
        )


class IdsField(forms.Field):
    """Conversation ids sent as repeated `ids` values (the rows' checkboxes)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": _("These are not conversation numbers.")}

    def to_python(self, value) -> list[int]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        try:
            ids = [int(item) for item in value]
        except (TypeError, ValueError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if any(not 0 < pk <= queries.MAX_ID for pk in ids):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return ids


# What the bulk bar offers, in the order of its buttons.
BULK_ACTIONS = [
    ("assign_me", _("Assign to me")),
    ("assign", _("Assign")),
    ("unassign", _("Unassign")),
    ("advance", _("Advance")),
    ("restart", _("Restart")),
    ("priority", _("Set priority")),
    ("tag_add", _("Add tag")),
    ("tag_remove", _("Remove tag")),
    ("snooze", _("Snooze")),
    ("close", _("Close")),
    ("reopen", _("Reopen")),
]


class BulkActionForm(forms.Form):
    """One action (the button pressed) on the selected rows, with what that action needs.

    `back` carries the queue's query string, so the page comes back with its filters.
    """

    ids = IdsField(required=False)
    action = forms.ChoiceField(choices=BULK_ACTIONS)
    assignee = forms.ChoiceField(label=_("Community manager"), required=False)
    priority = forms.ChoiceField(
        label=_("Priority"),
        required=False,
        choices=[("", "—"), *((p.key, p.label) for p in Priority)],
    )
    tags = forms.CharField(
        label=_("Tags"),
        required=False,
        max_length=500,
        widget=forms.TextInput(
            attrs={"list": "tag-suggestions", "placeholder": _("tag, another-tag")}
        ),
    )
    snoozed_until = forms.DateTimeField(
        label=_("Snooze until"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    reason = forms.CharField(
        label=_("Reason to restart"),
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": _("e.g. unhappy with the fix")}),
    )
    back = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)

    def __init__(self, *args, actor=None, managers=(), **kwargs):
        # The filter form on the same page has fields of the same names: distinct ids keep
        # each label pointing at its own control.
        kwargs.setdefault("auto_id", "id_bulk_%s")
        super().__init__(*args, **kwargs)
        self.actor = actor
        offer_managers(self, managers)

    def clean(self):
        data = super().clean()
        action = data.get("action")
        if action == "assign" and not data.get("assignee"):
            self.add_error("assignee", gettext("Choose the community manager to assign."))
        if action == "priority" and not data.get("priority"):
            self.add_error("priority", gettext("Choose the priority."))
        if action in {"tag_add", "tag_remove"} and not (data.get("tags") or "").strip():
            self.add_error("tags", gettext("Name the tags to add or remove."))
        if action == "snooze" and not data.get("snoozed_until"):
            self.add_error("snoozed_until", gettext("Say until when to snooze."))
        if action == "restart" and not (data.get("reason") or "").strip():
            self.add_error(
                "reason",
                gettext("Say why the conversations go back to listen: a reason is required."),
            )
        return data

    def bulk_action(self) -> bulk.BulkAction:
        """The service's action for the button pressed (may raise InvalidInput)."""
        data = self.cleaned_data
        builders = {
            "assign_me": lambda: bulk.assign(self.actor),
            "assign": lambda: bulk.assign(self.managers[data["assignee"]]),
            "unassign": lambda: bulk.assign(None),
            "advance": bulk.advance,
            "restart": lambda: bulk.restart(data["reason"]),
            "priority": lambda: bulk.set_priority(data["priority"]),
            "tag_add": lambda: bulk.change_tags(add=data["tags"]),
            "tag_remove": lambda: bulk.change_tags(remove=data["tags"]),
            "snooze": lambda: bulk.snooze(data["snoozed_until"]),
            "close": bulk.close,
            "reopen": bulk.reopen,
        }
        return builders[data["action"]]()

    def back_query(self) -> QueryDict:
        """The queue's filters to return to (never its page position)."""
        query = QueryDict(
            (self.cleaned_data.get("back") if self.is_bound else "") or "", mutable=True
        )
        query.pop("cursor", None)
        return query


class SavedViewForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=80,
        widget=forms.TextInput(attrs={"placeholder": _("e.g. My overdue Italian posts")}),
    )
    query = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)
