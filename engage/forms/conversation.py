"""Forms of the conversation page: one per action. They parse shapes; services own the rules."""

import re

from django import forms
from django.core.validators import URLValidator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from engage.choices import Priority, State


class ActionForm(forms.Form):
    """A form of the conversation page. Several share one page, so ids carry the form's name."""

    name = "action"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", f"id_{self.name}_%s")
        super().__init__(*args, **kwargs)


def version_field():
    """The version the person saw: the service refuses the change if it moved on since."""
    return forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class AdvanceForm(ActionForm):
    name = "advance"
    version = version_field()


class RestartForm(ActionForm):
    name = "restart"
    version = version_field()
    reason = forms.CharField(
        label=_("Reason"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={
            "required": _("Say why the conversation goes back to listen: a reason is required.")
        },
        help_text=_("Negative feedback, a new need… This starts the next cycle."),
    )


def offer_managers(form: forms.Form, managers) -> None:
    """Offer `managers` in the form's assignee select, and keep them by username."""
    form.managers = {m.get_username(): m for m in managers}
    form.fields["assignee"].choices = [
        ("", "—"),
        *((name, m.get_full_name() or name) for name, m in form.managers.items()),
    ]


class AssignForm(ActionForm):
    """One form, three buttons: to me, to the person chosen in the select, to nobody."""

    name = "assign"
    version = version_field()
    action = forms.ChoiceField(
        choices=[("me", _("Assign to me")), ("choose", _("Assign")), ("none", _("Unassign"))],
        widget=forms.HiddenInput,
    )
    assignee = forms.ChoiceField(label=_("Community manager"), required=False)

    def __init__(self, *args, actor=None, managers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        offer_managers(self, managers)

    def clean(self):
        data = super().clean()
        action = data.get("action")
        if action == "me":
            data["user"] = self.actor
        elif action == "none":
            data["user"] = None
        elif action == "choose":
            if not data.get("assignee"):
                self.add_error("assignee", gettext("Choose the community manager to assign."))
            else:
                data["user"] = self.managers[data["assignee"]]
        return data


class ReplyForm(ActionForm):
    name = "reply"
    text = forms.CharField(
        label=_("Reply"),
        max_length=10000,
        widget=forms.Textarea(
            attrs={"rows": 4, "data-shortcut": "r", "data-shortcut-help": _("Write a reply")}
        ),
        help_text=_("The reply as it was (or will be) posted on the network."),
    )
    url = forms.URLField(
        label=_("URL of the posted reply"),
        required=False,
        max_length=1000,
        validators=[URLValidator(schemes=["http", "https"])],
    )


class NoteForm(ActionForm):
    name = "note"
    text = forms.CharField(
        label=_("Note"),
        max_length=10000,
        widget=forms.Textarea(
            attrs={"rows": 3, "data-shortcut": "n", "data-shortcut-help": _("Write a note")}
        ),
        help_text=_(
            "Internal, never shown outside. Markdown is allowed; @username notifies that person."
        ),
    )


class TagsForm(ActionForm):
    """Add tags (comma-separated) or remove one (the × button of a tag)."""

    name = "tags"
    add = forms.CharField(
        label=_("Add tags"),
        required=False,
        max_length=500,
        help_text=_("Comma-separated, e.g. descaling, app."),
        widget=forms.TextInput(attrs={"list": "tag-suggestions", "autocomplete": "off"}),
    )
    remove = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if not (data.get("add") or "").strip() and not (data.get("remove") or "").strip():
            raise forms.ValidationError(gettext("Type a tag to add."))
        return data


class MergeForm(ActionForm):
    """Merge this conversation into another one, which is kept."""

    name = "merge"
    version = version_field()
    into = forms.IntegerField(
        label=_("Merge into conversation #"),
        min_value=1,
        max_value=2**63 - 1,
        help_text=_(
            "This conversation's messages, notes, evidence and history move there; "
            "this one is closed and points to it."
        ),
    )


class NoChangeForm(ActionForm):
    name = "no_change"
    reason = forms.CharField(
        label=_("Why no product change is needed"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class CreateTicketForm(ActionForm):
    name = "ticket"
    title = forms.CharField(label=_("Title"), max_length=200)
    problem = forms.CharField(
        label=_("Problem"),
        required=False,
        max_length=10000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    product_area = forms.CharField(label=_("Product area"), required=False, max_length=100)
    quote = forms.CharField(
        label=_("Quote"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("The person's words that show the need. Empty: the title is used."),
    )


# The longest search text and quote a link form takes.
SEARCH_MAX_LENGTH = 200
QUOTE_MAX_LENGTH = 5000
# Where a sentence ends: ., ! or ? (or an ellipsis) and a space, or a line break.
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


def first_sentence(text: str, *, max_length: int = 300) -> str:
    """The first sentence of `text`: the quote a link form starts with, for the person to edit."""
    sentence = SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()
    if len(sentence) > max_length:
        sentence = sentence[: max_length - 1].rstrip() + "…"
    return sentence


class LinkTicketForm(ActionForm):
    """Link the conversation to a ticket listed on the page, with a quote.

    The tickets are listed by a search ("link", the unprefixed form) or as similar tickets
    (`suggested=True`: the same fields with the prefix "suggested", so both forms can share
    the page). Each listed ticket is a submit button named `ticket` with the ticket's id as
    its value: one click links that ticket with the quote above the list.
    """

    name = "link"
    SUGGESTED_PREFIX = "suggested"

    ticket = forms.IntegerField(
        label=_("Ticket"),
        min_value=1,
        max_value=2**63 - 1,
        error_messages={"required": _("Choose the ticket to link.")},
    )
    quote = forms.CharField(
        label=_("Quote"),
        max_length=QUOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("The person's words that show the need."),
    )
    # The search that listed the ticket: after an error the page lists its results again.
    ticket_q = forms.CharField(
        required=False, max_length=SEARCH_MAX_LENGTH, widget=forms.HiddenInput
    )

    def __init__(self, *args, suggested: bool = False, **kwargs):
        if suggested:
            self.name = "suggested"
            # The prefix already tells the fields apart: ids such as "id_suggested-quote".
            kwargs.setdefault("prefix", self.SUGGESTED_PREFIX)
            kwargs.setdefault("auto_id", "id_%s")
        super().__init__(*args, **kwargs)

    @classmethod
    def from_post(cls, data) -> "LinkTicketForm":
        """The form a POST came from: the similar tickets' (prefixed) or the search's."""
        suggested = (
            f"{cls.SUGGESTED_PREFIX}-ticket" in data or f"{cls.SUGGESTED_PREFIX}-quote" in data
        )
        return cls(data, suggested=suggested)


class PriorityForm(ActionForm):
    name = "priority"
    version = version_field()
    priority = forms.ChoiceField(label=_("Priority"), choices=[(p.key, p.label) for p in Priority])


class StateForm(ActionForm):
    name = "state"
    version = version_field()
    state = forms.ChoiceField(label=_("State"), choices=State.choices)
    snoozed_until = forms.DateTimeField(
        label=_("Snooze until"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Only for snoozed."),
    )

    def clean(self):
        data = super().clean()
        if data.get("state") == State.SNOOZED and not data.get("snoozed_until"):
            self.add_error("snoozed_until", gettext("Say until when to snooze."))
        return data
