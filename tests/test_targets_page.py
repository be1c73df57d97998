"""The first-response targets page (/targets/): who sees it, how staff change a target (a
303 through engage.services.targets.set_target, which moves the due times of conversations
still waiting), validation on the form, query counts; and the ResponseTarget admin, whose
saves call the same service."""

import html
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from engage.choices import Priority
from engage.models import Conversation, ResponseTarget
from engage.services import conversations as services
from engage.services.targets import set_target
from tests import factories

TARGETS = reverse("targets")


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def text_of(html_text: str) -> str:
    body = re.sub(r"<[^>]+>", " ", html_text)
    return re.sub(r"\s+", " ", html.unescape(body)).strip()


def row_of(response, key: str) -> str:
    match = re.search(rf'<tr id="target-{key}".*?</tr>', response.content.decode(), re.S)
    assert match, f"no row for {key}"
    return match.group(0)


def within(response, key: str) -> str:
    row = row_of(response, key)
    return text_of(re.search(r"<td data-within>(.*?)</td>", row, re.S).group(1))


def stored() -> list[tuple]:
    """The targets as stored (migration 0008 seeds the four defaults, by nobody)."""
    return list(
        ResponseTarget.objects.order_by("priority").values_list("pk", "minutes", "updated_by")
    )


def received(hours_ago: float, **fields) -> Conversation:
    """A conversation that arrived `hours_ago` (fixture state), still waiting unless told."""
    conversation = factories.conversation()
    Conversation.objects.filter(pk=conversation.pk).update(
        received_at=timezone.now() - timedelta(hours=hours_ago), **fields
    )
    return Conversation.objects.get(pk=conversation.pk)


# Who sees the page -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "product", "staff"])
def test_every_role_sees_the_four_targets(client, request, role):
    client.force_login(request.getfixturevalue(role))

    response = client.get(TARGETS)

    assert response.status_code == 200
    assert [row.key for row in response.context["rows"]] == ["urgent", "high", "normal", "low"]
    assert [within(response, key) for key in ("urgent", "high", "normal", "low")] == [
        "1 hour",
        "4 hours",
        "24 hours",
        "72 hours",
    ]
    # The warning starts in the last quarter, never later than 15 minutes before.
    assert "15 minutes before" in row_of(response, "urgent")
    assert "18 hours before" in row_of(response, "low")
    assert "Never: the default" in row_of(response, "normal")


def test_a_changed_target_says_who_changed_it_and_when(as_manager, staff):
    staff.first_name, staff.last_name = "Ada", "Admin"
    staff.save()
    set_target(Priority.HIGH, actor=staff, minutes=90)

    response = as_manager.get(TARGETS)

    row = row_of(response, "high")
    assert within(response, "high") == "1 hour 30 minutes"
    assert "by Ada Admin" in text_of(row)
    assert "<time datetime=" in row
    assert "Never: the default" in row_of(response, "urgent")


def test_anonymous_is_sent_to_log_in(client, db):
    before = stored()
    for response in (client.get(TARGETS), client.post(TARGETS, {"priority": "low", "hours": 1})):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert stored() == before


def test_a_user_without_a_role_is_refused(client, outsider):
    before = stored()
    client.force_login(outsider)
    assert client.get(TARGETS).status_code == 403
    assert client.post(TARGETS, {"priority": "low", "hours": 1}).status_code == 403
    assert stored() == before


@pytest.mark.parametrize("role", ["manager", "product"])
def test_only_staff_change_targets(client, request, role, db):
    before = stored()
    client.force_login(request.getfixturevalue(role))

    page = client.get(TARGETS).content.decode()
    response = client.post(TARGETS, {"priority": "urgent", "hours": "2", "minutes": "0"})

    assert 'method="post"' not in page.split("<main", 1)[1]
    assert "Only staff change the targets." in page
    assert response.status_code == 403
    assert stored() == before


