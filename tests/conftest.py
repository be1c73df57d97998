import threading
from concurrent.futures import ThreadPoolExecutor

import django_rq
import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.utils import translation
from rq import SimpleWorker

from engage.choices import Role
from tests import factories
from tests.feed_server import feed_server  # noqa: F401 - a local feed publisher for any test


@pytest.fixture
def manager(db):
    return factories.user("manager", role=Role.COMMUNITY_MANAGER)


@pytest.fixture
def other_manager(db):
    return factories.user("other", role=Role.COMMUNITY_MANAGER)


@pytest.fixture
def product(db):
    return factories.user("product", role=Role.PRODUCT_TEAM)


@pytest.fixture
def outsider(db):
    """A logged-in user with no role: sees nothing."""
    return factories.user("outsider", role=None)


@pytest.fixture
def staff(db):
    return factories.user("admin", role=None, is_staff=True, is_superuser=True)


@pytest.fixture
def as_manager(client, manager):
    """The test client, logged in as a community manager."""
    client.force_login(manager)
    return client


@pytest.fixture
def as_product(client, product):
    client.force_login(product)
    return client


@pytest.fixture
def as_staff(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def conversation(db):
    return factories.conversation()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Real hashing costs ~0.3 s a user; tests create many users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_fragments_from_other_tests():
    """The page fragments each web process keeps (CACHES["fragments"]) start empty."""
    caches["fragments"].clear()


@pytest.fixture(autouse=True)
def _english_by_default():
    """LocaleMiddleware leaves the last request's language active in the test thread."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


def _empty(queue) -> None:
    """Empty the queue and its failed jobs: a test that makes a job fail on purpose must not
    leave it behind for a later run against the same Redis database."""
    queue.empty()
    failed = queue.failed_job_registry
    for job_id in failed.get_job_ids():
        try:
            failed.remove(job_id, delete_job=True)
        except ValueError:
            # A job abandoned by a killed worker (tests/test_worker_killed.py) and moved here
            # by a later worker's clean-up has lost its execution record; rq's delete then
            # fails looking for it. Drop the entry and the job's own key.
            failed.remove(job_id, delete_job=False)
            queue.connection.delete(f"rq:job:{job_id}")


@pytest.fixture
def queue():
    """The default job queue, empty: Redis when REDIS_URL is set, else the in-process one."""
    queue = django_rq.get_queue("default")
    if queue.is_async:  # the in-process fallback keeps nothing to empty
        _empty(queue)
    yield queue
    if queue.is_async:
        _empty(queue)


def work(queue) -> None:
    """Run every queued job in this process (jobs ran inline already when there is no Redis)."""
    if queue.is_async:
        SimpleWorker([queue], connection=queue.connection).work(burst=True)


def run_in_threads(count: int, work):
    """Run work(i) in `count` threads that start together; return results or exceptions."""
    barrier = threading.Barrier(count)

    def wrapped(i):
        try:
            barrier.wait()
            return work(i)
        except Exception as error:  # noqa: BLE001 - the test inspects what each thread got
            return error
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(wrapped, range(count)))
