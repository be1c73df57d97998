"""The sources API under /api/v1/sources: reads for every role, writes for staff, the
polling health in every answer, and the API's error shapes (403, 404, 422)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from engage import tasks
from engage.choices import SourceKind
from engage.models import Source
from engage.services import sources as services
from engage.services import tokens
from tests import factories
from tests.conftest import work

pytestmark = pytest.mark.django_db

API = "/api/v1"
UNREACHABLE = "http://127.0.0.1:9/feed.xml"
HEALTH = {
    "last_polled_at",
    "last_success_at",
    "last_error",
    "last_error_at",
    "failures",
    "items_added_last",
    "items_added_total",
    "next_poll_at",
    "is_active",
    "removed_at",
}


def post(client, path, data=None):
    return client.post(API + path, data or {}, content_type="application/json")


def patch(client, path, data):
    return client.patch(API + path, data, content_type="application/json")


def fields(response) -> set[str]:
    assert response.status_code == 422, response.content
    return {error["field"] for error in response.json()["detail"]}


def feed(actor, name="Espresso blog", url="https://example.com/feed.xml", **more) -> Source:
    return services.add_feed(actor=actor, name=name, url=url, **more)


BODY = {
    "name": "Forum",
    "url": "https://forum.example.com/rss",
    "channel": "forum",
    "keywords": "espresso, lancia",
    "poll_interval_minutes": 30,
}


# Reads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "product", "staff"])
def test_every_role_lists_the_sources_in_use(client, request, staff, role):
    kept = feed(staff, name="B kept")
    first = feed(staff, name="A first")
    gone = feed(staff, name="C gone")
    services.remove(gone.pk, actor=staff)
    client.force_login(request.getfixturevalue(role))

    listed = client.get(API + "/sources")
    everything = client.get(API + "/sources?removed=true")

    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["items"]] == [first.pk, kept.pk]
    assert [s["id"] for s in everything.json()["items"]] == [first.pk, kept.pk, gone.pk]
    assert everything.json()["items"][2]["removed_at"] is not None


def test_a_source_shows_its_health(as_manager, staff):
    now = timezone.now()
    source = feed(staff, keywords="lancia")
    Source.objects.filter(pk=source.pk).update(
        last_polled_at=now,
        last_error="The server answered 500.",
        last_error_at=now,
        failures=2,
        items_added_total=12,
    )

    response = as_manager.get(f"{API}/sources/{source.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= HEALTH
    assert body["id"] == source.pk
    assert (body["name"], body["kind"], body["channel"]) == ("Espresso blog", "feed", "blog")
    assert (body["url"], body["keywords"]) == ("https://example.com/feed.xml", "lancia")
    assert (body["failures"], body["items_added_total"], body["items_added_last"]) == (2, 12, 0)
    assert body["last_error"] == "The server answered 500."
    assert body["is_active"] is True
    assert body["removed_at"] is None
    assert body["last_success_at"] is None
    assert body["next_poll_at"] is not None


def test_an_unknown_source_is_404(as_staff):
    for response in (
        as_staff.get(f"{API}/sources/999"),
        patch(as_staff, "/sources/999", {"name": "x"}),
        as_staff.delete(f"{API}/sources/999"),
        post(as_staff, "/sources/999/restore"),
        post(as_staff, "/sources/999/poll"),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": "Source 999 does not exist."}


def test_reads_need_a_role_and_a_login(client, outsider, staff):
    source = feed(staff)
    assert client.get(API + "/sources").status_code == 401
    client.force_login(outsider)
    assert client.get(API + "/sources").status_code == 403
    assert client.get(f"{API}/sources/{source.pk}").status_code == 403


def test_a_token_reads_the_sources(client, manager, staff):
    feed(staff)
    _token, raw = tokens.create_token(manager, name="ci")
    response = client.get(API + "/sources", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200
    assert len(response.json()["items"]) == 1


# Writes --------------------------------------------------------------------------------------


def test_staff_add_a_feed(as_staff):
    response = post(as_staff, "/sources", BODY)

    assert response.status_code == 201, response.content
    body = response.json()
    source = Source.objects.get()
    assert body["id"] == source.pk
    assert (source.kind, source.name, source.channel) == (SourceKind.FEED, "Forum", "forum")
    assert (source.keywords, source.poll_interval_minutes) == ("espresso, lancia", 30)
    assert services.due_feeds() == [source.pk]
    assert body["last_polled_at"] is None
    assert body["failures"] == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "not an address"}, "url"),
        ({"url": "ftp://example.com/feed"}, "url"),
        ({"url": ""}, "url"),
        ({"channel": "myspace"}, "channel"),
        ({"name": "   "}, "name"),
        ({"name": "Taken"}, "name"),
        ({"poll_interval_minutes": 0}, "poll_interval_minutes"),
        ({"poll_interval_minutes": 7 * 24 * 60 + 1}, "poll_interval_minutes"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_an_invalid_feed_is_422_naming_the_field(as_staff, staff, change, field):
    feed(staff, name="Taken")

    response = post(as_staff, "/sources", BODY | change)

    assert fields(response) == {field}
    assert list(Source.objects.values_list("name", flat=True)) == ["Taken"]


def test_a_feed_needs_a_name_and_an_address(as_staff):
    assert fields(post(as_staff, "/sources", {"channel": "blog"})) == {"name", "url"}


def test_patch_changes_only_what_is_sent(as_staff, staff):
    source = feed(staff)
    Source.objects.filter(pk=source.pk).update(
        etag='"v3"', next_poll_at=timezone.now() + timedelta(hours=1)
    )

    response = patch(as_staff, f"/sources/{source.pk}", {"keywords": "lancia", "channel": "forum"})

    assert response.status_code == 200, response.content
    assert (response.json()["keywords"], response.json()["channel"]) == ("lancia", "forum")
    source.refresh_from_db()
    assert (source.name, source.url, source.etag) == (
        "Espresso blog", "https://example.com/feed.xml", '"v3"',
    )  # fmt: skip
    assert source.next_poll_at > timezone.now()


def test_patch_pauses_and_resumes(as_staff, staff):
    source = feed(staff)
    Source.objects.filter(pk=source.pk).update(failures=3)

    paused = patch(as_staff, f"/sources/{source.pk}", {"is_active": False})
    assert paused.status_code == 200
    assert paused.json()["is_active"] is False
    assert services.due_feeds() == []
    # Pausing a paused source changes nothing.
    assert patch(as_staff, f"/sources/{source.pk}", {"is_active": False}).json() == paused.json()

    resumed = patch(as_staff, f"/sources/{source.pk}", {"is_active": True, "name": "Renamed"})
    assert resumed.status_code == 200
    assert (resumed.json()["is_active"], resumed.json()["failures"]) == (True, 0)
    assert resumed.json()["name"] == "Renamed"
    assert services.due_feeds() == [source.pk]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "nope"}, "url"),
        ({"channel": "myspace"}, "channel"),
        ({"name": None}, "name"),
        ({"is_active": None}, "is_active"),
        ({"kind": "api"}, "kind"),
        ({"failures": 0}, "failures"),
        ({"name": "Taken"}, "name"),
    ],
)
def test_an_invalid_patch_is_422_and_changes_nothing(as_staff, staff, body, field):
    feed(staff, name="Taken")
    source = feed(staff)
    before = Source.objects.filter(pk=source.pk).values().get()

    response = patch(as_staff, f"/sources/{source.pk}", body | {"keywords": "changed"})

    assert fields(response) == {field}
    assert Source.objects.filter(pk=source.pk).values().get() == before


def test_delete_removes_and_restore_brings_back(as_staff, staff):
    source = feed(staff)

    removed = as_staff.delete(f"{API}/sources/{source.pk}")
    assert removed.status_code == 200
    assert removed.json()["removed_at"] is not None
    assert removed.json()["is_active"] is False
    assert as_staff.get(API + "/sources").json()["items"] == []
    assert as_staff.get(f"{API}/sources/{source.pk}").json()["removed_at"] is not None

    restored = post(as_staff, f"/sources/{source.pk}/restore")
    assert restored.status_code == 200
    assert restored.json()["removed_at"] is None
    assert restored.json()["is_active"] is False  # paused until resumed
    assert [s["id"] for s in as_staff.get(API + "/sources").json()["items"]] == [source.pk]


def test_poll_queues_the_job_and_the_outcome_is_recorded(
    as_staff, staff, queue, django_capture_on_commit_callbacks
):
    source = feed(staff, url=UNREACHABLE)
    Source.objects.filter(pk=source.pk).update(next_poll_at=timezone.now() + timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(as_staff, f"/sources/{source.pk}/poll")
    work(queue)

    assert response.status_code == 202, response.content
    assert response.json()["next_poll_at"] is not None
    assert callbacks[0].func is tasks.enqueue
    assert callbacks[0].args == (tasks.poll_feed, source.pk)
    polled = as_staff.get(f"{API}/sources/{source.pk}").json()
    assert polled["last_polled_at"] is not None
    assert polled["failures"] == 1
    assert polled["last_error"]


def test_poll_is_refused_for_a_source_that_is_not_a_feed(as_staff):
    factories.conversation(source="pushed")
    pushed = Source.objects.get(name="pushed")

    response = post(as_staff, f"/sources/{pushed.pk}/poll")

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"field": "kind", "msg": "Only feeds are polled.", "type": "invalid"}
    ]


def test_poll_is_refused_for_a_paused_feed(as_staff, staff):
    from engage.services import sources as source_services

    feed = source_services.add_feed(actor=staff, name="paused", url="https://blog.example/feed")
    source_services.set_active(feed.pk, actor=staff, active=False)

    response = post(as_staff, f"/sources/{feed.pk}/poll")

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "Resume this feed before polling it."


@pytest.mark.parametrize("role", ["manager", "product"])
def test_only_staff_write(client, request, staff, role):
    source = feed(staff)
    removed = feed(staff, name="Removed")
    services.remove(removed.pk, actor=staff)
    before = list(Source.objects.order_by("pk").values())
    client.force_login(request.getfixturevalue(role))

    for response in (
        post(client, "/sources", BODY),
        patch(client, f"/sources/{source.pk}", {"is_active": False}),
        client.delete(f"{API}/sources/{source.pk}"),
        post(client, f"/sources/{removed.pk}/restore"),
        post(client, f"/sources/{source.pk}/poll"),
        # Refused before the id is looked up: the existence of a source does not leak.
        patch(client, "/sources/999", {"is_active": False}),
    ):
        assert response.status_code == 403
        assert response.json() == {"detail": "Only staff can change sources."}
    assert list(Source.objects.order_by("pk").values()) == before


def test_the_schema_documents_the_sources_endpoints(client, db):
    paths = client.get(API + "/openapi.json").json()["paths"]
    assert set(paths["/api/v1/sources"]) == {"get", "post"}
    assert set(paths["/api/v1/sources/{source_id}"]) == {"get", "patch", "delete"}
    assert "post" in paths["/api/v1/sources/{source_id}/poll"]
    assert "post" in paths["/api/v1/sources/{source_id}/restore"]
