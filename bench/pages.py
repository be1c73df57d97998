"""Server time of the main pages on whatever database DATABASE_URL names.

    DATABASE_URL=postgres://… .venv/bin/python bench/pages.py [--runs 20]

Fill the database first (`manage.py demo` then `manage.py demo --conversations 1000000`).
Requests go through Django's test client in this process (no network, no gunicorn): the
figures are the view's own cost — middleware, queries, template — as a median and 95th
percentile over the runs, with the number of SQL queries each page ran.
"""

import argparse
import html
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from engage.models import Conversation, FeedbackTicket  # noqa: E402

NEXT = re.compile(r'<a href="([^"]*)" rel="next">')


def measure(client: Client, url: str, runs: int) -> tuple[float, float, int, int]:
    client.get(url)  # warm up caches and the connection
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, len(queries), response.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--user", default="manager")
    args = parser.parse_args()

    user = get_user_model().objects.get(username=args.user)
    client = Client()
    client.force_login(user)
    total = Conversation.objects.count()
    busy = Conversation.objects.order_by("-id").values_list("pk", flat=True).first()
    ticket = FeedbackTicket.objects.order_by("id").values_list("pk", flat=True).first()

    # Walk 20 pages deep by the page's own "Next page" link, then time that page.
    deep = "/queue/"
    for _ in range(20):
        found = NEXT.search(client.get(deep).text)
        if not found:
            break
        deep = html.unescape(found.group(1))

    pages = {
        "queue (default)": "/queue/",
        "queue stage=listen, assignee=nobody": "/queue/?stage=listen&assignee=none",
        "queue overdue, language=it": "/queue/?overdue=on&language=it",
        "queue text search": "/queue/?q=calcare",
        "queue sort=newest": "/queue/?sort=newest",
        "queue 20 pages deep": deep,
        "conversation page": f"/conversations/{busy}/",
        "saved replies": "/saved-replies/",
        "feedback board": "/feedback/",
        "ticket page": f"/feedback/{ticket}/" if ticket else "/feedback/",
    }
    print(f"{connection.vendor}, {total:,} conversations, {args.runs} runs each, user {user}")
    print(f"{'page':40} {'median ms':>10} {'p95 ms':>8} {'queries':>8} {'status':>7}")
    for name, url in pages.items():
        median, p95, count, status = measure(client, url, args.runs)
        print(f"{name:40} {median:10.1f} {p95:8.1f} {count:8d} {status:7d}")


if __name__ == "__main__":
    main()
