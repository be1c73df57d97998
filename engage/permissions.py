"""Who may do what. Three roles: community managers, product team, staff/admin.

- community managers: read and work conversations; create tickets and link evidence;
- product team: read conversations; all ticket work (create, link, status, owner, edit);
- staff and superusers: everything.
Anyone else sees nothing. Roles are Django groups created by a migration.
"""

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from engage.choices import Role


def roles(user) -> frozenset[str]:
    """The user's role names, read once per user object (one query, then cached)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_engage_roles", None)
    if cached is None:
        if user.is_staff or user.is_superuser:
            cached = frozenset(Role.values) | {"staff"}
        else:
            names = set(user.groups.values_list("name", flat=True))
            cached = frozenset(names & set(Role.values))
        user._engage_roles = cached
    return cached


def is_staff(user) -> bool:
    return "staff" in roles(user)


def can_view(user) -> bool:
    """Read conversations and tickets."""
    return bool(roles(user))


def can_work(user) -> bool:
    """Change conversations: assign, advance, restart, reply, note."""
    return Role.COMMUNITY_MANAGER in roles(user)


def can_link_evidence(user) -> bool:
    """Create tickets from conversations and link evidence."""
    return bool(roles(user) & {Role.COMMUNITY_MANAGER, Role.PRODUCT_TEAM})


def can_manage_tickets(user) -> bool:
    """Change a ticket's status, owner and text."""
    return Role.PRODUCT_TEAM in roles(user)


def require(allowed: bool, message: str | None = None) -> None:
    if not allowed:
        raise PermissionDenied(message or _("Your role does not allow this."))


def require_view(user) -> None:
    require(can_view(user), _("Only community managers, the product team and staff can see this."))


def require_work(user) -> None:
    """`None` is the system (jobs, imports); every person must be a community manager."""
    if user is not None:
        require(can_work(user), _("Only community managers can change conversations."))


def require_link_evidence(user) -> None:
    if user is not None:
        require(
            can_link_evidence(user), _("Only community managers and the product team can do this.")
        )


def require_manage_tickets(user) -> None:
    if user is not None:
        require(
            can_manage_tickets(user),
            _("Only the product team can change a ticket's status, owner or text."),
        )
