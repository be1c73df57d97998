"""The sources page (/sources/): who sees it, what staff change through it (every write a
303 through engage.services.sources), the health of each feed, escaping, query counts; and
the Source admin, whose saves and actions call the same services."""

import html
import re
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from engage import tasks
from engage.choices import SourceKind
from engage.errors import InvalidInput
from engage.models import Source
from engage.services import sources as services
from tests import factories
from tests.conftest import work

SOURCES = reverse("sources")
ADD = reverse("source_add")
# Nothing listens there, and a loopback address is refused before any connection anyway.
UNREACHABLE = "http://127.0.0.1:9/feed.xml"


def feed(actor, name="Espresso blog", url="https://example.com/feed.xml", **fields) -> Source:
    return services.add_feed(actor=actor, name=name, url=url, **fields)


def as_if(source: Source, **fields) -> Source:
    """Fixture state: what past polls left on the source (only the poller writes it)."""
    Source.objects.filter(pk=source.pk).update(**fields)
    source.refresh_from_db()
    return source


def action_url(action: str, source: Source) -> str:
    return reverse(f"source_{action}", args=[source.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def text_of(response) -> str:
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(body))


def row_of(response, source: Source) -> str:
    """The HTML of the source's row in the list."""
    body = response.content.decode()
    match = re.search(rf'<tr id="source-{source.pk}".*?</tr>', body, re.S)
    assert match, f"no row for {source.name}"
    return match.group(0)


def status_of(response, source: Source) -> str:
    return re.search(r'data-source-status="([a-z]+)"', row_of(response, source)).group(1)


# Who sees the page -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "product", "staff"])
def test_every_role_sees_the_sources_in_use(client, request, staff, role):
    kept = feed(staff, name="Kept")
    gone = feed(staff, name="Gone")
    services.remove(gone.pk, actor=staff)
    client.force_login(request.getfixturevalue(role))

    response = client.get(SOURCES)

    assert response.status_code == 200
    assert [row.source for row in response.context["rows"]] == [kept]
    assert f'href="{SOURCES}"' in response.content.decode()  # in the navigation


def test_show_removed_lists_them_too_after_the_others(as_manager, staff):
    gone = feed(staff, name="A gone")
    kept = feed(staff, name="B kept")
    services.remove(gone.pk, actor=staff)

    page = as_manager.get(SOURCES + "?removed=1")

    assert [row.source for row in page.context["rows"]] == [kept, gone]
    assert status_of(page, gone) == "removed"
    assert f'href="{SOURCES}"' in page.content.decode()  # "Hide removed sources"


def test_anonymous_is_sent_to_log_in(client, db):
    response = client.get(SOURCES)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_is_refused(client, outsider):
    client.force_login(outsider)
    assert client.get(SOURCES).status_code == 403


def test_staff_controls_are_shown_to_staff_only(client, staff, manager):
    source = feed(staff)
    staff_only = [ADD, action_url("edit", source), action_url("pause", source)]
    staff_only += [action_url("poll", source), action_url("remove", source)]

    client.force_login(manager)
    body = client.get(SOURCES).content.decode()
    assert not [url for url in staff_only if url in body]
    assert "Only staff add, change, pause and remove sources." in body

    client.force_login(staff)
    body = client.get(SOURCES).content.decode()
    assert [url for url in staff_only if url not in body] == []


@pytest.mark.parametrize("role", ["manager", "product"])
def test_other_roles_cannot_write(client, request, staff, role):
    source = feed(staff)
    removed = feed(staff, name="Removed")
    services.remove(removed.pk, actor=staff)
    before = list(Source.objects.order_by("pk").values())
    client.force_login(request.getfixturevalue(role))

    data = {"name": "Mine", "url": "https://example.com/x", "channel": "blog"}
    data |= {"poll_interval_minutes": 5}
    assert client.post(ADD, data).status_code == 403
    assert client.get(action_url("edit", source)).status_code == 403
    assert client.post(action_url("edit", source), data).status_code == 403
    for action in ("pause", "resume", "remove", "poll"):
        assert client.post(action_url(action, source)).status_code == 403, action
    assert client.post(action_url("restore", removed)).status_code == 403

    assert list(Source.objects.order_by("pk").values()) == before


def test_anonymous_writes_go_to_the_login_page(client, staff):
    source = feed(staff)
    response = client.post(action_url("pause", source))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert Source.objects.get(pk=source.pk).is_active


def test_writes_are_post_only(as_staff, staff):
    source = feed(staff)
    assert as_staff.get(action_url("pause", source)).status_code == 405
    assert as_staff.get(ADD).status_code == 405
    assert Source.objects.get(pk=source.pk).is_active


# Adding a feed -----------------------------------------------------------------------------


def test_staff_add_a_feed_that_is_due_at_once(as_staff):
    before = timezone.now()
    response = as_staff.post(
        ADD,
        {
            "name": " Espresso forum ",
            "url": "https://forum.example.com/rss",
            "channel": "forum",
            "keywords": "espresso, lancia",
            "poll_interval_minutes": "30",
        },
    )

    source = Source.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"{SOURCES}#source-{source.pk}"
    assert messages_of(response) == ["Feed “Espresso forum” added: it is polled within a minute."]
    assert (source.name, source.kind, source.channel) == ("Espresso forum", "feed", "forum")
    assert (source.url, source.keywords) == ("https://forum.example.com/rss", "espresso, lancia")
    assert source.poll_interval_minutes == 30
    assert source.is_active
    assert source.removed_at is None
    assert before <= source.next_poll_at <= timezone.now()
    assert services.due_feeds() == [source.pk]

    page = as_staff.get(SOURCES)
    assert status_of(page, source) == "never"
    assert "due now" in text_of(page)


@pytest.mark.parametrize("url", ["http://", "https:///feed", "ftp://example.com/feed", "feed"])
def test_the_service_refuses_a_feed_address_the_form_would_refuse(staff, url):
    """The API and the admin reach add_feed and update_source without the page's form."""
    kept = feed(staff, name="Kept")

    with pytest.raises(InvalidInput) as refused:
        services.add_feed(actor=staff, name="New", url=url)
    assert refused.value.field == "url"
    with pytest.raises(InvalidInput):
        services.update_source(kept.pk, actor=staff, url=url)

    assert list(Source.objects.values_list("name", "url")) == [("Kept", kept.url)]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": "not an address"}, "url", "Enter a full http:// or https:// address."),
        ({"url": "ftp://example.com/feed"}, "url", "A feed address starts with http:// or https://."),
        ({"url": ""}, "url", "Enter the feed's address."),
        ({"name": "  "}, "name", "Give the source a name."),
        ({"name": "Taken"}, "name", "A source named “Taken” already exists."),
        ({"channel": "myspace"}, "channel", "Select a valid choice. myspace is not one of the available choices."),
        ({"poll_interval_minutes": "0"}, "poll_interval_minutes", "Poll every 1 to 10,080 minutes (a week)."),
    ],
)  # fmt: skip
def test_a_refused_feed_shows_the_error_on_the_form(as_staff, staff, fields, field, message):
    feed(staff, name="Taken")
    data = {"name": "New", "url": "https://example.com/feed", "channel": "blog"}
    data |= {"poll_interval_minutes": "15", **fields}

    response = as_staff.post(ADD, data)

    assert response.status_code == 422
    form = response.context["add_form"]
    assert [str(error) for error in form.errors[field]] == [message]
    assert message in html.unescape(response.content.decode())
    assert 'id="add-feed" open' in response.content.decode()
    assert list(Source.objects.values_list("name", flat=True)) == ["Taken"]


