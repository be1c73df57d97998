"""Forms of the feedback pages: the board's filters (GET) and the ticket page's actions (POST).

They parse shapes; engage.services.feedback owns the rules (who may, merged tickets...).
"""

from django import forms
from django.utils.translation import gettext_lazy as _

from engage import queries
from engage.choices import Channel, TicketStatus
from engage.forms.conversation import ActionForm
from engage.forms.queue import LANGUAGE_CHOICES


def _with_asked(choices: list, asked: str) -> list:
    """A shared link may name a value the select does not offer: offer it too, so it shows."""
    if asked and asked not in dict(choices):
        return [*choices, (asked, asked)]
    return choices


class TicketFilterForm(forms.Form):
    """The board's GET filters, kept in the URL so that a view of the board can be bookmarked.
    Values are passed on as given: `queries` says what is wrong with a bad one."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=200,
        widget=forms.SearchInput(attrs={"placeholder": _("Words in the title or problem…")}),
    )
    status = forms.CharField(label=_("Status"), required=False, max_length=20)
    product_area = forms.CharField(label=_("Product area"), required=False, max_length=100)
    channel = forms.CharField(label=_("Channel"), required=False, max_length=20)
    language = forms.CharField(label=_("Language"), required=False, max_length=20)
    page = forms.IntegerField(
        required=False, min_value=1, max_value=10_000, widget=forms.HiddenInput
    )

    def __init__(self, data=None, *args, areas=(), **kwargs):
        super().__init__(data, *args, **kwargs)
        asked = data or {}
        self.fields["status"].widget = forms.Select(
            choices=_with_asked(
                [("", _("Every status")), *TicketStatus.choices], asked.get("status", "")
            )
        )
        self.fields["product_area"].widget = forms.Select(
            choices=_with_asked(
                [("", _("Every area")), *((area, area) for area in areas)],
                asked.get("product_area", ""),
            )
        )
        self.fields["channel"].widget = forms.Select(
            choices=_with_asked(
                [("", _("Any channel")), *Channel.choices], asked.get("channel", "")
            )
        )
        self.fields["language"].widget = forms.Select(
            choices=_with_asked(list(LANGUAGE_CHOICES), asked.get("language", ""))
        )

    def ticket_filter(self) -> queries.TicketFilter:
        data = self.cleaned_data
        return queries.TicketFilter(
            status=data["status"] or None,
            product_area=data["product_area"] or None,
            channel=data["channel"] or None,
            language=data["language"] or None,
            q=data["q"],
        )

    @property
    def page_number(self) -> int:
        return (self.cleaned_data.get("page") if self.is_valid() else None) or 1


class TicketStatusForm(ActionForm):
    name = "status"
    status = forms.ChoiceField(label=_("New status"), choices=TicketStatus.choices)
    note = forms.CharField(
        label=_("Note to the people who asked (optional)"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "What community managers tell each person: the version it shipped in, why it was "
            "declined… It is kept in the ticket's history."
        ),
    )


class TicketOwnerForm(ActionForm):
    name = "owner"
    owner = forms.ChoiceField(label=_("Owner"), required=False)

    def __init__(self, *args, owners=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.owners = {user.get_username(): user for user in owners}
        self.fields["owner"].choices = [
            ("", _("Nobody")),
            *((name, user.get_full_name() or name) for name, user in self.owners.items()),
        ]

    def clean_owner(self):
        name = self.cleaned_data["owner"]
        return self.owners[name] if name else None


class TicketEditForm(ActionForm):
    name = "edit"
    title = forms.CharField(
        label=_("Title"),
        max_length=200,
        error_messages={"required": _("A ticket needs a title.")},
    )
    problem = forms.CharField(
        label=_("Problem statement"),
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_("The need in the customers' terms, not the solution."),
    )
    product_area = forms.CharField(
        label=_("Product area"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"list": "product-areas"}),
    )


class TicketMergeForm(ActionForm):
    name = "merge"
    into = forms.IntegerField(
        label=_("Merge into ticket number"),
        min_value=1,
        max_value=queries.MAX_ID,
        error_messages={"required": _("Give the number of the ticket to keep.")},
        help_text=_(
            "The ticket to keep. This ticket's evidence moves there, and this page will lead "
            "there. It cannot be undone."
        ),
    )
