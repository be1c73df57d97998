"""Throughput of listening on whatever database DATABASE_URL names: the push API and the file import.

    DATABASE_URL=postgres://… .venv/bin/python bench/ingest.py [--push-items 50000]
        [--import-lines 1000000] [--url http://127.0.0.1:8000]

1. Push API: POST /api/v1/ingest in batches of 500 items with a bearer token, through
   Django's test client in this process (the view's own cost: no network, no gunicorn)
   and, with --url, over real HTTP to a running server on the same database (urllib, a
   new connection per request). Figures: items/s and the median and 95th percentile of a
   batch's round trip.
2. File import: JSON Lines files of N/10 and N lines (realistic Italian and English texts,
   ~20% replies to earlier messages, ~2% invalid lines) run through `manage.py import` as a
   child process: wall time (Django start-up included), items/s and the child's peak RSS,
   which should not grow with the file size.

It creates its own user, token and data, under names starting with bench-<timestamp>, and
deletes nothing: run it on a database made for it. The token is revoked at the end.
Enrichment jobs go where the settings send them: to Redis when REDIS_URL is set (not run
here), otherwise run in-process after each commit, so that the times include them.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from engage.choices import Role  # noqa: E402
from engage.services import tokens  # noqa: E402

BATCH = 500
BRAND = "CaffeAurora"
PRODUCTS = ("Aurora Mini", "Aurora Duo", "Aurora M1", "Aurora Connect")
CHANNELS = ("twitter", "twitter", "instagram", "facebook", "forum", "review")
PROBLEMS_IT = (
    "perde acqua dal gruppo",
    "non scalda più",
    "fa un rumore strano quando macina",
    "ha il display spento",
    "chiede la decalcificazione ogni due giorni",
)
PROBLEMS_EN = (
    "leaks water from the group head",
    "won't heat up any more",
    "makes a weird grinding noise",
    "shows a blank display",
    "asks for descaling every other day",
)
TEMPLATES_IT = (
    "@{brand} la mia {product} {problem}, cosa devo fare?",
    "Ho comprato la {product} {weeks} settimane fa e già {problem}. Assistenza non risponde 😡",
    "La {product} è fantastica, caffè cremoso &amp; pronto in un minuto ☕",
    "Qualcuno sa se la {product} funziona con le cialde compatibili? Grazie!",
    "Terza volta che la {product} {problem}. Sto pensando di restituirla.",
)
TEMPLATES_EN = (
    "@{brand} my {product} {problem}. Any ideas?",
    "Bought the {product} {weeks} weeks ago and it already {problem} 😞",
    "Loving the {product} — best espresso I've had at home &amp; so quiet ☕",
    "Is there a firmware update for the {product}? The app keeps disconnecting.",
    "Third time my {product} {problem}. Considering a refund.",
)
REPLIES = (
    "Ciao {name}, ci dispiace! Scrivici in DM il numero di serie della {product} e ti aiutiamo subito.",
    "Hi {name}, sorry to hear that. Please DM us the serial number of your {product} and we'll sort it out.",
    "Grazie {name}! Ci fa piacere che la {product} ti piaccia ☕",
)
FOLLOW_UPS = (
    "Fatto, vi ho scritto in DM.",
    "Done, sent you a DM with the serial number.",
    "Ancora nessuna risposta...",
    "Still waiting for an answer, it's been {weeks} days.",
)


class Items:
    """A stream of realistic items under one source: people from a pool of handles, about
    a fifth of them replies (ours or theirs) to recent messages, times spread over a month."""

    def __init__(self, source: str, count: int, seed: int):
        self.source, self.count = source, count
        self.rng = random.Random(seed)
        self.start = datetime.now(UTC) - timedelta(days=30)
        self.step = timedelta(days=29) / max(count, 1)
        # Recent messages a reply may answer: (external id, handle); bounded.
        self.recent: list[tuple[str, str]] = []

    def __iter__(self):
        rng = self.rng
        for n in range(self.count):
            external_id = f"{self.source}-{n}"
            handle = f"user{rng.randrange(20_000)}"
            product = rng.choice(PRODUCTS)
            fields = {"product": product, "brand": BRAND, "weeks": rng.randint(1, 12)}
            item = {
                "source": self.source,
                "external_id": external_id,
                "channel": rng.choice(CHANNELS),
                "author": {"handle": handle, "name": handle.title()},
                "created_at": (self.start + self.step * n).isoformat().replace("+00:00", "Z"),
                "url": f"https://social.example/{self.source}/{n}",
            }
            if self.recent and rng.random() < 0.2:
                parent, parent_handle = rng.choice(self.recent)
                item["in_reply_to"] = parent
                if rng.random() < 0.5:
                    item["author"] = {"handle": BRAND, "name": "Caffè Aurora"}
                    item["direction"] = "outbound"
                    item["text"] = rng.choice(REPLIES).format(name=parent_handle, **fields)
                else:
                    item["author"] = {"handle": parent_handle}
                    item["text"] = rng.choice(FOLLOW_UPS).format(**fields)
            else:
                italian = rng.random() < 0.6
                templates = TEMPLATES_IT if italian else TEMPLATES_EN
                problem = rng.choice(PROBLEMS_IT if italian else PROBLEMS_EN)
                item["text"] = rng.choice(templates).format(problem=problem, **fields)
                self.recent.append((external_id, handle))
                if len(self.recent) > 2000:
                    del self.recent[:1000]
            yield item


def spoil(item: dict, rng: random.Random) -> str:
    """One invalid JSON line of the kinds real exports have."""
    kind = rng.randrange(4)
    if kind == 0:
        return json.dumps(item, ensure_ascii=False)[:40]  # cut short
    if kind == 1:
        item["created_at"] = "yesterday"
    elif kind == 2:
        item["text"] = ""
    else:
        item["channel"] = "myspace"
    return json.dumps(item, ensure_ascii=False)


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def push(source: str, total: int, send) -> dict:
    """POST `total` items in batches; `send(body) -> (status, parsed json)`."""
    times, statuses = [], Counter()
    items = iter(Items(source, total, seed=1))
    sent = 0
    while sent < total:
        batch = [next(items) for _ in range(min(BATCH, total - sent))]
        body = json.dumps({"items": batch}, ensure_ascii=False).encode()
        started = time.perf_counter()
        status, answer = send(body)
        times.append(time.perf_counter() - started)
        if status != 200:
            sys.exit(f"POST /api/v1/ingest answered {status}: {str(answer)[:300]}")
        statuses.update(result["status"] for result in answer["results"])
        sent += len(batch)
    median, p95 = percentiles(times)
    return {
        "items": total,
        "created": statuses["created"],
        "known": statuses["known"],
        "invalid": statuses["error"],
        "seconds": sum(times),
        "median_ms": median * 1000,
        "p95_ms": p95 * 1000,
        "times": times,  # each batch's round trip in seconds, for callers that pool them
    }


def push_in_process(source: str, total: int, raw_token: str) -> dict:
    client = Client()
    headers = {"Authorization": f"Bearer {raw_token}"}

    def send(body: bytes):
        response = client.post(
            "/api/v1/ingest", data=body, content_type="application/json", headers=headers
        )
        return response.status_code, response.json()

    return push(source, total, send)


def push_over_http(base: str, source: str, total: int, raw_token: str) -> dict:
    def send(body: bytes):
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's --url
            base.rstrip("/") + "/api/v1/ingest",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {raw_token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        except urllib.error.URLError as error:
            sys.exit(f"Cannot reach {base}: {error.reason}")

    return push(source, total, send)


def write_file(path: Path, source: str, lines: int) -> int:
    """A JSON Lines file; returns how many of its lines are invalid on purpose."""
    rng = random.Random(2)
    invalid = 0
    with path.open("w", encoding="utf-8") as file:
        for item in Items(source, lines, seed=3):
            if rng.random() < 0.02:
                invalid += 1
                file.write(spoil(item, rng) + "\n")
            else:
                file.write(json.dumps(item, ensure_ascii=False) + "\n")
    return invalid


def run_child(args: list[str], log: Path) -> tuple[int, float, int, str]:
    """Exit code, wall seconds, peak RSS in bytes and stdout of one child process."""
    with log.with_suffix(".out").open("w+b") as out, log.with_suffix(".err").open("w+b") as err:
        started = time.perf_counter()
        child = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=err)  # noqa: S603
        # wait4 gives this child's own peak RSS, where RUSAGE_CHILDREN keeps the largest
        # of all children so far (and would hide a smaller second run).
        _pid, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            sys.exit(f"{' '.join(args)} failed:\n{err.read().decode(errors='replace')[-2000:]}")
        return child.returncode, elapsed, usage.ru_maxrss * 1024, out.read().decode()


def import_file(workdir: Path, source: str, lines: int) -> dict:
    path = workdir / f"{source}.jsonl"
    invalid = write_file(path, source, lines)
    manage = [sys.executable, str(ROOT / "manage.py")]
    _code, seconds, rss, out = run_child([*manage, "import", str(path), "--no-progress"], path)
    summary = out.strip().splitlines()[-1]
    counts = {}
    for word in ("created", "already known", "invalid"):
        before = summary.split(f" {word}")[0]
        counts[word] = int(before.rsplit(" ", 1)[-1])
    assert counts["invalid"] == invalid, (summary, invalid)
    size = path.stat().st_size
    path.unlink()
    return {
        "items": lines,
        "created": counts["created"],
        "known": counts["already known"],
        "invalid": counts["invalid"],
        "seconds": seconds,
        "rss_mb": rss / 1024 / 1024,
        "size_mb": size / 1024 / 1024,
    }


def baseline_rss(workdir: Path) -> float:
    """Peak RSS of a child that only starts Django, for comparison."""
    _code, _seconds, rss, _out = run_child(
        [sys.executable, str(ROOT / "manage.py"), "check"], workdir / "check"
    )
    return rss / 1024 / 1024


def bench_user(stamp: str):
    user = get_user_model().objects.create_user(username=f"bench-{stamp}", password=None)
    user.groups.add(Group.objects.get_or_create(name=Role.COMMUNITY_MANAGER)[0])
    return user


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--push-items", type=int, default=50_000)
    parser.add_argument("--import-lines", type=int, default=1_000_000)
    parser.add_argument(
        "--url", help="Also push over HTTP to this running server, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument(
        "--allow-sqlite", action="store_true", help="Run on a non-PostgreSQL database."
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql" and not args.allow_sqlite:
        sys.exit(
            f"DATABASE_URL names a {connection.vendor} database: the figures that matter are "
            "PostgreSQL's. Set DATABASE_URL=postgres://… or pass --allow-sqlite."
        )

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    user = bench_user(stamp)
    token, raw = tokens.create_token(user, name="bench/ingest.py")
    jobs = "queued to Redis, not run here" if settings.REDIS_URL else "run in-process after commit"
    with connection.cursor() as cursor:
        cursor.execute(
            "select version()" if connection.vendor == "postgresql" else "select sqlite_version()"
        )
        version = cursor.fetchone()[0].split(" on ")[0]
    print(f"{version}; DEBUG {'on' if settings.DEBUG else 'off'}; enrichment jobs {jobs}")
    print(f"data under sources bench-{stamp}-*; batches of {BATCH}\n")

    rows = []
    try:
        if args.push_items:
            figures = push_in_process(f"bench-{stamp}-push", args.push_items, raw)
            rows.append(("push API, test client in-process", figures))
            if args.url:
                figures = push_over_http(args.url, f"bench-{stamp}-http", args.push_items, raw)
                rows.append((f"push API, HTTP {args.url}", figures))
        if args.import_lines:
            with tempfile.TemporaryDirectory(prefix="engage-bench-") as workdir:
                rows.append(
                    ("`manage.py check` (Django alone)", {"rss_mb": baseline_rss(Path(workdir))})
                )
                for lines in sorted({max(args.import_lines // 10, 1), args.import_lines}):
                    figures = import_file(Path(workdir), f"bench-{stamp}-file{lines}", lines)
                    rows.append(
                        (f"file import, {lines:,} lines ({figures['size_mb']:.0f} MB)", figures)
                    )
    finally:
        tokens.revoke(token.pk)

    print(
        "| measurement | items | created | known | invalid | seconds | items/s "
        "| batch median ms | batch p95 ms | peak RSS MB |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, f in rows:
        speed = format(f["items"] / f["seconds"], ",.0f") if "items" in f else "—"
        print(
            f"| {name} | {cell(f, 'items', ',')} | {cell(f, 'created', ',')} "
            f"| {cell(f, 'known', ',')} | {cell(f, 'invalid', ',')} | {cell(f, 'seconds', '.1f')} "
            f"| {speed} | {cell(f, 'median_ms', '.0f')} | {cell(f, 'p95_ms', '.0f')} "
            f"| {cell(f, 'rss_mb', '.0f')} |"
        )


def cell(figures: dict, key: str, spec: str) -> str:
    return format(figures[key], spec) if key in figures else "—"


if __name__ == "__main__":
    main()
