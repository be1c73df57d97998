"""Jobs go through the real queue (Redis when REDIS_URL is set) and tolerate running twice."""

import os

import django_rq
import pytest
from rq import SimpleWorker

from engage import tasks
from engage.choices import TicketStatus
from engage.models import Notification
from engage.services import conversations as cs
from engage.services import feedback as fs
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queue(settings):
    queue = django_rq.get_queue("default")
    if queue.is_async:  # the in-process fallback keeps nothing to empty
        queue.empty()
    yield queue
    if queue.is_async:
        queue.empty()


def work(queue) -> None:
    """Run every queued job in this process (jobs inline already when there is no Redis)."""
    if queue.is_async:
        SimpleWorker([queue], connection=queue.connection).work(burst=True)


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


def test_jobs_for_deleted_rows_return_quietly(queue):
    assert tasks.notify_follow_ups(999_999) == 0
    assert tasks.notify_new_evidence(999_999) is False


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="only when REDIS_URL names a server")
def test_jobs_go_to_the_redis_server_named_by_redis_url(queue):
    assert queue.is_async
    assert queue.connection.ping()