# Changing a source -------------------------------------------------------------------------


def test_staff_edit_a_feed_and_only_what_changed_is_sent(as_staff, staff):
    source = as_if(feed(staff), etag='"v7"', next_poll_at=timezone.now() + timedelta(hours=1))
    page = as_staff.get(action_url("edit", source))
    assert page.status_code == 200
    assert page.context["edit_form"].initial["url"] == "https://example.com/feed.xml"

    response = as_staff.post(
        action_url("edit", source),
        {
            "name": "Espresso blog (EN)",
            "url": "https://example.com/feed.xml",
            "channel": "blog",
            "keywords": "lancia",
            "poll_interval_minutes": "60",
        },
    )

    assert response.status_code == 303
    assert messages_of(response) == ["Source “Espresso blog (EN)” saved."]
    source.refresh_from_db()
    assert (source.name, source.keywords, source.poll_interval_minutes) == (
        "Espresso blog (EN)", "lancia", 60,
    )  # fmt: skip
    # The address did not change: the server's caching headers and the schedule stay.
    assert source.etag == '"v7"'
    assert source.next_poll_at > timezone.now()


def test_a_new_address_is_polled_at_once(as_staff, staff):
    source = as_if(feed(staff), etag='"v7"', next_poll_at=timezone.now() + timedelta(hours=1))
    data = {"name": source.name, "url": "https://example.com/other.xml", "channel": "blog"}
    data |= {"keywords": "", "poll_interval_minutes": "15"}

    assert as_staff.post(action_url("edit", source), data).status_code == 303

    source.refresh_from_db()
    assert (source.url, source.etag) == ("https://example.com/other.xml", "")
    assert source.next_poll_at <= timezone.now()


