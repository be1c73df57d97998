"""One claimer process of bench/run.py's claim-next measurement: its own interpreter and
database connection, as each web worker is, so that sixteen of them measure the database
and the service rather than one process's GIL.

Run by multiprocessing ("spawn"): `claim(username, ready, start, seconds, results)` says it
is ready (connected), waits for the shared start event, then calls claim_next as `username` in a loop until `seconds` have
passed or nothing is left, and puts (ids, latencies) on `results`.
"""

import os
import sys
import time
from pathlib import Path


def claim(username: str, ready, start, seconds: float, results) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from engage import permissions
    from engage.services.conversations import claim_next

    user = get_user_model().objects.get(username=username)
    ids, latencies = [], []
    permissions.can_work(user)  # warm up: the connection and the roles' query
    ready.put(username)
    start.wait()
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            conversation = claim_next(actor=user)
            latencies.append(time.perf_counter() - began)
            if conversation is None:
                break
            ids.append(conversation.pk)
    except Exception as error:  # noqa: BLE001 - reported by the parent
        results.put((username, ids, latencies, repr(error)))
        return
    finally:
        connection.close()
    results.put((username, ids, latencies, ""))
