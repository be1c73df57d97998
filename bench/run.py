"""Build the benchmark data set and measure everything: one command, one Markdown report.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/engage_bench \\
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/run.py [--quick]

(`make bench` runs it.) Steps:

1. Build, unless the database already holds the data set (or --no-build): create the
   database if it is missing, `migrate`, `demo --password P`, then `demo --conversations N
   --days 365 --tickets T --links L --seed 1` (1,000,000 / 20,000 / 200,000; --tickets and
   --links only where the demo command has them), `collectstatic`, `VACUUM ANALYZE`.
2. Serve the app with gunicorn (`config.wsgi`, 4 sync workers, DEBUG off) on a free port.
3. The queue through gunicorn as the demo user `manager`: the default view, three filter
   combinations, a text search and page 1,000 (reached by the view's own keyset cursor):
   median and p95 with one client (the pages and the baselines in turn, round after round)
   and requests/s with 8 concurrent clients;
   the SQL queries each page runs (counted in-process); beside them the minimal logged-in
   page (the lightest HTML page, /targets/), the API's minimal JSON answer and the EXPLAIN
   ANALYZE execution time of the SQL that selects the page's rows.
4. The feedback board and the dashboard (30 and 90 days) through gunicorn, sequential, with
   the snapshots the scheduler's jobs keep; and the 90 days computed for the view.
5. Push ingest through gunicorn: POST /api/v1/ingest, batches of 500, 4 concurrent clients.
6. Claim next once gunicorn has stopped: 16 processes (bench/claimer.py), each with its own
   database connection and its own community manager, for ~10 s; no conversation handed out
   twice.
7. File import: a JSON Lines file through `manage.py import` as a child process: items/s
   and the child's peak RSS.

It prints the report, also written to --out (bench/out/results.md), with the machine, the
data set and a PASS/MISS per budget; then it removes what benchmark runs wrote (the ingested
and imported conversations, the claims), so that the next run measures the same data set
(--keep leaves them). --quick: 100k conversations and smaller runs, to try it out. Progress
goes to stderr.
"""

import argparse
import html
import importlib.metadata
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from unittest import mock
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import server  # noqa: E402 - no Django in it


def production_environment() -> tuple[dict, dict]:
    """This process's environment and gunicorn's: DEBUG off, as deployed behind a proxy that
    ends TLS (so no HTTPS redirect), one SECRET_KEY for both, so that a session made here is
    valid there."""
    common = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "0",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    web = {**os.environ, **common, "ALLOWED_HOSTS": "127.0.0.1"}
    # The test client's host, and a pool large enough for 16 claimers and the main thread.
    here = {**common, "ALLOWED_HOSTS": "127.0.0.1,testserver", "DATABASE_POOL_MAX": "24"}
    return here, web


HERE, WEB = production_environment()
os.environ.update(HERE)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench import ingest, pages  # noqa: E402
from engage import choices, models, queries  # noqa: E402
from engage.services import figures, sla, tokens  # noqa: E402

MANAGE = [sys.executable, str(ROOT / "manage.py")]

# (conversations, tickets, links, import lines, push items, runs, concurrent seconds,
#  board/dashboard runs, EXPLAIN runs, claim seconds)
PROFILES = {
    "full": {
        "conversations": 1_000_000,
        "tickets": 20_000,
        "links": 200_000,
        "import_lines": 1_000_000,
        "push_items": 50_000,
        "runs": 100,
        "seconds": 10.0,
        "page_runs": 30,
        "explain_runs": 10,
        "claim_seconds": 10.0,
    },
    "quick": {
        "conversations": 100_000,
        "tickets": 2_000,
        "links": 20_000,
        "import_lines": 100_000,
        "push_items": 20_000,
        "runs": 50,
        "seconds": 5.0,
        "page_runs": 20,
        "explain_runs": 5,
        "claim_seconds": 5.0,
    },
}
DAYS = 365
SEED = 1
WORKERS = 4
CLIENTS = 8
PUSH_CLIENTS = 4
CLAIMERS = 16
# More conversations than the hand-written demo has: synthetic ones are there.
CURATED_AT_MOST = 1000

# The minimal logged-in page: the lightest the app has, the base layout every page carries
# (session, user and role, header and menu, notifications, availability) and a four-row
# table. The JSON answer of the API (no layout) is measured beside it for reference.
MINIMAL_PAGE = "/targets/"