def test_a_refused_edit_shows_the_error_and_changes_nothing(as_staff, staff):
    feed(staff, name="Taken")
    source = feed(staff)
    data = {"name": "Taken", "url": "ftp://example.com/feed", "channel": "blog"}
    data |= {"poll_interval_minutes": "15"}

    response = as_staff.post(action_url("edit", source), data)

    assert response.status_code == 422
    errors = response.context["edit_form"].errors
    assert [str(e) for e in errors["name"]] == ["A source named “Taken” already exists."]
    source.refresh_from_db()
    assert (source.name, source.url) == ("Espresso blog", "https://example.com/feed.xml")


def test_a_pushed_source_has_only_a_name_and_a_channel_to_edit(as_staff, staff):
    factories.conversation(source="push-api")
    pushed = Source.objects.get(name="push-api")
    assert pushed.kind == SourceKind.API

    page = as_staff.get(action_url("edit", pushed))
    assert set(page.context["edit_form"].fields) == {"name", "channel"}
    response = as_staff.post(action_url("edit", pushed), {"name": "Push", "channel": "other"})

    assert response.status_code == 303
    pushed.refresh_from_db()
    assert (pushed.name, pushed.channel, pushed.url) == ("Push", "other", "")


def test_editing_an_unknown_source_is_404(as_staff):
    assert as_staff.get(reverse("source_edit", args=[999])).status_code == 404


def test_pause_resume_remove_and_restore(as_staff, staff):
    source = as_if(feed(staff), failures=3, next_poll_at=timezone.now() + timedelta(hours=2))

    response = as_staff.post(action_url("pause", source))
    assert response.status_code == 303
    assert response["Location"] == f"{SOURCES}#source-{source.pk}"
    assert messages_of(response) == [
        "“Espresso blog” is paused: it is not polled until you resume it."
    ]
    assert not Source.objects.get(pk=source.pk).is_active
    assert services.due_feeds() == []
    assert status_of(as_staff.get(SOURCES), source) == "paused"

    response = as_staff.post(action_url("resume", source))
    assert messages_of(response)[-1] == "“Espresso blog” is active again."
    source.refresh_from_db()
    assert source.is_active
    assert source.failures == 0
    assert services.due_feeds() == [source.pk]

    response = as_staff.post(action_url("remove", source))
    assert response["Location"] == f"{SOURCES}?removed=1#source-{source.pk}"
    assert messages_of(response)[-1].startswith("“Espresso blog” was removed")
    source.refresh_from_db()
    assert source.removed_at is not None
    assert not source.is_active
    assert as_staff.get(SOURCES).context["rows"] == []
    listed = as_staff.get(SOURCES + "?removed=1")
    assert status_of(listed, source) == "removed"
    assert action_url("restore", source) in row_of(listed, source)
    assert action_url("pause", source) not in row_of(listed, source)

    response = as_staff.post(action_url("restore", source), {"removed": "1"})
    assert response["Location"] == f"{SOURCES}?removed=1#source-{source.pk}"
    assert messages_of(response)[-1] == (
        "“Espresso blog” is restored. It stays paused until you resume it."
    )
    source.refresh_from_db()
    assert source.removed_at is None
    assert not source.is_active
    assert [row.source for row in as_staff.get(SOURCES).context["rows"]] == [source]


def test_an_action_on_an_unknown_source_is_a_message_not_an_error(as_staff):
    response = as_staff.post(reverse("source_pause", args=[4242]))
    assert response.status_code == 303
    assert messages_of(response) == ["Source 4242 does not exist."]


def test_poll_now_polls_the_feed_and_records_the_outcome(
    as_staff, staff, queue, django_capture_on_commit_callbacks
):
    source = as_if(feed(staff, url=UNREACHABLE), next_poll_at=timezone.now() + timedelta(hours=1))
    assert source.last_polled_at is None

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = as_staff.post(action_url("poll", source))
    work(queue)

    assert response.status_code == 303
    assert messages_of(response) == [
        "Polling “Espresso blog” now: reload the page in a moment to see how it went."
    ]
    # The job is queued once the change is committed (and django-rq defers its own push).
    assert callbacks[0].func is tasks.enqueue
    assert callbacks[0].args == (tasks.poll_feed, source.pk)
    source.refresh_from_db()
    assert source.last_polled_at is not None
    assert source.failures == 1
    assert source.last_error
    assert source.last_error_at
    assert source.last_success_at is None
    page = as_staff.get(SOURCES)
    assert status_of(page, source) == "failing"
    assert "Failing once" in text_of(page)


