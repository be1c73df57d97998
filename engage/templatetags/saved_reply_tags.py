"""The saved-replies picker's filter. It returns plain text: templates escape it."""

from django import template

from engage.services.saved_replies import fill_placeholders

register = template.Library()


@register.filter
def filled_for(text: str, contact) -> str:
    """A saved reply's text with `{name}` and `{handle}` filled in for `contact`."""
    if contact is None:
        return text
    return fill_placeholders(text, name=contact.name, handle=contact.handle)
