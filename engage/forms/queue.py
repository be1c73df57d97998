"""Forms of the queue page."""

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from engage import queries
from engage.choices import Channel, Priority, Stage, State

# The queue's sort names, in the order the select offers them (see queries.SORTS).
SORT_CHOICES = [
    ("due", _("First response due")),
    ("newest", _("Newest first")),
    ("oldest", _("Oldest first")),
    ("priority", _("Highest priority")),
]
FOLLOW_UP_CHOICES = [("", _("Any")), ("yes", _("Needs follow-up")), ("no", _("No follow-up"))]


class QueueFilterForm(forms.Form):
    """The queue's GET filters. Values are passed on as given: `queries` says what is wrong,
    so a bad value in a shared link shows a clear message instead of being ignored."""

    q = forms.CharField(label=_("Search"), required=False, max_length=200, widget=forms.SearchInput)
    stage = forms.CharField(
        label=_("Stage"),
        required=False,
        widget=forms.Select(choices=[("", _("Any stage")), *Stage.choices]),
    )
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
    follow_up = forms.CharField(
        label=_("Follow-up"),
        required=False,
        widget=forms.Select(choices=FOLLOW_UP_CHOICES),
    )
    sort = forms.CharField(
        label=_("Sort"), required=False, widget=forms.Select(choices=SORT_CHOICES)
    )
    cursor = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    def __init__(self, *args, managers=(), **kwargs):
        super().__init__(*args, **kwargs)
        people = [(m.get_username(), m.get_full_name() or m.get_username()) for m in managers]
        self.fields["assignee"].widget = forms.Select(
            choices=[("", _("Anyone")), ("me", _("Me")), ("none", _("Nobody")), *people]
        )

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
            follow_up=data["follow_up"],
            q=data["q"],
            sort=data["sort"] or "due",
        )
