"""The admin: every page renders, changelists cost a fixed number of queries, and every
write goes through a service (read-only fields stay put, refusals become messages)."""

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from engage import tasks
from engage.admin import CappedCountPaginator
from engage.choices import EventKind, Priority, Stage, State, TicketStatus
from engage.models import (
    ApiToken,
    Contact,
    Conversation,
    Event,
    FeedbackLink,
    FeedbackTicket,
    Message,
    Note,
    Notification,
    Source,
    Tag,
)
from engage.services import conversations as services
from engage.services import feedback as feedback_services
from engage.services import tokens as token_services
from engage.services.conversations import first_response_due
from tests import factories

ALL_MODELS = (
    Source, Contact, Tag, Conversation, Message, Note, Event, FeedbackTicket, FeedbackLink,
    Notification, ApiToken,
)  # fmt: skip


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:engage_{model._meta.model_name}_{view}", args=args)


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _action(client, model, action: str, *pks):
    return client.post(
        _url(model, "changelist"), {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks]}
    )


def _form_data(response) -> dict:
    """What the browser would send back for a change page: its form and inline management."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if hasattr(value, "pk"):
            value = value.pk
        data[name] = "" if value is None else value
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            value = management.initial.get(name, management[name].value())
            data[f"{management.prefix}-{name}"] = value
    return data


@pytest.fixture
def worked(manager, product):
    """A conversation taken to react, with a note, a reply, a ticket and its evidence."""
    conversation = factories.conversation(text="La lancia vapore perde pressione")
    services.assign(conversation.pk, manager, actor=manager)
    services.advance(conversation.pk, actor=manager)
    services.log_reply(conversation.pk, actor=manager, text="Ti richiamiamo oggi.")
    services.advance(conversation.pk, actor=manager)
    services.add_note(conversation.pk, actor=manager, text="Probabile guarnizione.")
    ticket = feedback_services.create_ticket(
        actor=manager, title="Steam wand", conversation_id=conversation.pk, quote="perde pressione"
    )
    feedback_services.update_ticket(ticket.pk, actor=product, owner=product)
    tasks.notify_new_evidence(ticket.links.get().pk)
    token_services.create_token(manager, name="ci")
    Tag.objects.create(name="vapore")
    conversation.refresh_from_db()
    return conversation


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda model: model.__name__)
def test_changelist_and_change_page_render_for_a_superuser(admin_client, worked, model):
    changelist = admin_client.get(_url(model, "changelist"))
    assert changelist.status_code == 200
    obj = model.objects.order_by("pk").first()
    assert obj is not None, f"the fixture made no {model.__name__}"
    assert admin_client.get(_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize(
    ("model", "can_add"),
    [
        (Source, True), (Contact, True), (Tag, True), (FeedbackTicket, True),
        (Conversation, False), (Message, False), (Note, False), (Event, False),
        (FeedbackLink, False), (Notification, False), (ApiToken, False),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)  # fmt: skip
def test_only_configuration_and_tickets_can_be_added(admin_client, db, model, can_add):
    assert admin_client.get(_url(model, "add")).status_code == (200 if can_add else 403)


def _changelist_queries(client, model) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(_url(model, "changelist")).status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "model",
    [Conversation, Message, Event, Note, FeedbackLink, FeedbackTicket, Contact],
    ids=lambda model: model.__name__,
)
def test_changelists_run_a_fixed_number_of_queries(admin_client, manager, model):
    def work(n):
        for _ in range(n):
            conversation = factories.conversation()
            services.assign(conversation.pk, manager, actor=manager)
            services.add_note(conversation.pk, actor=manager, text="note")
            feedback_services.create_ticket(
                actor=manager, title="t", conversation_id=conversation.pk, quote="q"
            )

    work(2)
    few = _changelist_queries(admin_client, model)
    work(10)
    assert _changelist_queries(admin_client, model) == few


def test_stage_and_cycle_fields_cannot_be_changed_by_posting(admin_client, conversation):
    url = _url(Conversation, "change", conversation.pk)
    data = _form_data(admin_client.get(url))
    assert "stage" not in data
    data.update(stage=Stage.SELL, cycle=5, version=9, state=State.CLOSED, needs_follow_up="on")

    response = admin_client.post(url, data)

    assert response.status_code == 302
    conversation.refresh_from_db()
    assert (conversation.stage, conversation.cycle, conversation.version) == (Stage.LISTEN, 1, 1)
    assert conversation.state == State.OPEN
    assert not conversation.needs_follow_up
    assert not conversation.events.exclude(kind=EventKind.CREATED).exists()


def test_priority_is_saved_through_the_service(admin_client, admin_user, conversation):
    url = _url(Conversation, "change", conversation.pk)
    data = _form_data(admin_client.get(url))
    data["priority"] = Priority.URGENT

    assert admin_client.post(url, data).status_code == 302

    conversation.refresh_from_db()
    assert conversation.priority == Priority.URGENT
    assert conversation.first_response_due_at == first_response_due(
        conversation.received_at, Priority.URGENT
    )
    assert conversation.version == 2
    event = conversation.events.get(kind=EventKind.PRIORITY_CHANGED)
    assert event.actor == admin_user
    assert event.data == {"from": "normal", "to": "urgent"}


def test_advance_action_reports_the_refusal_instead_of_failing(admin_client, conversation):
    assert conversation.assignee is None

    response = _action(admin_client, Conversation, "advance_one_step", conversation.pk)

    assert response.status_code == 302
    assert any("Assign someone before moving to interact" in text for text in _messages(response))
    conversation.refresh_from_db()
    assert conversation.stage == Stage.LISTEN


def test_actions_assign_advance_close_and_reopen_through_services(
    admin_client, admin_user, conversation
):
    other = factories.conversation()  # stays unassigned: advancing it is refused

    _action(admin_client, Conversation, "assign_to_me", conversation.pk)
    response = _action(admin_client, Conversation, "advance_one_step", conversation.pk, other.pk)

    texts = _messages(response)
    assert any(f"#{conversation.pk}" in text and "one step" in text for text in texts)
    assert any(text.startswith(f"#{other.pk}: Assign someone") for text in texts)
    conversation.refresh_from_db()
    assert (conversation.assignee, conversation.stage) == (admin_user, Stage.INTERACT)
    assert conversation.events.filter(kind=EventKind.STAGE_CHANGED, actor=admin_user).exists()

    _action(admin_client, Conversation, "close", conversation.pk)
    conversation.refresh_from_db()
    assert conversation.state == State.CLOSED
    _action(admin_client, Conversation, "reopen", conversation.pk)
    _action(admin_client, Conversation, "unassign", conversation.pk)
    conversation.refresh_from_db()
    assert (conversation.state, conversation.assignee) == (State.OPEN, None)


def test_conversations_cannot_be_added_or_deleted(admin_client, conversation):
    model_admin = admin.site._registry[Conversation]
    request = admin_client.get(_url(Conversation, "changelist")).wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_delete_permission(request, conversation)
    assert "delete_selected" not in model_admin.get_actions(request)
    assert admin_client.post(_url(Conversation, "delete", conversation.pk)).status_code == 403
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_search_by_number_and_by_words(admin_client, conversation):
    other = factories.conversation(text="Il macinino si blocca")

    by_number = admin_client.get(_url(Conversation, "changelist"), {"q": f"#{other.pk}"})
    by_words = admin_client.get(_url(Conversation, "changelist"), {"q": "macinino"})

    assert list(by_number.context["cl"].result_list) == [other]
    assert list(by_words.context["cl"].result_list) == [other]


def test_mark_shipped_flags_a_follow_up_for_everyone_who_asked(admin_client, manager, product):
    first, second = factories.conversation(), factories.conversation()
    ticket = feedback_services.create_ticket(
        actor=manager, title="Descale reminder", conversation_id=first.pk, quote="remind me"
    )
    feedback_services.link_evidence(ticket.pk, second.pk, actor=manager, quote="remind me too")

    response = _action(admin_client, FeedbackTicket, "mark_shipped", ticket.pk)

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.SHIPPED
    assert set(Conversation.objects.filter(needs_follow_up=True).values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
    }
    assert Event.objects.filter(kind=EventKind.FOLLOW_UP_FLAGGED).count() == 2
    assert any("2 people to tell" in text for text in _messages(response))


def test_ticket_status_is_read_only_and_text_is_saved_through_the_service(admin_client, admin_user):
    response = admin_client.post(
        _url(FeedbackTicket, "add"),
        {"title": "  Tazze alte  ", "problem": "Non entrano", "product_area": "Mini",
         "owner": "", "status": TicketStatus.SHIPPED,
         "links-TOTAL_FORMS": 0, "links-INITIAL_FORMS": 0},
    )  # fmt: skip
    assert response.status_code == 302
    ticket = FeedbackTicket.objects.get()
    assert (ticket.title, ticket.status, ticket.created_by) == (
        "Tazze alte", TicketStatus.NEW, admin_user
    )  # fmt: skip
    assert ticket.events.filter(kind=EventKind.TICKET_CREATED).exists()

    url = _url(FeedbackTicket, "change", ticket.pk)
    data = _form_data(admin_client.get(url))
    data.update(title="Tazze alte sotto l'erogatore", owner=admin_user.pk, status="declined")
    assert admin_client.post(url, data).status_code == 302

    ticket.refresh_from_db()
    assert ticket.title == "Tazze alte sotto l'erogatore"
    assert ticket.owner == admin_user
    assert ticket.status == TicketStatus.NEW
    event = ticket.events.get(kind=EventKind.TICKET_UPDATED)
    assert event.data == {"title": "Tazze alte sotto l'erogatore", "owner": admin_user.username}


def test_event_admin_is_read_only(admin_client, conversation):
    event = conversation.events.get()
    model_admin = admin.site._registry[Event]
    request = admin_client.get(_url(Event, "changelist")).wsgi_request

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
    assert "delete_selected" not in model_admin.get_actions(request)
    assert admin_client.get(_url(Event, "add")).status_code == 403
    assert admin_client.post(_url(Event, "delete", event.pk)).status_code == 403
    admin_client.post(_url(Event, "change", event.pk), {"kind": "restarted", "reason": "x"})
    event.refresh_from_db()
    assert (event.kind, event.reason) == (EventKind.CREATED, "")


def test_token_admin_never_shows_the_hash_and_revokes(admin_client, manager):
    token, raw = token_services.create_token(manager, name="ci")

    page = admin_client.get(_url(ApiToken, "change", token.pk)).content.decode()
    assert token.prefix in page
    assert token.key_hash not in page
    assert raw not in page

    _action(admin_client, ApiToken, "revoke", token.pk)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token_services.authenticate(raw) is None


def test_capped_paginator_counts_exactly_below_the_cap_and_never_under_it_above(monkeypatch, db):
    monkeypatch.setattr(CappedCountPaginator, "CAP", 5)
    for _ in range(8):
        factories.conversation()

    assert CappedCountPaginator(Conversation.objects.filter(pk__lt=0).order_by("pk"), 2).count == 0
    few = Conversation.objects.order_by("pk")[:3].values_list("pk", flat=True)
    assert (
        CappedCountPaginator(Conversation.objects.filter(pk__in=list(few)).order_by("pk"), 2).count
        == 3
    )
    # Above the cap PostgreSQL estimates; it never reports fewer than the cap allows.
    assert CappedCountPaginator(Conversation.objects.order_by("pk"), 2).count >= 6


def test_history_is_searched_by_conversation_number(admin_client, manager, conversation):
    other = factories.conversation()
    services.assign(other.pk, manager, actor=manager)

    found = admin_client.get(_url(Event, "changelist"), {"q": f"#{other.pk}"})
    nothing = admin_client.get(_url(Event, "changelist"), {"q": "assigned"})

    assert {event.conversation_id for event in found.context["cl"].result_list} == {other.pk}
    assert len(found.context["cl"].result_list) == 2
    assert list(nothing.context["cl"].result_list) == []


def test_links_from_a_conversation_to_its_full_history_work(admin_client, worked):
    for model in (Message, Note, Event, FeedbackLink):
        response = admin_client.get(
            _url(model, "changelist"), {"conversation__id__exact": worked.pk}
        )
        assert response.status_code == 200
        rows = list(response.context["cl"].result_list)
        assert rows
        assert {row.conversation_id for row in rows} == {worked.pk}