# Budgets (issue 7).
QUEUE_VS_MINIMAL = 3.0
QUEUE_P95_MS = 100.0
CLAIMS_PER_SECOND = 500
PUSH_ITEMS_PER_SECOND = 3000
IMPORT_RSS_MB = 200
PAGE_MEDIAN_MS = 300.0
COMPUTED_90_DAYS = "dashboard, 90 days, computed for the view"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Small data set, fewer runs.")
    parser.add_argument("--conversations", type=int, help="Synthetic conversations (1,000,000).")
    parser.add_argument("--tickets", type=int, help="Feedback tickets (20,000).")
    parser.add_argument("--links", type=int, help="Evidence links (200,000).")
    parser.add_argument("--import-lines", type=int, help="Lines of the imported file (1,000,000).")
    parser.add_argument("--push-items", type=int, help="Items pushed to the API (50,000).")
    parser.add_argument("--runs", type=int, help="Sequential requests per queue page (100).")
    parser.add_argument("--seconds", type=float, help="Seconds of each concurrent run (10).")
    parser.add_argument("--search", default="rumore", help="The queue's text search (rumore).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "results.md")
    parser.add_argument("--no-build", action="store_true", help="Measure what the database holds.")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="Drop the database and build it again (refused while others are connected).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep what the run wrote.")
    parser.add_argument(
        "--password", help="The demo users' password (default: $BENCH_PASSWORD or a random one)."
    )
    args = parser.parse_args()
    for name, value in PROFILES["quick" if args.quick else "full"].items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


# The database and the build ----------------------------------------------------------------


def database_settings() -> dict:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        sys.exit(
            "bench/run.py measures PostgreSQL, as deployed: set DATABASE_URL=postgres://user@host"
            ":5432/engage_bench (a database of its own; it is created if missing). SQLite's "
            "figures would say nothing about production."
        )
    return db


def postgres(db: dict, dbname: str):
    import psycopg

    return psycopg.connect(
        dbname=dbname,
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        autocommit=True,
    )


def ensure_database(db: dict, *, rebuild: bool) -> None:
    from psycopg import sql

    name = db["NAME"]
    with postgres(db, "postgres") as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and rebuild:
            say(f"Dropping database {name} (--rebuild)…")
            admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
            exists = None
        if not exists:
            say(f"Creating database {name}…")
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(*args: str, quiet: bool = False) -> float:
    """Run a management command as a child (its output to stderr); return its seconds."""
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - our own manage.py
        [*MANAGE, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL if quiet else sys.stderr,
        stderr=sys.stderr,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed ({result.returncode}).")
    return time.monotonic() - started


def demo_options() -> set[str]:
    """The options `manage.py demo` has (--tickets and --links are new)."""
    result = subprocess.run(  # noqa: S603
        [*MANAGE, "demo", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(re.findall(r"--[a-z-]+", result.stdout))


@dataclass
class DataSet:
    conversations: int
    from_bench_runs: int
    tickets: int
    links: int
    counts: dict


def data_set() -> DataSet:
    m = models
    bench_sources = m.Source.objects.filter(name__startswith="bench-")
    counts = {
        "conversations": m.Conversation.objects.count(),
        "messages": m.Message.objects.count(),
        "events": m.Event.objects.count(),
        "contacts": m.Contact.objects.count(),
        "feedback tickets": m.FeedbackTicket.objects.count(),
        "evidence links": m.FeedbackLink.objects.count(),
        "users": get_user_model().objects.count(),
    }
    from_bench = m.Conversation.objects.filter(source__in=bench_sources).count()
    return DataSet(
        conversations=counts["conversations"] - from_bench,
        from_bench_runs=from_bench,
        tickets=counts["feedback tickets"],
        links=counts["evidence links"],
        counts=counts,
    )


def build(args, db: dict) -> str:
    """Build what is missing; return a line for the report."""
    if args.no_build:
        result = subprocess.run(  # noqa: S603
            [*MANAGE, "migrate", "--check"], cwd=ROOT, capture_output=True, check=False
        )
        if result.returncode != 0:
            sys.exit("The database has unapplied migrations: run without --no-build.")
        manage("collectstatic", "--no-input", quiet=True)
        return "skipped (--no-build)"
    started = time.monotonic()
    ensure_database(db, rebuild=args.rebuild)
    say("migrate…")
    manage("migrate", "--no-input")
    options = demo_options()
    extras = [o for o in ("--tickets", "--links") if o in options]
    present = data_set()
    wanted = present.conversations >= args.conversations and (
        ("--tickets" not in extras or present.tickets >= args.tickets)
        and ("--links" not in extras or present.links >= args.links)
    )
    manage("collectstatic", "--no-input", quiet=True)
    if wanted:
        return (
            f"skipped: the database already holds {present.conversations:,} conversations, "
            f"{present.tickets:,} tickets, {present.links:,} links"
        )
    if present.conversations > CURATED_AT_MOST:
        sys.exit(
            f"The database holds {present.conversations:,} conversations, {present.tickets:,} "
            f"tickets and {present.links:,} links, short of the {args.conversations:,} / "
            f"{args.tickets:,} / {args.links:,} asked for; adding more would not give that data "
            "set. Use --rebuild (drops and rebuilds it), another DATABASE_URL, or --no-build "
            "to measure what is there."
        )
    password = args.password or os.environ.get("BENCH_PASSWORD") or secrets.token_urlsafe(12)
    say("demo…")
    manage("demo", "--password", password, quiet=True)
    synthetic = [
        "demo",
        "--conversations",
        str(args.conversations),
        "--days",
        str(DAYS),
        "--seed",
        str(SEED),
        "--password",
        password,
    ]
    if "--tickets" in extras:
        synthetic += ["--tickets", str(args.tickets)]
    if "--links" in extras:
        synthetic += ["--links", str(args.links)]
    say(f"demo --conversations {args.conversations:,}…")
    manage(*synthetic)
    say("VACUUM ANALYZE…")
    with postgres(db, db["NAME"]) as conn:
        conn.execute("VACUUM ANALYZE")
    elapsed = time.monotonic() - started
    say(f"Build took {elapsed:,.0f} s. The demo users' password: {password}")
    missing = {"--tickets", "--links"} - set(extras)
    note = (
        f" ({' and '.join(sorted(missing))} not yet in `manage.py demo`: built without)"
        if missing
        else ""
    )
    return f"{elapsed:,.0f} s{note}"


# The machine -------------------------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown CPU"
    ram = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgresql = cursor.fetchone()[0]
    redis_version = "not used (no REDIS_URL: jobs run in the web process)"
    if settings.REDIS_URL:
        import redis

        with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5) as client:
            redis_version = client.info("server")["redis_version"]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram / 2**30,
        "postgresql": postgresql,
        "redis": redis_version,
        "python": platform.python_version(),
        "django": importlib.metadata.version("django"),
        "gunicorn": importlib.metadata.version("gunicorn"),
    }


def git_commit() -> str:
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 - read-only git commands
            ["git", *args],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )

    head = git("rev-parse", "--short=12", "HEAD")
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    dirty = git("diff", "--quiet", "HEAD").returncode != 0
    return head.stdout.strip() + (" with uncommitted changes" if dirty else "")


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


