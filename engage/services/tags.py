"""Tags on conversations: free-form labels, added and removed one conversation at a time."""

import re

from django.db import transaction
from django.utils.translation import gettext as _

from engage import history, permissions
from engage.choices import EventKind
from engage.errors import InvalidInput
from engage.models import Tag
from engage.services.conversations import lock_conversation

MAX_LENGTH = Tag._meta.get_field("name").max_length


def clean_tag_names(names) -> list[str]:
    """Normalise tag names: trimmed, lower case, inner spaces as dashes, no duplicates.

    Accepts a list or one comma-separated string. Raises InvalidInput naming the bad tag.
    """
    if isinstance(names, str):
        names = names.split(",")
    cleaned: list[str] = []
    for raw in names:
        name = re.sub(r"\s+", "-", str(raw).strip().lower()).lstrip("#")
        if not name:
            continue
        if len(name) > MAX_LENGTH or "\x00" in name:
            raise InvalidInput(
                _("“%(tag)s” is not a valid tag: at most %(max)s characters.")
                % {"tag": name[:80], "max": MAX_LENGTH},
                field="tags",
            )
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


@transaction.atomic
def change_tags(conversation_id: int, *, actor, add=(), remove=()) -> list[str]:
    """Add and remove tags on one conversation; return its tags afterwards.

    Tags are labels, not state: they do not change the conversation's version. One
    TAGS_CHANGED Event records what was added and removed; no change, no Event.
    """
    permissions.require_work(actor)
    add, remove = clean_tag_names(add), clean_tag_names(remove)
    conversation = lock_conversation(conversation_id)
    current = set(conversation.tags.values_list("name", flat=True))
    added = [name for name in add if name not in current and name not in remove]
    removed = [name for name in remove if name in current]
    if added:
        Tag.objects.bulk_create([Tag(name=name) for name in added], ignore_conflicts=True)
        conversation.tags.add(*Tag.objects.filter(name__in=added))
    if removed:
        conversation.tags.remove(*Tag.objects.filter(name__in=removed))
    if added or removed:
        history.record(
            EventKind.TAGS_CHANGED,
            conversation=conversation,
            actor=actor,
            data={"added": added, "removed": removed},
        )
    return sorted((current | set(added)) - set(removed))
