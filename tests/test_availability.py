"""Community managers' availability for round robin: the service, the toggle in every
page's header (/availability/), and the admin of teams, availability and routing rules."""

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from engage.models import Availability, RoutingRule, Tag, Team
from engage.services import availability as services

TOGGLE = reverse("availability")
QUEUE = reverse("queue")


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def state(user) -> bool | None:
    row = Availability.objects.filter(user=user).first()
    return None if row is None else row.is_available


# The service ---------------------------------------------------------------------------------


def test_set_available_creates_the_row_then_flips_it(manager):
    assert state(manager) is None
    assert services.is_available(manager) is False  # no row yet: away

    assert services.set_available(manager, available=True).is_available is True
    assert state(manager) is True
    assert services.is_available(manager) is True

    assert services.set_available(manager, available=False).is_available is False
    assert state(manager) is False
    assert Availability.objects.count() == 1


def test_set_available_is_idempotent_and_keeps_the_round_robin_turn(manager):
    turn = timezone.now()
    services.set_available(manager, available=True)
    Availability.objects.filter(user=manager).update(last_assigned_at=turn, max_open=3)

    first = services.set_available(manager, available=True)
    second = services.set_available(manager, available=True)

    assert (first.is_available, second.is_available) == (True, True)
    row = Availability.objects.get()
    assert (row.is_available, row.last_assigned_at, row.max_open) == (True, turn, 3)


@pytest.mark.parametrize("role", ["product", "outsider"])
def test_only_people_who_work_conversations_set_it(request, role):
    user = request.getfixturevalue(role)
    with pytest.raises(PermissionDenied):
        services.set_available(user, available=True)
    assert not Availability.objects.exists()
    assert services.is_available(user) is None


# The toggle --------------------------------------------------------------------------------


def test_a_manager_toggles_from_any_page_and_comes_back_to_it(client, manager):
    client.force_login(manager)
    page = client.get(QUEUE).content.decode()
    assert f'action="{TOGGLE}"' in page
    assert 'data-availability="away"' in page
    assert "Take new conversations" in page

    back = reverse("sources") + "?removed=1"
    response = client.post(TOGGLE, {"available": "1", "next": back})

    assert response.status_code == 303
    assert response["Location"] == back
    assert messages_of(response) == ["You are available: new conversations may be given to you."]
    assert state(manager) is True
    page = client.get(back).content.decode()
    assert 'data-availability="available"' in page
    assert "Available for new conversations" in page

    response = client.post(TOGGLE, {"available": "0", "next": back})
    assert state(manager) is False
    assert messages_of(response)[-1] == "You are away: no new conversations are given to you."


def test_the_toggle_is_idempotent_through_the_page(client, manager):
    client.force_login(manager)
    client.post(TOGGLE, {"available": "1"})
    client.post(TOGGLE, {"available": "1"})
    assert list(Availability.objects.values_list("user", "is_available")) == [(manager.pk, True)]


def test_staff_who_work_conversations_see_the_toggle_too(client, staff):
    client.force_login(staff)
    assert f'action="{TOGGLE}"' in client.get(QUEUE).content.decode()


def test_the_product_team_neither_sees_nor_uses_it(client, product):
    client.force_login(product)
    assert f'action="{TOGGLE}"' not in client.get(reverse("feedback_board")).content.decode()
    assert client.post(TOGGLE, {"available": "1"}).status_code == 403
    assert not Availability.objects.exists()


def test_anonymous_is_sent_to_log_in(client, db):
    response = client.post(TOGGLE, {"available": "1"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert client.get(reverse("login")).status_code == 200  # the header without a user


def test_it_never_sends_anyone_to_another_site(client, manager):
    client.force_login(manager)
    response = client.post(TOGGLE, {"available": "1", "next": "https://evil.example.com/"})
    assert response["Location"] == QUEUE
    response = client.post(TOGGLE, {"available": "1", "next": "//evil.example.com/"})
    assert response["Location"] == QUEUE


@pytest.mark.parametrize("data", [{}, {"available": "maybe"}])
def test_a_bad_value_changes_nothing(client, manager, data):
    client.force_login(manager)
    response = client.post(TOGGLE, data)
    assert response.status_code == 303
    assert messages_of(response) == ["Choose whether you are available or away."]
    assert state(manager) is None


def test_a_get_changes_nothing(client, manager):
    client.force_login(manager)
    assert client.get(TOGGLE + "?available=1").status_code == 405
    assert state(manager) is None


# The admin ---------------------------------------------------------------------------------


def _admin(model, view: str, *args) -> str:
    return reverse(f"admin:engage_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def routing(manager, other_manager):
    team = Team.objects.create(name="Italian desk")
    team.members.add(manager, other_manager)
    services.set_available(manager, available=True)
    rule = RoutingRule.objects.create(name="Italian to the desk", language="it", team=team)
    rule.add_tags.add(Tag.objects.create(name="italia"))
    return team, rule


@pytest.mark.parametrize("model", [Team, Availability, RoutingRule], ids=lambda m: m.__name__)
def test_admin_pages_render(client, staff, routing, model):
    client.force_login(staff)
    assert client.get(_admin(model, "changelist")).status_code == 200
    assert client.get(_admin(model, "add")).status_code == 200
    obj = model.objects.first()
    assert client.get(_admin(model, "change", obj.pk)).status_code == 200


def test_admin_lists_show_what_routing_needs(client, staff, routing, manager):
    client.force_login(staff)
    teams = client.get(_admin(Team, "changelist")).content.decode()
    assert "Italian desk" in teams
    rules = client.get(_admin(RoutingRule, "changelist")).content.decode()
    assert "italia" in rules
    assert "the first that names an assignee or a team decides" in rules
    change = client.get(_admin(RoutingRule, "change", routing[1].pk)).content.decode()
    assert "Every matching rule adds its tags" in change
    people = client.get(_admin(Availability, "changelist"))
    assert [row.user for row in people.context["cl"].result_list] == [manager]
    page = client.get(_admin(Availability, "change", manager.pk))
    assert "last_assigned_at" not in page.context["adminform"].form.fields
    assert "user" not in page.context["adminform"].form.fields


def test_admin_offers_only_community_managers_as_members(client, staff, manager, product):
    client.force_login(staff)
    form = client.get(_admin(Team, "add")).context["adminform"].form
    offered = set(form.fields["members"].queryset)
    assert manager in offered
    assert product not in offered


def test_admin_edits_rule_positions_in_the_list(client, staff, routing):
    _team, rule = routing
    client.force_login(staff)
    response = client.post(
        _admin(RoutingRule, "changelist"),
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(rule.pk),
            "form-0-position": "7",
            "form-0-is_active": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.position == 7


def test_a_rule_cannot_name_both_an_assignee_and_a_team(client, staff, routing, manager):
    team, _rule = routing
    client.force_login(staff)
    response = client.post(
        _admin(RoutingRule, "add"),
        {
            "name": "Both",
            "position": "1",
            "is_active": "on",
            "channel": "",
            "language": "",
            "keywords": "",
            "assignee": str(manager.pk),
            "team": str(team.pk),
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert RoutingRule.objects.count() == 1
