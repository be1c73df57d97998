"""Listening sources: staff add, change, pause, remove and restore them; the poller reads
each due feed and records how it went on the source itself (the sources page shows it)."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from engage import feeds, markup, permissions
from engage.choices import Channel, SourceKind
from engage.errors import InvalidInput
from engage.items import ItemInvalid, parse_item
from engage.models import Source
from engage.services.ingest import CREATED, ingest

log = logging.getLogger(__name__)

# After failures a feed is retried less and less often, up to once a day.
MAX_BACKOFF = timedelta(hours=24)
CHUNK = 500


def _require_staff(actor) -> None:
    permissions.require(permissions.is_staff(actor), _("Only staff can change sources."))


def _get(source_id: int) -> Source:
    try:
        return Source.objects.select_for_update().get(pk=source_id)
    except Source.DoesNotExist:
        raise InvalidInput(
            _("Source %(id)s does not exist.") % {"id": source_id}, field="source"
        ) from None


def _check_name(name: str, *, exclude: int | None = None) -> None:
    if not name.strip():
        raise InvalidInput(_("A source needs a name."), field="name")
    if Source.objects.filter(name=name.strip()).exclude(pk=exclude).exists():
        raise InvalidInput(
            _("A source named “%(name)s” already exists.") % {"name": name.strip()}, field="name"
        )


def _check(name: str, url: str, channel: str, interval: int, *, exclude: int | None = None):
    _check_name(name, exclude=exclude)
    # The edit form's rule: an absolute http(s) address with a host ("http://" alone is not).
    if not markup.external_url(url):
        raise InvalidInput(_("A feed address starts with http:// or https://."), field="url")
    if channel not in Channel.values:
        raise InvalidInput(
            _("Unknown channel “%(channel)s”: use one of %(choices)s.")
            % {"channel": channel, "choices": ", ".join(Channel.values)},
            field="channel",
        )
    if not 1 <= interval <= 7 * 24 * 60:
        raise InvalidInput(
            _("Poll every 1 to 10,080 minutes (a week)."), field="poll_interval_minutes"
        )


@transaction.atomic
def add_feed(
    *,
    actor,
    name: str,
    url: str,
    channel: str = Channel.BLOG,
    keywords: str = "",
    poll_interval_minutes: int = 15,
) -> Source:
    """A new RSS/Atom source, polled from now on."""
    _require_staff(actor)
    _check(name, url, channel, poll_interval_minutes)
    return Source.objects.create(
        name=name.strip(),
        url=url.strip(),
        channel=channel,
        kind=SourceKind.FEED,
        keywords=keywords.strip(),
        poll_interval_minutes=poll_interval_minutes,
        next_poll_at=timezone.now(),
    )


@transaction.atomic
def update_source(source_id: int, *, actor, **changes) -> Source:
    """Change name, url, channel, keywords or poll_interval_minutes."""
    _require_staff(actor)
    source = _get(source_id)
    allowed = {"name", "url", "channel", "keywords", "poll_interval_minutes"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(_("Unknown field."), field=sorted(unknown)[0])
    for name, value in changes.items():
        setattr(source, name, value.strip() if isinstance(value, str) else value)
    if source.kind == SourceKind.FEED or source.url:
        _check(
            source.name, source.url, source.channel, source.poll_interval_minutes, exclude=source.pk
        )
    else:
        # An API or file source is renamed too: names are unique, and a clash must be a
        # clear error rather than the database's IntegrityError.
        _check_name(source.name, exclude=source.pk)
    if "url" in changes:
        # Another address: forget what the old server said, and read it soon.
        source.etag, source.last_modified, source.next_poll_at = "", "", timezone.now()
        changes = {**changes, "etag": "", "last_modified": "", "next_poll_at": None}
    source.save(update_fields=sorted(changes))
    return source


@transaction.atomic
def set_active(source_id: int, *, actor, active: bool) -> Source:
    """Pause or resume a source. Pausing stops polling; pushes and imports still work."""
    _require_staff(actor)
    source = _get(source_id)
    source.is_active = active
    if active:
        source.next_poll_at, source.failures = timezone.now(), 0
    source.save(update_fields=["is_active", "next_poll_at", "failures"])
    return source


@transaction.atomic
def remove(source_id: int, *, actor) -> Source:
    """Take a source off the list and stop it. Its conversations stay where they are."""
    _require_staff(actor)
    source = _get(source_id)
    if source.removed_at is None:
        source.removed_at, source.is_active = timezone.now(), False
        source.save(update_fields=["removed_at", "is_active"])
    return source


@transaction.atomic
def restore(source_id: int, *, actor) -> Source:
    _require_staff(actor)
    source = _get(source_id)
    source.removed_at = None
    source.save(update_fields=["removed_at"])
    return source


@transaction.atomic
def poll_now(source_id: int, *, actor) -> Source:
    """Make the feed due now and queue its poll once that is committed (the "Poll now"
    button). If the queue cannot be reached the feed stays due: the scheduler's next round
    polls it."""
    from engage import tasks

    _require_staff(actor)
    source = _get(source_id)
    if source.kind != SourceKind.FEED:
        raise InvalidInput(_("Only feeds are polled."), field="kind")
    if source.removed_at is not None or not source.is_active:
        raise InvalidInput(_("Resume this feed before polling it."), field="is_active")
    source.next_poll_at = timezone.now()
    source.save(update_fields=["next_poll_at"])
    transaction.on_commit(partial(tasks.enqueue, tasks.poll_feed, source.pk), robust=True)
    return source


def due_feeds() -> list[int]:
    now = timezone.now()
    return list(
        Source.objects.filter(kind=SourceKind.FEED, is_active=True, removed_at__isnull=True)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .order_by("next_poll_at")
        .values_list("pk", flat=True)
    )


@dataclass(frozen=True)
class PollResult:
    polled: bool
    added: int = 0
    error: str = ""


def poll(source_id: int) -> PollResult:
    """Read a due feed once and store its new entries. Never raises for the feed's faults:
    the outcome (success, items added, or the error) is recorded on the source."""
    now = timezone.now()
    source = Source.objects.filter(pk=source_id).first()
    if source is None or source.kind != SourceKind.FEED:
        return PollResult(False)
    lease = now + timedelta(minutes=source.poll_interval_minutes)
    # Compare-and-set on the due time: of two workers, one polls; the other returns.
    claimed = (
        Source.objects.filter(pk=source_id, is_active=True, removed_at__isnull=True)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .filter(next_poll_at=source.next_poll_at)
        .update(next_poll_at=lease, last_polled_at=now)
    )
    if not claimed:
        return PollResult(False)
    try:
        added, warnings, fetched = _read(source)
    except feeds.FeedError as error:
        return _failed(source, str(error), now)
    except Exception as error:  # A bug must not stop the other feeds; it is recorded.
        log.exception("Polling source %s failed", source_id)
        return _failed(source, _("Unexpected error: %(error)s") % {"error": error}, now)
    Source.objects.filter(pk=source_id).update(
        last_success_at=now,
        last_error="\n".join(warnings)[:2000],
        last_error_at=now if warnings else None,
        failures=0,
        items_added_last=added,
        items_added_total=F("items_added_total") + added,
        etag=fetched.etag[:500],
        last_modified=fetched.last_modified[:100],
    )
    return PollResult(True, added)


def _read(source: Source) -> tuple[int, list[str], "feeds.Fetched"]:
    fetched = feeds.fetch(source.url, etag=source.etag, last_modified=source.last_modified)
    if fetched.not_modified:
        return 0, [], fetched
    entries = feeds.parse(fetched.body, url=fetched.url)
    items, warnings = [], []
    for number, entry in enumerate(entries, start=1):
        if not feeds.matches_keywords(entry, source.keywords):
            continue
        raw = {key: value for key, value in entry.items() if key != "title"}
        try:
            items.append(
                parse_item(
                    raw, defaults={"source": source.name, "channel": source.channel}, strict=False
                )
            )
        except ItemInvalid as invalid:
            warnings.append(
                _("Entry %(number)s (%(id)s) skipped: %(errors)s")
                % {"number": number, "id": entry.get("external_id", "?"), "errors": invalid}
            )
    added = 0
    for start in range(0, len(items), CHUNK):
        outcomes = ingest(items[start : start + CHUNK], actor=None, kind=SourceKind.FEED)
        added += sum(1 for outcome in outcomes if outcome.status == CREATED)
    return added, warnings, fetched


def _failed(source: Source, message: str, now) -> PollResult:
    failures = source.failures + 1
    backoff = min(
        timedelta(minutes=source.poll_interval_minutes) * 2 ** min(failures - 1, 10), MAX_BACKOFF
    )
    Source.objects.filter(pk=source.pk).update(
        last_error=message[:2000],
        last_error_at=now,
        failures=failures,
        items_added_last=0,
        next_poll_at=now + backoff,
    )
    return PollResult(True, 0, message)