def test_staff_get_a_form_per_priority_filled_with_the_target(as_staff):
    page = as_staff.get(TARGETS).content.decode()

    for key, hours in (("urgent", 1), ("high", 4), ("normal", 24), ("low", 72)):
        form = re.search(rf'<tr id="target-{key}".*?</form>', page, re.S).group(0)
        assert f'name="priority" value="{key}"' in form
        assert f'id="target-{key}-hours"' in form
        assert f'name="hours" value="{hours}"' in form
        assert 'name="minutes" value="0"' in form
    assert "Only staff change the targets." not in page


def test_other_methods_are_refused(as_staff):
    assert as_staff.put(TARGETS).status_code == 405
    assert as_staff.delete(TARGETS).status_code == 405


# Changing a target -------------------------------------------------------------------------


def test_staff_change_a_target_and_waiting_conversations_follow(as_staff, staff, manager):
    waiting = received(2, priority=Priority.NORMAL)
    answered = received(2, priority=Priority.NORMAL)
    services.log_reply(answered.pk, actor=manager, text="Here we are.")
    answered_due = Conversation.objects.get(pk=answered.pk).first_response_due_at
    other = received(2, priority=Priority.HIGH)

    response = as_staff.post(TARGETS, {"priority": "normal", "hours": "8", "minutes": "30"})

    assert response.status_code == 303
    assert response["Location"] == TARGETS + "#target-normal"
    target = ResponseTarget.objects.get(priority=Priority.NORMAL)
    assert (target.minutes, target.updated_by) == (8 * 60 + 30, staff)
    assert Conversation.objects.get(pk=waiting.pk).first_response_due_at == (
        waiting.received_at + timedelta(hours=8, minutes=30)
    )
    assert Conversation.objects.get(pk=answered.pk).first_response_due_at == answered_due
    assert Conversation.objects.get(pk=other.pk).first_response_due_at == (
        other.first_response_due_at
    )
    page = as_staff.get(response["Location"])
    assert within(page, "normal") == "8 hours 30 minutes"
    assert messages_of(response) == [
        "Normal conversations are now due within 8 hours 30 minutes; those still waiting "
        "for a first answer were given their new due time."
    ]


@pytest.mark.parametrize(
    ("data", "minutes"),
    [
        ({"hours": "", "minutes": "45"}, 45),
        ({"hours": "2", "minutes": ""}, 120),
        ({"minutes": "90"}, 90),
        ({"hours": "168", "minutes": "0"}, 7 * 24 * 60),
    ],
)
def test_hours_and_minutes_or_only_minutes(as_staff, data, minutes):
    response = as_staff.post(TARGETS, {"priority": "urgent", **data})

    assert response.status_code == 303
    assert ResponseTarget.objects.get(priority=Priority.URGENT).minutes == minutes


def test_saving_the_same_target_changes_nothing(as_staff):
    before = stored()
    response = as_staff.post(TARGETS, {"priority": "high", "hours": "4", "minutes": "0"})

    assert response.status_code == 303
    assert messages_of(response) == ["Nothing changed."]
    assert stored() == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hours": "", "minutes": ""}, "Enter hours, minutes or both."),
        (
            {"hours": "0", "minutes": "0"},
            "A target is between 1 minute and 7 days (10,080 minutes).",
        ),
        (
            {"hours": "168", "minutes": "1"},
            "A target is between 1 minute and 7 days (10,080 minutes).",
        ),
        ({"hours": "two", "minutes": "0"}, "Enter a whole number of hours."),
        ({"hours": "1", "minutes": "-5"}, "Enter a whole number of minutes."),
        ({"hours": "99999999999999999999", "minutes": "0"}, "A target is between 1 minute"),
    ],
)
def test_a_refused_target_shows_the_error_on_its_form(as_staff, data, message):
    before = stored()
    response = as_staff.post(TARGETS, {"priority": "low", **data})

    assert response.status_code == 422
    row = row_of(response, "low")
    assert message in html.unescape(row)
    assert "<details open>" in row
    # The other rows keep their own, untouched forms.
    assert "<details open>" not in row_of(response, "urgent")
    assert message not in html.unescape(row_of(response, "urgent"))
    # What was typed stays in the form.
    for name in ("hours", "minutes"):
        if data[name]:
            assert f'name="{name}" value="{data[name]}"' in row
    assert stored() == before


