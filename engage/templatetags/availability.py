"""The header's per-user state (templates/base.html): whether to link to the sources page,
and the availability toggle. Roles are cached on the user, so `can_view` costs no query on
a page that already checked them; the toggle's state costs one, only for those who can work.
"""

from django import template

from engage import permissions
from engage.services import availability

register = template.Library()


@register.filter
def can_view(user) -> bool:
    """Whether `user` may read the pages behind the main navigation."""
    return permissions.can_view(user)


@register.simple_tag(takes_context=True)
def user_availability(context) -> bool | None:
    """None when the page's user cannot work conversations (no toggle), else whether they
    are available for new conversations."""
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return None
    return availability.is_available(user)
