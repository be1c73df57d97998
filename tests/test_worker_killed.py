"""A real worker process killed with SIGKILL in the middle of an enrichment job: nothing it
did is kept, and the sweeper's retry does the work exactly once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from engage import tasks
from engage.choices import EventKind
from engage.items import parse_item
from engage.models import Conversation, Event, Message
from engage.services.ingest import ingest

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"),
        reason="needs a worker process on Redis and PostgreSQL row locks; CI sets both",
    ),
]

ROOT = Path(__file__).resolve().parent.parent


def _dsn() -> str:
    db = connection.settings_dict
    return (
        f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


def _waiting_for_a_lock(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as watcher:
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchone()
    return row[0] > 0


def test_a_worker_killed_mid_job_leaves_nothing_half_written_and_the_retry_adds_no_duplicate(
    queue,
):
    outcome = ingest(
        [
            parse_item(
                {
                    "source": "push",
                    "external_id": "1",
                    "channel": "twitter",
                    "author": "@ada",
                    "text": "Pessimo servizio: voglio un rimborso, ancora nessuna risposta!",
                }
            )
        ]
    )[0]
    assert len(queue.jobs) == 1  # the enrichment job, queued on commit
    dsn = _dsn()
    env = {**os.environ, "DATABASE_URL": dsn, "DATABASE_POOL": "0"}

    # Hold the conversation's row lock, so the worker stops inside its transaction.
    with psycopg.connect(dsn) as holder:
        holder.execute(
            "SELECT id FROM engage_conversation WHERE id = %s FOR UPDATE", [outcome.conversation]
        )
        worker = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "rqworker",
                "default",
                "--burst",
                "--worker-class",
                "rq.SimpleWorker",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not _waiting_for_a_lock(dsn):
                assert worker.poll() is None, "the worker ended before it reached the lock"
                assert time.monotonic() < deadline, "the worker never reached the lock"
                time.sleep(0.2)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
        holder.rollback()
    # The killed worker's connection is gone, and its transaction with it.
    deadline = time.monotonic() + 30
    while _waiting_for_a_lock(dsn) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert worker.returncode == -signal.SIGKILL
    assert Message.objects.get().enriched_at is None
    assert not Event.objects.filter(kind=EventKind.PRIORITY_CHANGED).exists()

    assert tasks.sweep_unenriched(older_than_seconds=0) == 1
    assert tasks.sweep_unenriched(older_than_seconds=0) == 0

    conversation = Conversation.objects.get()
    assert conversation.language == "it"
    assert Event.objects.filter(kind=EventKind.PRIORITY_CHANGED).count() == 1
