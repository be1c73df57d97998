"""The feed poller end to end: a feed served by a local HTTP server, polled by the jobs,
stored as conversations, its outcome recorded on the source. Faults never crash it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from engage import tasks
from engage.choices import Channel
from engage.models import Conversation, Source
from engage.services import sources
from tests.conftest import work

pytestmark = pytest.mark.django_db

COMMENTS = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0">
  <title>Comments on Caffè Aurora's blog</title>
  <id>urn:blog:comments</id>
  <updated>2026-11-20T10:00:00Z</updated>
  <entry>
    <id>urn:comment:1</id>
    <title>Comment by Marta</title>
    <author><name>Marta</name><uri>https://blog.example/marta</uri></author>
    <link href="https://blog.example/post#comment-1"/>
    <published>2026-11-20T09:00:00Z</published>
    <updated>2026-11-20T09:00:00Z</updated>
    <content type="html">&lt;p&gt;La nuova miscela di &lt;b&gt;Caffè Aurora&lt;/b&gt; è ottima &amp;amp; profumata ☕&lt;/p&gt;</content>
  </entry>
  <entry>
    <id>urn:comment:2</id>
    <title>Comment by Luca</title>
    <author><name>Luca</name></author>
    <link href="https://blog.example/post#comment-2"/>
    <published>2026-11-20T09:30:00Z</published>
    <updated>2026-11-20T09:30:00Z</updated>
    <thr:in-reply-to ref="urn:comment:1"/>
    <content type="html">Anche per me, ma la consegna di Aurora è lenta</content>
  </entry>
  <entry>
    <id>urn:comment:3</id>
    <title>Comment by Sara</title>
    <author><name>Sara</name></author>
    <link href="https://blog.example/other#comment-3"/>
    <published>2026-11-20T09:45:00Z</published>
    <updated>2026-11-20T09:45:00Z</updated>
    <content type="html">Qualcuno ha provato la ricetta della torta?</content>
  </entry>
</feed>
"""


@pytest.fixture
def local(settings, feed_server):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = ["127.0.0.1"]
    return feed_server


def feed(staff, url, **fields) -> Source:
    fields.setdefault("name", "Aurora blog comments")
    return sources.add_feed(actor=staff, url=url, channel=Channel.BLOG, **fields)


def test_a_due_feed_is_polled_by_the_scheduled_jobs_and_its_entries_become_threaded_conversations(
    staff, local, queue, django_capture_on_commit_callbacks
):
    source = feed(staff, local.route("/comments", COMMENTS, content_type="application/atom+xml"))

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.poll_due_feeds() == 1
    work(queue)

    source.refresh_from_db()
    assert source.last_error == ""
    assert source.last_success_at is not None
    assert source.failures == 0
    assert source.items_added_last == 3
    assert source.items_added_total == 3
    assert source.next_poll_at > timezone.now() + timedelta(minutes=14)
    first = Conversation.objects.get(external_id="urn:comment:1")
    assert first.text == "La nuova miscela di Caffè Aurora è ottima & profumata ☕"
    assert first.url == "https://blog.example/post#comment-1"
    assert first.contact.name == "Marta"
    assert first.source == source
    # Luca answered Marta: his comment joins her conversation.
    assert set(first.messages.values_list("external_id", flat=True)) == {
        "urn:comment:1",
        "urn:comment:2",
    }
    assert Conversation.objects.count() == 2
    # Not due again yet: the next scheduled run leaves it alone.
    assert tasks.poll_due_feeds() == 0


def test_the_keyword_filter_keeps_only_posts_about_the_brand(staff, local):
    source = feed(staff, local.route("/comments", COMMENTS), keywords="aurora")

    result = tasks.poll_feed(source.pk)

    assert result.added == 2
    assert not Conversation.objects.filter(external_id="urn:comment:3").exists()


