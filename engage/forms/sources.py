"""Forms of the sources page (/sources/) and of the availability toggle in the header.

They parse shapes; engage.services.sources owns the rules (unique names, http(s) only,
known channels, the polling interval's bounds) and its refusals come back as form errors.
"""

from django import forms
from django.utils.translation import gettext_lazy as _

from engage.choices import Channel, SourceKind
from engage.models import Source

# The same bounds as the service's: once a minute to once a week.
MIN_INTERVAL, MAX_INTERVAL = 1, 7 * 24 * 60
FEED_FIELDS = ("name", "url", "channel", "keywords", "poll_interval_minutes")


class SourceForm(forms.Form):
    """Add a feed, or change a source. A source that is not a feed (API push, file import)
    has only a name and a channel: it has no address to poll."""

    name = forms.CharField(
        label=_("Name"),
        max_length=Source._meta.get_field("name").max_length,
        error_messages={"required": _("Give the source a name.")},
    )
    url = forms.URLField(
        label=_("Feed URL"),
        max_length=Source._meta.get_field("url").max_length,
        assume_scheme="https",
        error_messages={
            "required": _("Enter the feed's address."),
            "invalid": _("Enter a full http:// or https:// address."),
        },
        help_text=_("The address of an RSS or Atom feed, starting with http:// or https://."),
    )
    channel = forms.ChoiceField(label=_("Channel"), choices=Channel.choices, initial=Channel.BLOG)
    keywords = forms.CharField(
        label=_("Keywords"),
        required=False,
        max_length=Source._meta.get_field("keywords").max_length,
        help_text=_(
            "Comma-separated brand terms: only entries that mention one of them are kept. "
            "Leave it empty to keep every entry."
        ),
    )
    poll_interval_minutes = forms.IntegerField(
        label=_("Poll every (minutes)"),
        min_value=MIN_INTERVAL,
        max_value=MAX_INTERVAL,
        initial=15,
        # Text, not type=number: the stylesheet styles text inputs, and the field checks it.
        widget=forms.TextInput(attrs={"inputmode": "numeric", "size": 6}),
        error_messages={
            "min_value": _("Poll every 1 to 10,080 minutes (a week)."),
            "max_value": _("Poll every 1 to 10,080 minutes (a week)."),
        },
    )

    def __init__(self, *args, kind: str = SourceKind.FEED, **kwargs):
        super().__init__(*args, **kwargs)
        if kind != SourceKind.FEED:
            for name in ("url", "keywords", "poll_interval_minutes"):
                del self.fields[name]

    @classmethod
    def for_source(cls, source: Source, data=None) -> "SourceForm":
        """The form to change `source`, filled with what it holds now."""
        initial = {name: getattr(source, name) for name in FEED_FIELDS}
        return cls(data, kind=source.kind, initial=initial)

    def changes(self) -> dict:
        """Only what was changed: the service forgets a feed's caching headers (and polls it
        again at once) when its address is sent, so an unchanged one must not be."""
        return {name: self.cleaned_data[name] for name in self.changed_data}


class AvailabilityForm(forms.Form):
    """The header's toggle: "1" takes new conversations, "0" is away."""

    available = forms.TypedChoiceField(
        choices=[("1", _("Available")), ("0", _("Away"))],
        coerce=lambda value: value == "1",
    )
