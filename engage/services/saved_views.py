"""Saved views: a person's named queue filters. Each person sees and changes only their own."""

from urllib.parse import parse_qsl, urlencode

from django.db import transaction
from django.utils.translation import gettext as _

from engage import permissions
from engage.errors import InvalidInput
from engage.models import SavedView

NAME_LENGTH = SavedView._meta.get_field("name").max_length
QUERY_LENGTH = SavedView._meta.get_field("query").max_length

# Where a page is, not what it shows: never part of a saved view.
NOT_SAVED = frozenset({"cursor"})


def clean_query(query: str) -> str:
    """The queue's query string without its position, with empty values kept ("state=" means
    any state, unlike no state at all)."""
    pairs = [
        (key, value)
        for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=True)
        if key not in NOT_SAVED
    ]
    return urlencode(pairs)


@transaction.atomic
def save_view(*, actor, name: str, query: str) -> SavedView:
    """Save the queue filter `query` under `name` for `actor`; the same name replaces it.

    Anyone who may read conversations may save views (the product team too).
    Raises InvalidInput (no name, too long) and PermissionDenied.
    """
    permissions.require_view(actor)
    name = " ".join((name or "").split())
    if not name:
        raise InvalidInput(_("Give the view a name."), field="name")
    if len(name) > NAME_LENGTH:
        raise InvalidInput(
            _("A view's name has at most %(max)s characters.") % {"max": NAME_LENGTH},
            field="name",
        )
    query = clean_query(query or "")
    if len(query) > QUERY_LENGTH:
        raise InvalidInput(_("This filter is too long to save."), field="query")
    view, _created = SavedView.objects.update_or_create(
        user=actor, name=name, defaults={"query": query}
    )
    return view


@transaction.atomic
def delete_view(view_id: int, *, actor) -> None:
    """Delete one of `actor`'s saved views. Someone else's is as unknown as a missing one."""
    permissions.require_view(actor)
    deleted, _by_model = SavedView.objects.filter(pk=view_id, user=actor).delete()
    if not deleted:
        raise InvalidInput(_("You have no saved view %(id)s.") % {"id": view_id}, field="view")