def test_polling_again_sends_the_etag_and_a_304_adds_nothing(staff, local):
    url = local.route(
        "/comments", COMMENTS, etag='"v1"', last_modified="Fri, 20 Nov 2026 10:00:00 GMT"
    )
    source = feed(staff, url)
    tasks.poll_feed(source.pk)
    Source.objects.filter(pk=source.pk).update(next_poll_at=timezone.now())

    result = tasks.poll_feed(source.pk)

    source.refresh_from_db()
    assert local.requests[-1].headers["If-None-Match"] == '"v1"'
    assert result.polled
    assert result.added == 0
    assert source.etag == '"v1"'
    assert source.items_added_last == 0
    assert source.items_added_total == 3
    assert Conversation.objects.count() == 2


def test_a_feed_polled_twice_at_once_is_read_once(staff, local):
    source = feed(staff, local.route("/comments", COMMENTS))

    first = tasks.poll_feed(source.pk)
    second = tasks.poll_feed(source.pk)

    assert first.polled
    assert not second.polled
    assert local.paths() == ["/comments"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"body": "<rss><channel><<<&bogus;>>"}, "not valid RSS or Atom"),
        (
            {"body": "<html><body>Hello</body></html>", "content_type": "text/html"},
            "a web page, not a feed",
        ),
        ({"body": "gone", "status": 404}, "404"),
        ({"body": COMMENTS, "delay": 3}, "did not answer"),
    ],
    ids=["malformed", "html", "404", "timeout"],
)
def test_a_broken_feed_records_its_error_and_backs_off(staff, local, settings, answer, expected):
    settings.ENGAGE_FEED_TIMEOUT_SECONDS = 0.5
    source = feed(staff, local.route("/feed", **answer))

    result = tasks.poll_feed(source.pk)

    source.refresh_from_db()
    assert expected in result.error
    assert expected in source.last_error
    assert source.failures == 1
    assert source.last_success_at is None
    assert source.next_poll_at >= timezone.now() + timedelta(minutes=14)
    assert not Conversation.objects.exists()


def test_a_huge_feed_is_refused_without_reading_it_all(staff, local, settings):
    settings.ENGAGE_FEED_MAX_BYTES = 10_000
    source = feed(
        staff,
        local.route("/big", COMMENTS.replace("</feed>", "<!--" + "x" * 50_000 + "--></feed>")),
    )

    result = tasks.poll_feed(source.pk)

    assert "larger than" in result.error
    assert not Conversation.objects.exists()


def test_a_feed_on_a_private_address_is_never_requested_unless_allowed(
    staff, feed_server, settings
):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = []
    source = feed(staff, feed_server.route("/comments", COMMENTS))

    result = tasks.poll_feed(source.pk)

    source.refresh_from_db()
    assert "loopback" in source.last_error
    assert feed_server.requests == []
    assert "loopback" in result.error


def test_failures_in_a_row_back_off_further_and_a_success_resets_them(staff, local):
    source = feed(staff, local.route("/feed", "nope", status=500))
    tasks.poll_feed(source.pk)
    Source.objects.filter(pk=source.pk).update(next_poll_at=timezone.now())
    tasks.poll_feed(source.pk)
    source.refresh_from_db()
    assert source.failures == 2
    assert source.next_poll_at >= timezone.now() + timedelta(minutes=29)

    local.route("/feed", COMMENTS)
    Source.objects.filter(pk=source.pk).update(next_poll_at=timezone.now())
    tasks.poll_feed(source.pk)

    source.refresh_from_db()
    assert source.failures == 0
    assert source.last_error == ""
    assert source.items_added_last == 3


def test_paused_and_removed_feeds_are_not_polled(staff, local):
    paused = feed(staff, local.route("/a", COMMENTS), name="paused")
    removed = feed(staff, local.route("/b", COMMENTS), name="removed")
    sources.set_active(paused.pk, actor=staff, active=False)
    sources.remove(removed.pk, actor=staff)

    assert tasks.poll_due_feeds() == 0
    assert not tasks.poll_feed(paused.pk).polled
    assert local.requests == []
