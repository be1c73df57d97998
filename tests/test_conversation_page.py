"""The conversation page's collaboration tools: tags, mentions, merge, presence."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from engage.models import Conversation, Notification, Presence
from engage.services import conversations as cs
from engage.services import presence as presence_services
from engage.services import tags as tag_services
from tests import factories

pytestmark = pytest.mark.django_db


def page(client, conversation):
    return client.get(reverse("conversation", args=[conversation.pk]))


def test_add_and_remove_tags_from_the_page(client, manager, conversation):
    client.force_login(manager)
    url = reverse("conversation_tags", args=[conversation.pk])

    response = client.post(url, {"add": "Descaling, app"}, follow=True)
    assert "Tags: app, descaling." in response.text
    response = client.post(url, {"remove": "app"}, follow=True)
    assert list(conversation.tags.values_list("name", flat=True)) == ["descaling"]
    assert "Remove tag descaling" in response.text

    empty = client.post(url, {"add": " "})
    assert empty.status_code == 422
    assert "Type a tag to add." in empty.text


def test_existing_tags_are_suggested(client, manager, conversation):
    other = factories.conversation()
    tag_services.change_tags(other.pk, actor=manager, add=["milk-frother"])
    client.force_login(manager)
    assert '<option value="milk-frother">' in page(client, conversation).text


def test_a_mention_shows_on_the_next_page_load_until_dismissed(client, manager, other_manager):
    conversation = factories.conversation()
    client.force_login(manager)
    client.post(reverse("conversation_note", args=[conversation.pk]), {"text": "@other look"})

    client.force_login(other_manager)
    queue = client.get(reverse("queue"))
    assert f"manager mentioned you in conversation #{conversation.pk}" in queue.text
    notification = Notification.objects.get(user=other_manager)

    client.post(reverse("notification_read", args=[notification.pk]), {"next": "/queue/"})
    assert "mentioned you" not in client.get(reverse("queue")).text


def test_nobody_dismisses_someone_elses_notification(client, manager, other_manager):
    conversation = factories.conversation()
    cs.add_note(conversation.pk, actor=manager, text="@other look")
    notification = Notification.objects.get()
    client.force_login(manager)
    client.post(reverse("notification_read", args=[notification.pk]))
    notification.refresh_from_db()
    assert notification.read_at is None


def test_merge_from_the_page_lands_on_the_kept_conversation(client, manager):
    kept, duplicate = factories.conversation(), factories.conversation()
    client.force_login(manager)
    response = client.post(
        reverse("conversation_merge", args=[duplicate.pk]), {"into": kept.pk, "version": 1}
    )
    assert response.status_code == 303
    assert response["Location"] == reverse("conversation", args=[kept.pk])
    duplicate_page = page(client, Conversation.objects.get(pk=duplicate.pk))
    assert "This conversation was merged into another one" in duplicate_page.text
    assert f'href="/conversations/{kept.pk}/"' in duplicate_page.text


def test_merge_into_a_missing_conversation_is_a_form_error(client, manager, conversation):
    client.force_login(manager)
    response = client.post(reverse("conversation_merge", args=[conversation.pk]), {"into": 424242})
    assert response.status_code == 422
    assert "Conversation 424242 does not exist." in response.text


def test_the_page_shows_who_else_has_it_open(client, manager, other_manager, conversation):
    presence_services.touch(conversation.pk, user=other_manager)
    client.force_login(manager)
    response = page(client, conversation)
    assert "Also here now:" in response.text
    assert "other" in response.text.split("Also here now:")[1][:300]
    assert Presence.objects.filter(user=manager, conversation=conversation).exists()


def test_someone_who_left_is_not_shown(client, manager, other_manager, conversation):
    presence_services.touch(conversation.pk, user=other_manager)
    Presence.objects.filter(user=other_manager).update(
        seen_at=timezone.now() - timedelta(minutes=5)
    )
    client.force_login(manager)
    assert "Also here now:" not in page(client, conversation).text


def test_the_heartbeat_says_when_someone_else_changed_it(client, manager, other_manager):
    conversation = factories.conversation()
    client.force_login(manager)
    url = reverse("conversation_presence", args=[conversation.pk])

    quiet = client.post(url, {"version": 1})
    assert quiet.status_code == 200
    assert "changed this conversation" not in quiet.text

    cs.assign(conversation.pk, other_manager, actor=other_manager)
    presence_services.touch(conversation.pk, user=other_manager)
    changed = client.post(url, {"version": 1})
    assert "other changed this conversation since you opened it." in changed.text
    assert "Also here now:" in changed.text


def test_the_heartbeat_needs_a_role_and_post(client, outsider, manager, conversation):
    url = reverse("conversation_presence", args=[conversation.pk])
    client.force_login(outsider)
    assert client.post(url, {"version": 1}).status_code == 403
    client.force_login(manager)
    assert client.get(url).status_code == 405
    assert client.post(reverse("conversation_presence", args=[999999])).status_code == 404


def test_shortcut_hooks_are_on_the_page(client, manager, conversation):
    client.force_login(manager)
    text = page(client, conversation).text
    for key in ("a", "r", "n"):
        assert f'data-shortcut="{key}"' in text


def test_product_team_has_no_tag_or_merge_forms(client, product, conversation):
    client.force_login(product)
    text = page(client, conversation).text
    assert reverse("conversation_tags", args=[conversation.pk]) not in text
    assert reverse("conversation_merge", args=[conversation.pk]) not in text
    assert (
        client.post(reverse("conversation_tags", args=[conversation.pk]), {"add": "x"}).status_code
        == 403
    )


def _page_queries(client, conversation) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert page(client, conversation).status_code == 200
    return len(captured)


def test_page_queries_do_not_grow_with_tags_presence_or_notifications(
    client, manager, other_manager, conversation
):
    client.force_login(manager)
    page(client, conversation)  # the viewer's own presence row exists from now on
    before = _page_queries(client, conversation)
    tag_services.change_tags(conversation.pk, actor=manager, add=[f"t{i}" for i in range(12)])
    for i in range(6):
        watcher = factories.user(f"watcher{i}")
        presence_services.touch(conversation.pk, user=watcher)
        cs.add_note(conversation.pk, actor=watcher, text="@manager look")
    assert _page_queries(client, conversation) == before
