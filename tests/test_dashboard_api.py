"""GET /api/v1/dashboard: the dashboard's four sections as JSON, for viewers only."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from engage.choices import Stage
from engage.services import tokens
from tests.test_dashboard import build, grow

pytestmark = pytest.mark.django_db

URL = "/api/v1/dashboard"


def get(client, query: str = "", **extra):
    return client.get(URL + query, **extra)


def test_only_viewers_read_the_figures(client, manager, product, staff, outsider):
    assert get(client).status_code == 401
    client.force_login(outsider)
    response = get(client)
    assert response.status_code == 403
    assert "detail" in response.json()
    for user in (manager, product, staff):
        client.force_login(user)
        assert get(client).status_code == 200


def test_a_token_reads_them_too(client, manager):
    _token, raw = tokens.create_token(manager, name="dashboards")
    response = get(client, headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200


def test_the_shape_of_every_section(as_manager, manager, other_manager, product):
    world = build(manager, other_manager, product)

    body = get(as_manager).json()

    assert set(body) == {"scope", "funnel", "responsiveness", "workload", "feedback"}
    assert set(body["scope"]) == {"start", "end", "channel", "assignee"}
    assert body["scope"]["channel"] is None

    funnel = body["funnel"]
    assert [(s["stage"], s["reached"]) for s in funnel["steps"]] == [
        ("listen", 6),
        ("interact", 3),
        ("react", 1),
        ("sell", 1),
    ]
    assert funnel["steps"][0]["conversion"] is None
    assert funnel["steps"][1]["conversion"] == 0.5
    assert funnel["steps"][3]["median_seconds"] is None  # nobody left sell yet
    assert isinstance(funnel["steps"][0]["median_seconds"], float)
    assert funnel["restarts"] == 1
    assert funnel["restart_reasons"] == [{"reason": "Unhappy with the fix", "count": 1}]

    response = body["responsiveness"]
    overall = response["overall"]
    assert set(overall) == {
        "label",
        "conversations",
        "answered",
        "median_seconds",
        "p90_seconds",
        "within_target",
        "breached",
        "share_within_target",
    }
    assert (overall["conversations"], overall["answered"], overall["within_target"]) == (6, 3, 2)
    assert overall["share_within_target"] == 0.5
    assert overall["median_seconds"] == pytest.approx(7200, abs=1)
    assert [row["label"] for row in response["by_priority"]] == ["urgent", "normal"]
    assert {row["label"] for row in response["by_channel"]} == {"twitter", "facebook"}
    assert response["by_person"][-1]["label"] == ""
    assert response["waiting_count"] == 2
    waiting = response["waiting"]
    assert [row["id"] for row in waiting] == [world.overdue.pk, world.fresh.pk]
    assert set(waiting[0]) >= {"id", "priority", "received_at", "first_response_due_at", "contact"}
    assert waiting[0]["assignee"] is None
    assert waiting[0]["priority"] == "normal"

    people = {row["assignee"]: row for row in body["workload"]["people"]}
    assert set(people) == {"manager", "other", None}
    assert people["manager"]["by_stage"] == {"listen": 1, "interact": 0, "react": 0, "sell": 1}
    assert people[None]["total"] == 2
    assert body["workload"]["backlog"] == []

    feedback = body["feedback"]
    assert (feedback["opened"], feedback["shipped"], feedback["declined"]) == (2, 1, 0)
    assert feedback["top"][0] == {
        "id": world.wanted.pk,
        "title": "Dark mode",
        "status": "new",
        "demand": 2,
        "told": 0,
    }
    assert (feedback["told_after_ship"], feedback["to_tell_after_ship"]) == (0, 1)


def test_no_data_gives_zeros_and_nulls(as_manager):
    body = get(as_manager).json()

    assert [step["reached"] for step in body["funnel"]["steps"]] == [0, 0, 0, 0]
    assert {step["conversion"] for step in body["funnel"]["steps"]} == {None}
    assert {step["median_seconds"] for step in body["funnel"]["steps"]} == {None}
    overall = body["responsiveness"]["overall"]
    assert overall["median_seconds"] is None
    assert overall["p90_seconds"] is None
    assert overall["share_within_target"] is None
    assert body["responsiveness"]["by_channel"] == []
    assert body["workload"] == {"people": [], "backlog": []}
    assert body["feedback"]["top"] == []


def test_the_scope_narrows_every_section(as_manager, manager, other_manager, product):
    build(manager, other_manager, product)

    body = get(as_manager, "?period=7d&channel=facebook&assignee=other").json()

    assert body["scope"]["channel"] == "facebook"
    assert body["scope"]["assignee"] == "other"
    assert body["funnel"]["steps"][0]["reached"] == 1  # the restarted one
    assert [row["label"] for row in body["responsiveness"]["by_channel"]] == ["facebook"]
    assert [row["assignee"] for row in body["workload"]["people"]] == ["other"]
    assert body["workload"]["people"][0]["by_stage"][Stage.LISTEN] == 1

    days = get(as_manager, "?start=2020-01-01&end=2020-01-31").json()
    assert days["scope"]["start"].startswith("2020-01-01T00:00:00")
    assert days["funnel"]["steps"][0]["reached"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?period=1y", "period"),
        ("?channel=myspace", "channel"),
        ("?start=2026-02-30&end=2026-03-01", "start"),
        ("?start=2026-03-01", "end"),
        ("?start=2026-03-05&end=2026-03-01", "end"),
        ("?assignee=ghost", "assignee"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(as_manager, query, field):
    response = get(as_manager, query)

    assert response.status_code == 422, response.content
    assert field in {error["field"] for error in response.json()["detail"]}


def test_the_schema_documents_the_endpoint(client):
    schema = client.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/dashboard"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {
        "period",
        "start",
        "end",
        "channel",
        "assignee",
    }
    assert "DashboardOut" in schema["components"]["schemas"]


def test_the_figures_cost_the_same_queries_whatever_the_data(
    client, manager, other_manager, product, django_assert_num_queries
):
    build(manager, other_manager, product)
    client.force_login(manager)
    with CaptureQueriesContext(connection) as small:
        assert get(client).status_code == 200
    grow(manager, other_manager, product, 24)
    client.force_login(manager)

    with django_assert_num_queries(len(small.captured_queries)):
        assert get(client).status_code == 200
