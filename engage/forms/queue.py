"""Forms of the queue page: its filters (GET), bulk actions and saved views (POST)."""

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from engage import queries
from engage.choices import Channel, Priority, ReplyLanguage, Sentiment, State
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
        widget=forms.Select(choices=[("", _("Any state")), *State.choices]),
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