# The queue in-process: cursors, query counts, SQL ---------------------------------------


@dataclass
class PageFacts:
    """What one queue page runs, seen in-process."""

    status: int
    queries: int  # every query of the request
    own: int  # the queries of queries.queue_rows: the rows, a search's estimate and probe, tags
    row_sql: list[str]  # those that select the rows (the tags' query left out)
    count_sql: list[str]  # the stage counts, in the page or in their own request
    allowed: int  # the row queries the design allows: one per sort segment, + a search probe
    counts_path: str = ""  # the stage counts' own request (htmx), where the queue has one
    counts_queries: int = 0
    rows_ms: float = 0.0  # EXPLAIN ANALYZE execution time, median, summed over row_sql
    counts_ms: float = 0.0


def queue_filters(path: str):
    from django.http import QueryDict

    from engage.forms import QueueFilterForm

    form = QueueFilterForm(QueryDict(urlsplit(path).query), managers=queries.community_managers())
    if not form.is_valid():
        raise ValueError(f"{path}: {form.errors}")
    return form.queue_filter()


def deep_page(client, user, pages_deep: int) -> tuple[str, int]:
    """The address of the default queue's page `pages_deep`, by the cursor the view puts in
    its "Next page" link, and the page number reached (fewer when the queue ends first)."""
    filters = queue_filters("/queue/")
    found = pages.NEXT.search(client.get("/queue/").text)
    cursor, page = None, 1
    while page < pages_deep:
        next_cursor = queries.queue_page(filters, user=user, cursor=cursor).next_cursor
        if next_cursor is None:
            break
        if page == 1:
            # The view's own link must carry the same cursor: the walk is the view's walk.
            link = html.unescape(found.group(1)) if found else ""
            expected = "/queue/?" + urlencode({"cursor": next_cursor})
            if link != expected:
                sys.exit(f"The queue's Next page link is {link!r}, not {expected!r}.")
        cursor, page = next_cursor, page + 1
    return ("/queue/?" + urlencode({"cursor": cursor}) if cursor else "/queue/"), page


def page_facts(client, path: str) -> PageFacts:
    """Run the page once in-process and sort its queries: those of queries.queue_rows (the
    page's rows) and the rest (session, user, counts, menus), which no filter should change."""
    marks: list[tuple[int, int]] = []
    original = queries.queue_rows

    def queue_rows(*args, **kwargs):
        start = len(captured.captured_queries)
        result = original(*args, **kwargs)
        marks.append((start, len(captured.captured_queries)))
        return result

    with (
        mock.patch.object(queries, "queue_rows", queue_rows),
        CaptureQueriesContext(connection) as captured,
    ):
        response = client.get(path)
    statements = [query["sql"] for query in captured.captured_queries]
    own = [sql for start, end in marks for sql in statements[start:end]]
    # Those that select rows: not a query of the tags alone (the rows carry their tags on
    # PostgreSQL), nor a search's EXPLAIN of its matches.
    rows = [
        sql
        for sql in own
        if not sql.startswith('SELECT "engage_conversation_tags"') and not sql.startswith("EXPLAIN")
    ]
    counts = [sql for sql in statements if sql.startswith("SELECT (SELECT COUNT(*)")]
    filters = queue_filters(path)
    # A search: the probe of the full-text index (unless the planner expects many matches).
    allowed = len(queries.SORTS[filters.sort].segments(filters)) + bool(filters.q.strip())
    fact = PageFacts(response.status_code, len(statements), len(own), rows, counts, allowed)
    try:
        counts_url = reverse("queue_counts")
    except NoReverseMatch:  # the counts are in the page itself
        return fact
    query = urlsplit(path).query
    fact.counts_path = counts_url + (f"?{query}" if query else "")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(fact.counts_path)
    if response.status_code != 200:
        sys.exit(f"GET {fact.counts_path} answered {response.status_code} in-process.")
    fact.counts_queries = len(captured.captured_queries)
    statements = [query["sql"] for query in captured.captured_queries]
    fact.count_sql += [sql for sql in statements if sql.startswith("SELECT (SELECT COUNT(*)")]
    return fact


