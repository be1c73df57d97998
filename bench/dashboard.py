"""Server time of the dashboard's figures (engage.metrics) on whatever database DATABASE_URL names.

    DATABASE_URL=postgres://… .venv/bin/python bench/dashboard.py [--runs 10]

Fill the database first (`manage.py demo --conversations 1000000 --days 365`: a million
conversations over a year). Each figure is computed in this process for four scopes (the
default 30 days; one channel; one person; 90 days), `--runs` times after a warm-up, and
printed as a Markdown table: median and 95th percentile in milliseconds, and the number of
SQL queries. "workload" counts the open conversations now (as the API and the CSV exports
do); "workload, snapshot" reads the minute's WorkloadSnapshot (as the page does); "funnel,
snapshot" and "responsiveness, snapshot" read the figures job's FiguresSnapshot (as the page
does for the preset periods over everyone; a channel or a person is computed). "dashboard
(all four)" is the four together, as the page computes them, scope parsing included; "page
/dashboard/" is the whole page through Django (middleware, session, view, template) as the
demo user `manager` sees it.

The SLA job takes the workload snapshot every minute; here each scope's runs start by taking
one (as the job would: it is fresh for metrics.SNAPSHOT_AGE), inside a transaction that is
rolled back at the end. Nothing is written to the database but that user's session.
"""

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from engage import metrics  # noqa: E402
from engage.models import Conversation, Event  # noqa: E402
from engage.services import figures, sla  # noqa: E402

FIGURES = {
    "funnel": metrics.funnel,
    "funnel, snapshot": lambda scope: metrics.funnel(scope, kept=metrics.kept_figures(scope)),
    "responsiveness": metrics.responsiveness,
    "responsiveness, snapshot": lambda scope: metrics.responsiveness(
        scope, kept=metrics.kept_figures(scope)
    ),
    "workload": metrics.workload,
    "workload, snapshot": partial(metrics.workload, snapshot=True),
    "feedback_figures": metrics.feedback_figures,
}
# What the page computes.
PAGE_FIGURES = (
    "funnel, snapshot",
    "responsiveness, snapshot",
    "workload, snapshot",
    "feedback_figures",
)


def dashboard(params: dict) -> None:
    """What the page computes: the scope from its query string, then every figure."""
    scope = metrics.scope_from(params)
    for name in PAGE_FIGURES:
        FIGURES[name](scope)


def page(client: Client, params: dict) -> None:
    response = client.get("/dashboard/", params)
    assert response.status_code == 200, response.status_code


def measure(run, runs: int) -> tuple[float, float, int]:
    run()  # warm up caches and the connection
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        run()
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, len(queries)


def measure_scopes(scopes: dict, client: Client, *, repeat: int) -> None:
    for label, params in scopes.items():
        sla.take_workload_snapshot()
        figures.take_figures_snapshots()
        scope = metrics.scope_from(params)
        cohort = metrics.cohort(scope).count()
        runs = {name: partial(figure, scope) for name, figure in FIGURES.items()}
        runs["dashboard (all four)"] = partial(dashboard, params)
        runs["page /dashboard/"] = partial(page, client, params)
        for name, run in runs.items():
            median, p95, count = measure(run, repeat)
            print(f"| {label} | {name} | {cohort:,} | {median:,.0f} | {p95:,.0f} | {count} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--channel", default="twitter", help="the channel scope (twitter)")
    parser.add_argument("--assignee", default="giulia", help="the person scope (giulia)")
    args = parser.parse_args()

    scopes = {
        "30 days": {},
        f"30 days, channel={args.channel}": {"channel": args.channel},
        f"30 days, assignee={args.assignee}": {"assignee": args.assignee},
        "90 days": {"period": "90d"},
    }
    client = Client(HTTP_HOST=(settings.ALLOWED_HOSTS or ["localhost"])[0])
    client.force_login(get_user_model().objects.get(username="manager"))
    total = Conversation.objects.count()
    events = Event.objects.count()
    # Other work on the machine slows every figure: say how busy it was.
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"{connection.vendor}, {total:,} conversations, {events:,} events, "
        f"{args.runs} runs each, load average {load} on {os.cpu_count()} CPUs\n"
    )
    print("| scope | figure | cohort | median ms | p95 ms | queries |")
    print("|---|---|---:|---:|---:|---:|")
    with transaction.atomic():
        measure_scopes(scopes, client, repeat=args.runs)
        median, p95, count = measure(figures.take_figures_snapshots, args.runs)
        print(f"| 7, 30 and 90 days | the figures job | | {median:,.0f} | {p95:,.0f} | {count} |")
        transaction.set_rollback(True)


if __name__ == "__main__":
    main()