def test_poll_now_is_refused_for_a_source_that_is_not_a_feed(as_staff, staff):
    factories.conversation(source="push-api")
    pushed = Source.objects.get(name="push-api")

    response = as_staff.post(action_url("poll", pushed))

    assert response.status_code == 303
    assert messages_of(response) == ["Only feeds are polled."]


# Health ------------------------------------------------------------------------------------


def test_the_health_of_each_feed_is_shown(as_staff, staff):
    now = timezone.now()
    never = feed(staff, name="A never")
    ok = as_if(
        feed(staff, name="B ok"),
        last_polled_at=now - timedelta(minutes=3),
        last_success_at=now - timedelta(minutes=3),
        items_added_last=4,
        items_added_total=1234,
        next_poll_at=now + timedelta(minutes=12),
    )
    warned = as_if(
        feed(staff, name="C warnings"),
        last_polled_at=now - timedelta(minutes=5),
        last_success_at=now - timedelta(minutes=5),
        last_error="Entry 3 (x) skipped: text: required",
        last_error_at=now - timedelta(minutes=5),
    )
    failing = as_if(
        feed(staff, name="D failing"),
        last_polled_at=now - timedelta(minutes=1),
        last_success_at=now - timedelta(days=2),
        last_error="The server answered 500.",
        last_error_at=now - timedelta(minutes=1),
        failures=3,
        next_poll_at=now + timedelta(hours=1),
    )
    paused = services.set_active(feed(staff, name="E paused").pk, actor=staff, active=False)
    factories.conversation(source="F pushed")
    pushed = Source.objects.get(name="F pushed")

    page = as_staff.get(SOURCES)

    assert {s.name: status_of(page, s) for s in (never, ok, warned, failing, paused, pushed)} == {
        "A never": "never",
        "B ok": "ok",
        "C warnings": "warnings",
        "D failing": "failing",
        "E paused": "paused",
        "F pushed": "push",
    }
    ok_row = text_of_row(page, ok)
    assert "OK" in ok_row
    assert "4 in the last poll" in ok_row
    assert "1,234 in all" in ok_row
    assert "3 minutes ago" in ok_row
    assert "every 15 minutes" in ok_row
    warned_row = text_of_row(page, warned)
    assert "OK, with warnings" in warned_row
    assert "Warnings" in warned_row
    assert "Failed" not in warned_row
    assert "Entry 3 (x) skipped" in warned_row
    failing_row = text_of_row(page, failing)
    assert "Failing 3 times in a row" in failing_row
    assert "Failed" in failing_row
    assert "The server answered 500." in failing_row
    assert "2 days ago" in failing_row  # the last success
    assert "every 15 minutes" in failing_row
    assert "Never polled" in text_of_row(page, never)
    assert "API push" in text_of_row(page, pushed)
    assert "due now" not in text_of_row(page, paused)


def text_of_row(response, source: Source) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", row_of(response, source))))


def test_a_resumed_feed_keeps_its_last_error_as_a_failure_not_a_warning(as_staff, staff):
    now = timezone.now()
    source = as_if(
        feed(staff),
        last_polled_at=now - timedelta(minutes=1),
        last_success_at=now - timedelta(days=1),
        last_error="Timed out.",
        last_error_at=now - timedelta(minutes=1),
        failures=4,
    )
    services.set_active(source.pk, actor=staff, active=False)
    services.set_active(source.pk, actor=staff, active=True)  # failures back to 0

    page = as_staff.get(SOURCES)

    assert status_of(page, source) == "retrying"
    assert "Failed" in text_of_row(page, source)


def test_untrusted_text_is_escaped(as_staff, staff):
    source = as_if(
        feed(
            staff,
            name="<script>alert('name')</script>",
            url='https://example.com/"><script>alert(1)</script>',
            keywords="<img src=x onerror=alert(2)>",
        ),
        last_polled_at=timezone.now(),
        last_error="<script>alert('error')</script>",
        last_error_at=timezone.now(),
        failures=1,
    )

    body = as_staff.get(SOURCES).content.decode()

    assert "<script>alert" not in body
    assert "<img src=x" not in body
    assert "&lt;script&gt;alert(&#x27;error&#x27;)&lt;/script&gt;" in body
    assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in body
    assert "https://example.com/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "style=" not in body
    assert body.count("<script") == body.count('<script src="/static/')
    # The address is text, never a link.
    assert f'href="{source.url}' not in body