def explain(sql: str, runs: int) -> tuple[float, str]:
    """Median EXPLAIN (ANALYZE, TIMING OFF) execution time in ms, and one plan as text."""
    times = []
    with connection.cursor() as cursor:
        for _ in range(runs + 1):  # the first warms the cache
            cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}")
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            times.append(plan[0]["Execution Time"])
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        text = "\n".join(row[0] for row in cursor.fetchall())
    return statistics.median(times[1:]), text


# Claim next -------------------------------------------------------------------------------


def claimers():
    group = Group.objects.get(name=choices.Role.COMMUNITY_MANAGER)
    users = []
    for n in range(1, CLAIMERS + 1):
        user, _created = get_user_model().objects.get_or_create(username=f"bench-claimer-{n:02d}")
        user.groups.add(group)
        users.append(user)
    return users


def claim_run(users, seconds: float) -> dict:
    """Each user claims in a loop in a process of its own (bench/claimer.py: its own
    interpreter and connection, as each web worker has) for `seconds`, all starting at
    once."""
    import multiprocessing

    from bench import claimer

    started_at = timezone.now()
    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Queue(), context.Event(), context.Queue()
    processes = [
        context.Process(
            target=claimer.claim, args=(user.get_username(), ready, start, seconds, results)
        )
        for user in users
    ]
    for process in processes:
        process.start()
    # Every claimer has set Django up and connected before the clock starts.
    for _process in processes:
        ready.get(timeout=120)
    began = time.perf_counter()
    start.set()
    gathered = [results.get(timeout=seconds + 120) for _ in processes]
    wall = time.perf_counter() - began
    for process in processes:
        process.join()
    failed = [error for _name, _ids, _times, error in gathered if error]
    if failed:
        raise RuntimeError(f"a claimer failed: {failed[0]}")
    by_name = {name: (ids, times) for name, ids, times, _error in gathered}
    claimed = [by_name[user.get_username()][0] for user in users]
    latencies = [by_name[user.get_username()][1] for user in users]

    ids = [pk for mine in claimed for pk in mine]
    owner = {pk: user.pk for user, mine in zip(users, claimed, strict=True) for pk in mine}
    events = dict(
        models.Event.objects.filter(
            kind=choices.EventKind.ASSIGNED,
            actor__in=users,
            created_at__gte=started_at,
            data__claimed=True,
        )
        .values_list("conversation_id")
        .annotate(n=Count("id"))
    )
    wrong_owner = 0
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        for pk, assignee in models.Conversation.objects.filter(pk__in=chunk).values_list(
            "pk", "assignee_id"
        ):
            wrong_owner += assignee != owner[pk]
    all_times = [t for times in latencies for t in times]
    return {
        "claims": len(ids),
        "seconds": wall,
        "per_second": len(ids) / wall,
        "duplicates": len(ids) - len(set(ids)),
        "events_ok": set(events) == set(ids) and all(n == 1 for n in events.values()),
        "events": sum(events.values()),
        "wrong_owner": wrong_owner,
        "median_ms": statistics.median(all_times) * 1000 if all_times else 0,
        "p95_ms": server.percentile(all_times, 0.95) * 1000 if all_times else 0,
        # A thread that got None ran out: it timed one call more than it claimed.
        "ran_out": any(len(t) > len(c) for t, c in zip(latencies, claimed, strict=True)),
    }


def scheduler_snapshots(*, figures_kept: bool) -> None:
    """What the scheduler's jobs keep in production, where they run every minute (no
    scheduler runs here): the workload (the SLA job) and, when `figures_kept`, the funnel
    and first responses of the preset periods (the figures job); else none of those, so
    that the dashboard computes them for the view."""
    sla.take_workload_snapshot()
    if figures_kept:
        figures.take_figures_snapshots()
    else:
        models.FiguresSnapshot.objects.all().delete()


# Push ingest ------------------------------------------------------------------------------


def ingest_user():
    user, _created = get_user_model().objects.get_or_create(username="bench-ingest")
    user.groups.add(Group.objects.get(name=choices.Role.COMMUNITY_MANAGER))
    return user


