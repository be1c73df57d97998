"""Context every page shares."""

from engage import queries


def notifications(request) -> dict:
    """Unread in-app notifications (mentions, follow-ups, evidence): shown on the next page.

    One query, evaluated here (not lazily in the template), only for logged-in users.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"unread_notifications": []}
    return {"unread_notifications": queries.unread_notifications(user)}
