"""Jobs go through the real queue (Redis when REDIS_URL is set) and tolerate running twice."""

import os

import pytest

from engage import tasks
from engage.choices import TicketStatus
from engage.models import Notification
from engage.services import conversations as cs
from engage.services import feedback as fs
from tests import factories
from tests.conftest import work

pytestmark = pytest.mark.django_db(transaction=True)


def test_shipping_enqueues_one_notification_per_assignee_and_a_rerun_adds_none(queue):
    manager, product = factories.user("manager"), factories.user("product", role="product_team")
    asked = factories.conversation()
    cs.assign(asked.pk, manager, actor=manager)
    ticket = fs.create_ticket(
        actor=manager, title="Milk frother", conversation_id=asked.pk, quote="q"
    )
    unassigned = factories.conversation()  # flagged too, but there is nobody to notify
    fs.link_evidence(ticket.pk, unassigned.pk, actor=manager, quote="q")

    fs.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product)
    work(queue)

    notice = Notification.objects.get()
    assert (notice.user, notice.conversation_id, notice.ticket_id) == (manager, asked.pk, ticket.pk)
    assert "Milk frother" in notice.text

    # The same job again (a retry after a crash) changes nothing.
    queue.enqueue(tasks.notify_follow_ups, ticket.pk)
    work(queue)
    assert Notification.objects.count() == 1
    if queue.is_async:
        assert queue.count == 0
        assert queue.failed_job_registry.count == 0


def test_new_evidence_notifies_the_ticket_owner_once(queue):
    manager, product = factories.user("manager"), factories.user("product", role="product_team")
    ticket = fs.create_ticket(actor=product, title="Bigger water tank")
    fs.update_ticket(ticket.pk, actor=product, owner=product)

    link = fs.link_evidence(
        ticket.pk, factories.conversation().pk, actor=manager, quote="tiny tank"
    )
    work(queue)
    assert tasks.notify_new_evidence(link.pk) is False  # already done: running twice is harmless

    notice = Notification.objects.get()
    assert (notice.user, notice.ticket_id) == (product, ticket.pk)


# Email ------------------------------------------------------------------------------------
# mailoutbox: pytest-django's locmem outbox (Django's test set-up points MAILERS at locmem).


@pytest.fixture
def emails_on(settings):
    settings.ENGAGE_EMAIL_NOTIFICATIONS = True
    settings.ENGAGE_SITE_URL = "https://engage.example/"


def test_new_evidence_is_emailed_to_the_owner_once_by_the_job(queue, mailoutbox, emails_on):
    manager = factories.user("manager")
    product = factories.user("product", role="product_team", email="pat@example.com")
    ticket = fs.create_ticket(actor=product, title="Bigger water tank")
    fs.update_ticket(ticket.pk, actor=product, owner=product)
    conversation = factories.conversation(handle="ada")

    link = fs.link_evidence(ticket.pk, conversation.pk, actor=manager, quote="The tank is tiny")
    if queue.is_async:  # with Redis the request only enqueued: nothing is sent until a worker runs
        assert mailoutbox == []
    work(queue)
    queue.enqueue(tasks.notify_new_evidence, link.pk)
    work(queue)

    assert Notification.objects.count() == 1
    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == ["pat@example.com"]
    assert email.subject == "[engage] New evidence for “Bigger water tank”"
    assert f"New evidence for “Bigger water tank” from conversation #{conversation.pk}." in (
        email.body
    )
    assert "said: “The tank is tiny”" in email.body
    assert f"https://engage.example/feedback/{ticket.pk}/" in email.body


def test_follow_ups_are_emailed_to_assignees_once_with_the_product_note(
    queue, mailoutbox, emails_on
):
    manager = factories.user("manager", email="mia@example.com")
    nameless = factories.user("nameless")  # no address: in the app only
    product = factories.user("product", role="product_team", email="pat@example.com")
    asked, also = factories.conversation(), factories.conversation()
    cs.assign(asked.pk, manager, actor=manager)
    cs.assign(also.pk, nameless, actor=nameless)
    ticket = fs.create_ticket(actor=manager, title="Milk frother", conversation_id=asked.pk)
    fs.link_evidence(ticket.pk, also.pk, actor=nameless, quote="q")

    fs.change_ticket_status(ticket.pk, TicketStatus.SHIPPED, actor=product, note="In 2.3.")
    work(queue)
    queue.enqueue(tasks.notify_follow_ups, ticket.pk)
    work(queue)

    assert Notification.objects.filter(key__startswith="follow-up:").count() == 2
    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == ["mia@example.com"]
    assert email.subject == "[engage] Tell the person: “Milk frother” is Shipped"
    assert "The product team's note: In 2.3." in email.body
    assert f"https://engage.example/conversations/{asked.pk}/" in email.body


def test_no_email_unless_the_setting_allows_it(queue, mailoutbox, settings):
    assert not getattr(settings, "ENGAGE_EMAIL_NOTIFICATIONS", False)  # the default
    manager = factories.user("manager")
    product = factories.user("product", role="product_team", email="pat@example.com")
    ticket = fs.create_ticket(actor=product, title="Bigger water tank")
    fs.update_ticket(ticket.pk, actor=product, owner=product)

    fs.link_evidence(ticket.pk, factories.conversation().pk, actor=manager, quote="q")
    work(queue)

    assert Notification.objects.count() == 1
    assert mailoutbox == []


def test_a_failed_email_leaves_the_notice_to_the_next_run(
    queue, mailoutbox, emails_on, monkeypatch
):
    manager = factories.user("manager")
    product = factories.user("product", role="product_team", email="pat@example.com")
    ticket = fs.create_ticket(actor=product, title="Bigger water tank")
    fs.update_ticket(ticket.pk, actor=product, owner=product)
    real_send_mail = tasks.send_mail

    def broken(*args, **kwargs):
        raise ConnectionRefusedError("no mail server")

    monkeypatch.setattr(tasks, "send_mail", broken)
    link = fs.link_evidence(ticket.pk, factories.conversation().pk, actor=manager, quote="q")
    work(queue)  # the job fails (rq records it); the notice it wrote is taken back
    assert Notification.objects.count() == 0

    monkeypatch.setattr(tasks, "send_mail", real_send_mail)
    queue.enqueue(tasks.notify_new_evidence, link.pk)  # the retry
    work(queue)
    queue.enqueue(tasks.notify_new_evidence, link.pk)
    work(queue)

    assert Notification.objects.count() == 1
    assert len(mailoutbox) == 1


def test_jobs_for_deleted_rows_return_quietly(queue):
    assert tasks.notify_follow_ups(999_999) == 0
    assert tasks.notify_new_evidence(999_999) is False


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="only when REDIS_URL names a server")
def test_jobs_go_to_the_redis_server_named_by_redis_url(queue):
    assert queue.is_async
    assert queue.connection.ping()