def push_run(base: str, stamp: str, total: int, raw_token: str) -> dict:
    """`total` items over PUSH_CLIENTS clients at once, each a source of its own (a reply
    must not arrive before the message it answers)."""
    share = [total // PUSH_CLIENTS + (n < total % PUSH_CLIENTS) for n in range(PUSH_CLIENTS)]
    started = time.perf_counter()
    results = server.run_in_threads(
        ingest.push_over_http,
        [(base, f"bench-{stamp}-push{n}", items, raw_token) for n, items in enumerate(share)],
    )
    wall = time.perf_counter() - started
    times = [t for result in results for t in result["times"]]
    return {
        "items": total,
        "created": sum(r["created"] for r in results),
        "invalid": sum(r["invalid"] for r in results),
        "seconds": wall,
        "per_second": total / wall,
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": server.percentile(times, 0.95) * 1000,
    }


# Cleanup ----------------------------------------------------------------------------------


def cleanup() -> None:
    """Remove what benchmark runs wrote: the conversations of every source named bench-…
    (ingested and imported, with everything that hangs on them), their messages, the
    contacts left without a conversation since the first of those sources, the sources,
    and the bench claimers' claims (nobody else is a bench-claimer-NN)."""
    from bench.purge import purge, purge_in_batches

    m = models
    started = time.monotonic()
    users = get_user_model().objects.filter(username__startswith="bench-claimer-")
    m.Conversation.objects.filter(assignee__in=users).update(assignee=None)
    purge_in_batches(m.Event.objects.filter(kind=choices.EventKind.ASSIGNED, actor__in=users))
    sources = m.Source.objects.filter(name__startswith="bench-")
    first = sources.order_by("created_at").values_list("created_at", flat=True).first()
    removed = purge_in_batches(m.Conversation.objects.filter(source__in=sources))
    purge_in_batches(m.Message.objects.filter(source__in=sources))
    if first is not None:
        purge_in_batches(
            m.Contact.objects.filter(created_at__gte=first, conversations__isnull=True)
        )
    with transaction.atomic():
        purge(sources)
    say(f"Removed {removed:,} benchmark conversations and the claims; VACUUM ANALYZE…")
    tables = [
        model._meta.db_table for model in (m.Conversation, m.Message, m.Event, m.Contact, m.Source)
    ]
    tables.append(m.Conversation.tags.through._meta.db_table)
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'VACUUM ANALYZE "{table}"')
    say(f"Cleanup took {time.monotonic() - started:,.0f} s.")