def _page_queries(client, staff, count: int) -> int:
    for i in range(Source.objects.count(), count):
        source = feed(staff, name=f"Feed {i:02}", url=f"https://example.com/{i}.xml")
        if i % 3 == 0:
            as_if(source, last_polled_at=timezone.now(), last_error="x", failures=1)
        if i % 4 == 0:
            services.remove(source.pk, actor=staff)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(SOURCES + "?removed=1")
    assert response.status_code == 200
    assert len(response.context["rows"]) == count
    return len(captured)


@pytest.mark.parametrize("role", ["manager", "staff"])
def test_page_queries_do_not_grow_with_sources(
    client, request, staff, role, django_assert_num_queries
):
    client.force_login(request.getfixturevalue(role))
    few = _page_queries(client, staff, 2)
    many = _page_queries(client, staff, 20)

    assert few == many
    # Session, user, roles (none for staff: the flag says it all), the sources, unread
    # notifications, and the header's availability toggle.
    expected = 5 if role == "staff" else 6
    with django_assert_num_queries(expected):
        client.get(SOURCES + "?removed=1")


# The admin ---------------------------------------------------------------------------------


def _admin_url(view: str, *args) -> str:
    return reverse(f"admin:engage_source_{view}", args=args)


def _admin_action(client, action: str, *sources):
    return client.post(
        _admin_url("changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [str(source.pk) for source in sources]},
    )


def test_admin_shows_the_health_read_only(as_staff, staff):
    source = as_if(feed(staff), last_error="Timed out.", failures=2, items_added_total=7)

    changelist = as_staff.get(_admin_url("changelist"))
    assert changelist.status_code == 200
    assert "failing 2 times" in changelist.content.decode()
    change = as_staff.get(_admin_url("change", source.pk))
    assert change.status_code == 200
    form = change.context["adminform"].form
    assert set(form.fields) == {"name", "url", "channel", "keywords", "poll_interval_minutes"}
    assert "Timed out." in change.content.decode()


def test_admin_adds_a_feed_through_the_service(as_staff):
    response = as_staff.post(
        _admin_url("add"),
        {
            "name": "Forum",
            "url": "https://forum.example.com/rss",
            "channel": "forum",
            "keywords": "",
            "poll_interval_minutes": "10",
        },
    )

    assert response.status_code == 302
    source = Source.objects.get()
    assert (source.kind, source.poll_interval_minutes) == (SourceKind.FEED, 10)
    assert source.next_poll_at is not None


def test_admin_refusals_become_messages(as_staff):
    response = as_staff.post(
        _admin_url("add"),
        {"name": "Forum", "url": "ftp://forum.example.com/rss", "channel": "forum"}
        | {"keywords": "", "poll_interval_minutes": "10"},
        follow=True,
    )

    assert response.status_code == 200
    assert "A feed address starts with http:// or https://." in messages_of(response)
    assert not Source.objects.exists()


def test_admin_actions_call_the_services_row_by_row(
    as_staff, staff, queue, django_capture_on_commit_callbacks
):
    first = feed(staff, name="First")
    second = feed(staff, name="Second", url=UNREACHABLE)
    factories.conversation(source="pushed")
    pushed = Source.objects.get(name="pushed")

    response = _admin_action(as_staff, "pause", first, second)
    assert messages_of(response) == [f"Paused: #{first.pk}, #{second.pk}."]
    assert not Source.objects.filter(pk__in=[first.pk, second.pk], is_active=True).exists()

    _admin_action(as_staff, "resume", second)
    assert Source.objects.get(pk=second.pk).is_active

    with django_capture_on_commit_callbacks(execute=True):
        response = _admin_action(as_staff, "poll_now", second, pushed)
    work(queue)
    assert messages_of(response)[-2:] == [
        f"Polling now: #{second.pk}.",
        f"#{pushed.pk}: Only feeds are polled.",
    ]
    assert Source.objects.get(pk=second.pk).last_polled_at is not None

    _admin_action(as_staff, "remove_sources", first)
    assert Source.objects.get(pk=first.pk).removed_at is not None
    _admin_action(as_staff, "restore_sources", first)
    assert Source.objects.get(pk=first.pk).removed_at is None


def test_admin_cannot_delete_a_source(as_staff, staff):
    source = feed(staff)
    assert as_staff.get(_admin_url("delete", source.pk)).status_code == 403