def test_an_unknown_priority_is_a_clear_error(as_staff):
    before = stored()
    response = as_staff.post(TARGETS, {"priority": "whenever", "hours": "1"})

    assert response.status_code == 422
    assert "Choose one of the four priorities." in response.content.decode()
    assert stored() == before


# Query counts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    # Session, user, roles (not for staff: the flag says it all), the targets with who
    # changed them, unread notifications, the header's availability toggle (only for
    # those who work conversations: the product team has none).
    [("manager", 6), ("product", 5), ("staff", 5)],
)
def test_page_queries_are_fixed(client, request, staff, role, expected, django_assert_num_queries):
    for priority in Priority:
        set_target(priority, actor=factories.user(role=None, is_staff=True), minutes=30)
    client.force_login(request.getfixturevalue(role))

    with django_assert_num_queries(expected):
        response = client.get(TARGETS)

    assert response.status_code == 200
    assert all(row.stored for row in response.context["rows"])


# The admin ---------------------------------------------------------------------------------


def test_admin_saves_go_through_the_service(as_staff, staff):
    waiting = received(1, priority=Priority.URGENT)
    change = reverse("admin:engage_responsetarget_change", args=[Priority.URGENT])

    response = as_staff.post(change, {"minutes": 50})

    assert response.status_code == 302
    target = ResponseTarget.objects.get(priority=Priority.URGENT)
    assert (target.minutes, target.updated_by) == (50, staff)
    assert Conversation.objects.get(pk=waiting.pk).first_response_due_at == (
        waiting.received_at + timedelta(minutes=50)
    )


def test_admin_adds_a_missing_target_through_the_service(as_staff, staff):
    ResponseTarget.objects.filter(priority=Priority.LOW).delete()  # fixture state
    waiting = received(1, priority=Priority.LOW)
    add = reverse("admin:engage_responsetarget_add")

    response = as_staff.post(add, {"priority": Priority.LOW, "minutes": 45})

    assert response.status_code == 302
    target = ResponseTarget.objects.get(priority=Priority.LOW)
    assert (target.minutes, target.updated_by) == (45, staff)
    assert Conversation.objects.get(pk=waiting.pk).first_response_due_at == (
        waiting.received_at + timedelta(minutes=45)
    )


def test_admin_refusals_become_messages(as_staff):
    before = stored()
    change = reverse("admin:engage_responsetarget_change", args=[Priority.LOW])

    response = as_staff.post(change, {"minutes": 20_000})

    assert response.status_code == 302
    assert "A target is between 1 minute and 7 days (10,080 minutes)." in messages_of(response)
    assert stored() == before


def test_admin_cannot_delete_a_target(as_staff, staff):
    set_target(Priority.LOW, actor=staff, minutes=60)
    delete = reverse("admin:engage_responsetarget_delete", args=[Priority.LOW])

    assert as_staff.post(delete, {"post": "yes"}).status_code == 403
    assert ResponseTarget.objects.filter(priority=Priority.LOW).exists()


def test_admin_lists_conversations_by_sla_state(as_staff, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(sla_state="breached")
    changelist = reverse("admin:engage_conversation_changelist")

    flagged = as_staff.get(changelist + "?sla_state__exact=breached")
    calm = as_staff.get(changelist + "?sla_state__exact=at_risk")

    assert [c.pk for c in flagged.context["cl"].result_list] == [conversation.pk]
    assert list(calm.context["cl"].result_list) == []
    assert "Breached" in flagged.content.decode()
