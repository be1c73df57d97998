"""Build test state through the services, the same path users take."""

import itertools
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from engage.choices import Role
from engage.services import conversations as conversation_services
from engage.services.conversations import Author, Item

User = get_user_model()
_sequence = itertools.count(1)


def user(username: str | None = None, *, role: str | None = Role.COMMUNITY_MANAGER, **fields):
    username = username or f"user{next(_sequence)}"
    account = User.objects.create_user(username=username, password="pw-" + username, **fields)
    if role:
        # get_or_create: transactional tests flush the groups that migration 0002 made.
        account.groups.add(Group.objects.get_or_create(name=role)[0])
    return account


def item(**overrides) -> Item:
    n = next(_sequence)
    author = overrides.pop("author", None) or Author(
        handle=overrides.pop("handle", f"person{n}"), name=f"Person {n}"
    )
    fields = {
        "source": "test-source",
        "external_id": f"ext-{n}",
        "channel": "twitter",
        "author": author,
        "text": f"Message number {n} about the product",
        "url": f"https://example.com/{n}",
        "created_at": timezone.now() - timedelta(minutes=n),
    }
    fields.update(overrides)
    return Item(**fields)


def conversation(**overrides):
    """A new conversation in listen, created by the system."""
    created, _ = conversation_services.create_conversation(item(**overrides))
    return created
