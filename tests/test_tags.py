"""Free-form tags on conversations."""

import pytest

from engage.choices import EventKind
from engage.errors import InvalidInput
from engage.models import Tag
from engage.services.tags import change_tags, clean_tag_names

pytestmark = pytest.mark.django_db


def test_tag_names_are_normalised():
    assert clean_tag_names(" Descaling, #App,  descaling ,Milk Frother,, ") == [
        "descaling",
        "app",
        "milk-frother",
    ]
    with pytest.raises(InvalidInput):
        clean_tag_names(["x" * 61])


def test_add_and_remove_record_one_event_each_time(manager, conversation):
    assert change_tags(conversation.pk, actor=manager, add="app, descaling") == ["app", "descaling"]
    assert change_tags(conversation.pk, actor=manager, add=["app"]) == ["app", "descaling"]
    assert change_tags(conversation.pk, actor=manager, remove=["app"]) == ["descaling"]

    events = list(
        conversation.events.filter(kind=EventKind.TAGS_CHANGED).values_list("data", flat=True)
    )
    assert events == [
        {"added": ["app", "descaling"], "removed": []},
        {"added": [], "removed": ["app"]},
    ]
    conversation.refresh_from_db()
    assert conversation.version == 1  # labels, not state
    assert set(Tag.objects.values_list("name", flat=True)) == {"app", "descaling"}