# The report -------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "**MISS**"


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def check(self, name: str, ok: bool) -> str:
        if not ok:
            self.misses.append(name)
        return verdict(ok)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(r: SimpleNamespace, args) -> Report:
    """The Markdown report of a run's results."""
    report = Report()
    counts = r.present.counts
    report.add(
        "# engage benchmarks",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {git_commit()}",
        f"- Command: `{r.command.strip()}`",
        f"- Machine: {r.facts_machine['cpu']}, {r.facts_machine['cores']} cores, "
        f"{r.facts_machine['ram_gib']:.0f} GiB RAM; PostgreSQL {r.facts_machine['postgresql']}; "
        f"Redis {r.facts_machine['redis']}; Python {r.facts_machine['python']}; "
        f"Django {r.facts_machine['django']}; gunicorn {r.facts_machine['gunicorn']}",
        f"- Server: gunicorn `config.wsgi`, {WORKERS} sync workers, DEBUG off, "
        + (
            "psycopg pool"
            if settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
            else "no connection pool"
        )
        + "; "
        + (
            "jobs queued to Redis (run by whatever workers are running: none of its own)"
            if settings.REDIS_URL
            else "jobs run in the request (no REDIS_URL)"
        )
        + "; clients: Python http.client threads on the same machine (a new connection per "
        "request: sync workers close it)",
        "- Data set: "
        + ", ".join(f"{value:,} {name}" for name, value in counts.items())
        + (
            f" ({r.present.from_bench_runs:,} conversations left by earlier benchmark runs)"
            if r.present.from_bench_runs
            else ""
        ),
        f"- Build: {r.build_line}",
        f"- Load average (1, 5, 15 min): {r.load_before} before, {r.load_after} after",
        "",
    )

    base, answer = r.sequential["minimal page"], r.sequential["minimal JSON answer"]
    report.add(
        "## Queue, through gunicorn",
        "",
        f"One client: the pages of this table in turn, {args.runs} rounds after 8 warm-up "
        "ones, the order rotating each round, so that the pages compared in a ratio share the "
        "machine's conditions (on this virtual machine its speed drifts by a quarter within "
        f"minutes; measured one after the other, that drift entered the ratios). {CLIENTS} clients: "
        f"{args.seconds:g} s of requests at once. Queries: counted in-process (rows: those that "
        "select the page's rows, see below). Rows SQL: the "
        f"median EXPLAIN (ANALYZE, TIMING OFF) execution time of those over {args.explain_runs} "
        f"runs. Minimal page: `GET {MINIMAL_PAGE}`, the lightest logged-in page (the base "
        "layout every page carries: session, user and role, header and menu, notifications, "
        "availability; and a four-row table). Minimal JSON answer, for reference: "
        f"`GET {r.minimal[0].format('<id>')}` (session, user, one row as JSON, no layout). "
        f"Budget: median ≤ {QUEUE_VS_MINIMAL:g} × the minimal page's and p95 ≤ "
        f"{QUEUE_P95_MS:g} ms, one client.",
        "",
        "| page | 1 client median ms | p95 ms | 8 clients req/s | median ms | p95 ms "
        "| queries (rows) | rows SQL ms | ÷ minimal page | ÷ JSON answer | ÷ rows SQL | budget |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    )
    for name in r.baselines:
        one, many = r.sequential[name], r.concurrent[name]
        report.add(
            f"| {name} | {ms(one.median_ms)} | {ms(one.p95_ms)} | {many.per_second:,.0f} "
            f"| {ms(many.median_ms)} | {ms(many.p95_ms)} | {r.baseline_queries[name]} "
            f"| | {one.median_ms / base.median_ms:,.1f} | {one.median_ms / answer.median_ms:,.1f} "
            "| | reference |"
        )
    for name, fact in r.facts.items():
        one, many = r.sequential[name], r.concurrent[name]
        ok = one.median_ms <= QUEUE_VS_MINIMAL * base.median_ms and one.p95_ms <= QUEUE_P95_MS
        sql_ratio = f"{one.median_ms / fact.rows_ms:,.0f}" if fact.rows_ms else "—"
        report.add(
            f"| {name} | {ms(one.median_ms)} | {ms(one.p95_ms)} | {many.per_second:,.0f} "
            f"| {ms(many.median_ms)} | {ms(many.p95_ms)} | {fact.queries} ({len(fact.row_sql)}) "
            f"| {fact.rows_ms:,.2f} | {one.median_ms / base.median_ms:,.1f} "
            f"| {one.median_ms / answer.median_ms:,.1f} | {sql_ratio} "
            f"| {report.check(f'queue: {name}', ok)} |"
        )

    if r.counts:
        report.add(
            "",
            "### Stage counts, their own request",
            "",
            "The page shows its rows at once and asks for the stage tabs' counts in a request "
            f"of its own (htmx): one client, {args.runs} sequential requests. Counts SQL: the "
            "median EXPLAIN (ANALYZE, TIMING OFF) execution time of the counting query (the "
            "app stops it at ENGAGE_STAGE_COUNT_TIMEOUT_MS). No budget of its own.",
            "",
            "| filters | median ms | p95 ms | queries | counts SQL ms |",
            "|---|--:|--:|--:|--:|",
        )
        for name, timing in r.counts.items():
            fact = r.facts[name]
            report.add(
                f"| {name} | {ms(timing.median_ms)} | {ms(timing.p95_ms)} "
                f"| {fact.counts_queries} | {ms(fact.counts_ms)} |"
            )

    first, deepest = r.facts["default view"], list(r.facts.values())[-1]
    rest = {fact.queries - fact.own for fact in r.facts.values()}
    within = all(len(fact.row_sql) <= fact.allowed for fact in r.facts.values())
    report.add(
        "",
        "## Queries per page",
        "",
        "Counted in-process as the project's tests count them (CaptureQueriesContext, so a "
        "BEGIN or ROLLBACK the app sends counts too). The page's own queries "
        "are those of `queries.queue_rows`: one per sort segment reached; for a search the "
        "planner's estimate of its matches and, unless it expects many, one probe of the "
        "full-text index. The rows carry their tags (an array subquery: PostgreSQL only, "
        "elsewhere a query of its own).",
        "",
        "| check | measured | budget | result |",
        "|---|---|---|---|",
        f"| default view, page 1 and page {r.reached:,} | {first.queries} and {deepest.queries} "
        f"| equal | {report.check('queries: page 1 = deep page', first.queries == deepest.queries)} |",
        "| queries besides the page's own, every queue page | "
        f"{', '.join(str(n) for n in sorted(rest))} | one number for all "
        f"| {report.check('queries: the same besides the rows', len(rest) == 1)} |",
        "| row queries, every queue page (allowed) | "
        + ", ".join(f"{len(f.row_sql)} ({f.allowed})" for f in r.facts.values())
        + " | one per sort segment reached, + 1 for a search "
        f"| {report.check('queries: rows within the design', within)} |",
    )

    claim_ok = r.claims["per_second"] >= CLAIMS_PER_SECOND
    doubles_ok = (
        r.claims["duplicates"] == 0 and r.claims["events_ok"] and not r.claims["wrong_owner"]
    )
    report.add(
        "",
        "## Claim next",
        "",
        f"{CLAIMERS} processes at once (bench/claimer.py) once gunicorn has stopped, each "
        "with its own database connection and its own community manager, calling "
        f"`engage.services.conversations.claim_next` in a loop for {r.claims['seconds']:.1f} s"
        + (" (the unassigned open conversations ran out)" if r.claims["ran_out"] else "")
        + ".",
        "",
        "| measure | figure | budget | result |",
        "|---|--:|---|---|",
        f"| claims/s | {r.claims['per_second']:,.0f} ({r.claims['claims']:,} claims; one claim "
        f"median {ms(r.claims['median_ms'])} ms, p95 {ms(r.claims['p95_ms'])} ms) "
        f"| ≥ {CLAIMS_PER_SECOND} | {report.check('claim next: claims/s', claim_ok)} |",
        f"| handed out twice | {r.claims['duplicates']} | 0 "
        f"| {report.check('claim next: duplicates', r.claims['duplicates'] == 0)} |",
        f"| ASSIGNED events (claimed) of the run; rows held by another claimer "
        f"| {r.claims['events']:,} for {r.claims['claims']:,} claims; {r.claims['wrong_owner']} "
        f"| exactly one per claim; 0 | {report.check('claim next: events', doubles_ok)} |",
    )

    push_ok = r.pushed["per_second"] >= PUSH_ITEMS_PER_SECOND
    rss_ok = r.imported["rss_mb"] <= IMPORT_RSS_MB
    report.add(
        "",
        "## Ingest",
        "",
        f"Push: POST /api/v1/ingest through gunicorn, batches of {ingest.BATCH}, "
        f"{PUSH_CLIENTS} clients at once (one source each), items/s over the wall time. File "
        "import: `manage.py import` as a child process (Django start-up included) on a JSON "
        f"Lines file with ~2% invalid lines; `manage.py check` alone peaks at {r.django_rss:.0f} MB.",
        "",
        "| measure | items | created | invalid | seconds | items/s | batch median ms "
        "| batch p95 ms | peak RSS MB | budget | result |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
        f"| push API, {PUSH_CLIENTS} clients | {r.pushed['items']:,} | {r.pushed['created']:,} "
        f"| {r.pushed['invalid']:,} | {r.pushed['seconds']:.1f} | {r.pushed['per_second']:,.0f} "
        f"| {ms(r.pushed['median_ms'])} | {ms(r.pushed['p95_ms'])} | | ≥ {PUSH_ITEMS_PER_SECOND:,} "
        f"items/s | {report.check('push ingest: items/s', push_ok)} |",
        f"| file import ({r.imported['size_mb']:.0f} MB) | {r.imported['items']:,} "
        f"| {r.imported['created']:,} | {r.imported['invalid']:,} | {r.imported['seconds']:.1f} "
        f"| {r.imported['items'] / r.imported['seconds']:,.0f} | | | {r.imported['rss_mb']:.0f} "
        f"| peak RSS ≤ {IMPORT_RSS_MB} MB | {report.check('file import: peak RSS', rss_ok)} |",
    )

    report.add(
        "",
        "## Feedback board and dashboard, through gunicorn",
        "",
        f"One client, {args.page_runs} sequential requests after 4 warm-up ones; the board as "
        "`product`, the dashboard as `manager`. Before each page the run takes the snapshots "
        "that the scheduler's jobs take every minute in production (none runs here): the "
        "workload (the SLA job) and the funnel and first responses of the 7, 30 and 90 days "
        "(the figures job), which the dashboard shows with their time. The last row is the "
        "90 days without the figures snapshot, computed for each view as a channel, a person "
        "or dates of one's own are: for reference, no budget.",
        "",
        "| page | median ms | p95 ms | queries | budget | result |",
        "|---|--:|--:|--:|---|---|",
    )
    for name, (path, _client) in r.other_pages.items():
        timing = r.others[name]
        if name == COMPUTED_90_DAYS:
            verdict_cell, budget = "reference", "none"
        else:
            verdict_cell = report.check(name, timing.median_ms <= PAGE_MEDIAN_MS)
            budget = f"median ≤ {PAGE_MEDIAN_MS:g} ms"
        report.add(
            f"| {name} (`{path}`) | {ms(timing.median_ms)} | {ms(timing.p95_ms)} "
            f"| {r.other_queries[name]} | {budget} | {verdict_cell} |"
        )
    report.add(
        "",
        "## Summary",
        "",
        "Every budget met." if not report.misses else "Missed: " + "; ".join(report.misses) + ".",
    )
    return report


def write(r: SimpleNamespace, args) -> None:
    report = render(r, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.text(), encoding="utf-8")
    plans = args.out.with_name(args.out.stem + "-explain.md")
    plans.write_text(
        "# EXPLAIN (ANALYZE, BUFFERS) of the queue's SQL\n\n"
        + "\n".join(
            f"## {name}: {kind}, median {median:.2f} ms\n\n```sql\n{sql}\n```\n\n```\n{plan}\n```\n"
            for name, kind, median, sql, plan in r.explained
        ),
        encoding="utf-8",
    )
    print(report.text())
    say(f"Written to {args.out} (plans: {plans}).")


# Main -------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    db = database_settings()
    r = SimpleNamespace(command="bench/run.py " + " ".join(sys.argv[1:]))
    r.build_line = build(args, db)

    User = get_user_model()
    try:
        manager = User.objects.get(username="manager")
        product = User.objects.get(username="product")
    except User.DoesNotExist:
        sys.exit("No demo users: run without --no-build (or `manage.py demo`).")
    r.facts_machine = machine()
    r.present = data_set()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    r.load_before = load_average()
    say(f"Measuring on {r.present.counts['conversations']:,} conversations, load {r.load_before}…")

    manager_client, product_client = Client(), Client()
    manager_client.force_login(manager)
    product_client.force_login(product)

    # The pages, and what each runs (in-process).
    deep, r.reached = deep_page(manager_client, manager, 1000)
    queue_pages = {
        "default view": "/queue/",
        "stage=listen, assignee=nobody": "/queue/?stage=listen&assignee=none",
        "overdue, language=it": "/queue/?overdue=on&language=it",
        "channel=twitter, sentiment=negative, newest first": (
            "/queue/?channel=twitter&sentiment=negative&sort=newest"
        ),
        f"text search “{args.search}”": "/queue/?" + urlencode({"q": args.search}),
        f"page {r.reached:,} (keyset)": deep,
    }
    source = models.Source.objects.exclude(name__startswith="bench-").order_by("pk").first()
    r.minimal = ("/api/v1/sources/{}", source.pk)
    r.baselines = {
        "minimal page": MINIMAL_PAGE,
        "minimal JSON answer": r.minimal[0].format(source.pk),
    }
    r.baseline_queries = {}
    for name, path in r.baselines.items():
        _m, _p, r.baseline_queries[name], status = pages.measure(manager_client, path, 1)
        if status != 200:
            sys.exit(f"GET {path} answered {status}.")
    r.facts, r.explained = {}, []
    for name, path in queue_pages.items():
        fact = r.facts[name] = page_facts(manager_client, path)
        if fact.status != 200:
            sys.exit(f"GET {path} answered {fact.status} in-process.")
        say(f"EXPLAIN ANALYZE: {name}…")
        for kind, statements in (("rows", fact.row_sql), ("stage counts", fact.count_sql)):
            for sql in statements:
                median, plan = explain(sql, args.explain_runs)
                if kind == "rows":
                    fact.rows_ms += median
                else:
                    fact.counts_ms += median
                r.explained.append((name, kind, median, sql, plan))
    r.other_pages = {
        "feedback board": ("/feedback/", product_client),
        "dashboard, 30 days": ("/dashboard/", manager_client),
        "dashboard, 90 days": ("/dashboard/?period=90d", manager_client),
        COMPUTED_90_DAYS: ("/dashboard/?period=90d", manager_client),
    }
    r.other_queries = {}
    for name, (path, client) in r.other_pages.items():
        scheduler_snapshots(figures_kept=name != COMPUTED_90_DAYS)
        _m, _p, r.other_queries[name], status = pages.measure(client, path, 1)
        if status != 200:
            sys.exit(f"GET {path} answered {status} in-process.")

    def cookie(client) -> dict:
        name = settings.SESSION_COOKIE_NAME
        return {"Cookie": f"{name}={client.cookies[name].value}", "Accept-Language": "en"}

    token, raw_token = tokens.create_token(ingest_user(), name="bench/run.py")
    r.sequential, r.concurrent, r.counts, r.others = {}, {}, {}, {}
    try:
        say(f"gunicorn, {WORKERS} sync workers…")
        with server.Gunicorn(WEB, workers=WORKERS, log=args.out.parent / "gunicorn.log") as web_app:
            port, headers = web_app.port, cookie(manager_client)
            compared = {**r.baselines, **queue_pages}
            say(f"{len(compared)} pages in turn, {args.runs} rounds…")
            r.sequential = server.interleaved(port, headers, compared, runs=args.runs)
            for name, path in compared.items():
                say(f"{name}: {CLIENTS} clients for {args.seconds:g} s…")
                r.concurrent[name] = server.concurrent(
                    port, headers, path, clients=CLIENTS, seconds=args.seconds
                )
            for name, fact in r.facts.items():
                if fact.counts_path:
                    say(f"{name}, stage counts: {args.runs} sequential…")
                    r.counts[name] = server.sequential(
                        port, headers, fact.counts_path, runs=args.runs
                    )
            for name, (path, client) in r.other_pages.items():
                say(f"{name}: {args.page_runs} sequential…")
                scheduler_snapshots(figures_kept=name != COMPUTED_90_DAYS)
                r.others[name] = server.sequential(
                    port, cookie(client), path, runs=args.page_runs, warmup=4
                )
            say(f"push ingest: {args.push_items:,} items, {PUSH_CLIENTS} clients…")
            r.pushed = push_run(web_app.base, stamp, args.push_items, raw_token)
        say(f"claim next: {CLAIMERS} processes for {args.claim_seconds:g} s…")
        r.claims = claim_run(claimers(), args.claim_seconds)
        say(f"file import: {args.import_lines:,} lines…")
        with tempfile.TemporaryDirectory(prefix="engage-bench-") as workdir:
            r.django_rss = ingest.baseline_rss(Path(workdir))
            r.imported = ingest.import_file(Path(workdir), f"bench-{stamp}-file", args.import_lines)
        r.load_after = load_average()
        write(r, args)
    finally:
        tokens.revoke(token.pk)
        if args.keep:
            say("--keep: the rows this run wrote stay.")
        else:
            cleanup()


if __name__ == "__main__":
    main()
