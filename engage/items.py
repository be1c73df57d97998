"""The one shape in which messages come in — pushed to the API, imported from files, read
from feeds — and its validation. Pure: no database.

`parse_item` takes a mapping as it arrived (JSON object, CSV row after column mapping,
feed entry) and returns an `IncomingItem`, or raises `ItemInvalid` listing every field
that is wrong, each with a sentence that says what is wrong with it.
"""

import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from django.utils import timezone
from django.utils.translation import gettext as _

from engage.choices import Channel, Direction, Priority

FIELDS = (
    "source",
    "external_id",
    "channel",
    "author",
    "text",
    "url",
    "created_at",
    "in_reply_to",
    "direction",
    "priority",
)
# Flat spellings of the author's fields, for CSV columns and dotted --map targets.
AUTHOR_FIELDS = ("author.handle", "author.name", "author.url")
TEXT_LIMIT = 100_000
# Twitter's export format: "Tue Oct 31 22:10:47 +0000 2017".
TWITTER_TIME = "%a %b %d %H:%M:%S %z %Y"
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Read once: thousands of items a second are checked against them.
CHANNELS = frozenset(Channel.values)
PRIORITY_KEYS = frozenset(priority.key for priority in Priority)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ItemInvalid(Exception):
    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class IncomingItem:
    source: str
    external_id: str
    channel: str
    author_handle: str
    text: str
    author_name: str = ""
    author_url: str = ""
    url: str = ""
    created_at: datetime | None = None
    in_reply_to: str = ""
    direction: str = Direction.INBOUND
    priority: str = ""


def clean_text(value: str) -> str:
    """Entities decoded (exports and feeds often carry `&amp;`), control characters gone
    (PostgreSQL refuses NUL in text), surrounding blanks trimmed."""
    if "&" in value:
        value = html.unescape(value)
    return CONTROL.sub("", value).strip()


def _text(value, field: str, errors: list, *, limit: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors.append(FieldError(field, _("Expected text, got %(type)s.") % {"type": _kind(value)}))
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        # JSON's 1e400 reads as infinity: "inf" is not what the sender wrote.
        errors.append(FieldError(field, _("Expected text, got a number too large to store.")))
        return ""
    value = clean_text(str(value))
    if not _encodable(value):
        errors.append(
            FieldError(field, _("Not valid Unicode: a lone surrogate (\\ud800 to \\udfff)."))
        )
        return ""
    if required and not value:
        errors.append(FieldError(field, _("This field is required and may not be blank.")))
    elif len(value) > limit:
        errors.append(
            FieldError(
                field,
                _("At most %(limit)s characters (this has %(length)s).")
                % {"limit": limit, "length": len(value)},
            )
        )
    return value


def _encodable(value: str) -> bool:
    """Whether the text can be stored: a JSON "\\ud800" escape decodes to a lone surrogate,
    which no database encoding accepts."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(value) -> str:
    kinds = {dict: _("an object"), list: _("a list"), bool: _("true/false")}
    return kinds.get(type(value), _("a number"))


def _url(value, field: str, errors: list) -> str:
    value = _text(value, field, errors, limit=1000)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            errors.append(
                FieldError(
                    field, _("Expected an http(s) address, got “%(v)s”.") % {"v": value[:80]}
                )
            )
            return ""
    return value


def parse_time(value) -> datetime:
    """ISO 8601 (with a zone; none means UTC), RFC 2822, Twitter's export format, or Unix
    seconds. Raises ValueError with a sentence."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_timestamp(value)
    text = str(value).strip()
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return _from_timestamp(float(text))
    for parse in (
        lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")),
        lambda t: datetime.strptime(t, TWITTER_TIME),
        parsedate_to_datetime,
    ):
        try:
            moment = parse(text)
        except (ValueError, TypeError, IndexError, OverflowError):
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise ValueError(
        _("“%(value)s” is not a time: use ISO 8601, e.g. 2026-11-21T09:30:00Z.")
        % {"value": text[:60]}
    )


def _from_timestamp(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(
            _("%(value)s is not a time: as seconds since 1970 it is out of range.")
            % {"value": str(seconds)[:30]}
        ) from None


def _time(value, errors: list) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        moment = parse_time(value)
    except (ValueError, OverflowError, OSError) as error:
        errors.append(FieldError("created_at", str(error)))
        return None
    if not EARLIEST <= moment <= timezone.now() + timedelta(days=1):
        errors.append(
            FieldError(
                "created_at", _("%(time)s is not a plausible time.") % {"time": moment.isoformat()}
            )
        )
        return None
    return moment


def _direction(value, errors: list) -> str:
    if value is None or value == "":
        return Direction.INBOUND
    text = str(value).strip().lower()
    # An "inbound" flag column (true = from a person), as in Twitter's support export.
    spelled = {
        "inbound": Direction.INBOUND,
        "in": Direction.INBOUND,
        "true": Direction.INBOUND,
        "outbound": Direction.OUTBOUND,
        "out": Direction.OUTBOUND,
        "false": Direction.OUTBOUND,
    }
    if text not in spelled:
        errors.append(
            FieldError("direction", _("Use inbound or outbound, not “%(v)s”.") % {"v": text[:40]})
        )
        return Direction.INBOUND
    return spelled[text]


def _author(raw: Mapping, errors: list, *, strict: bool) -> tuple[str, str, str]:
    author = raw.get("author")
    if isinstance(author, Mapping):
        unknown = sorted(set(author) - {"handle", "name", "url"}) if strict else []
        for key in unknown:
            errors.append(FieldError(f"author.{key}", _("Unknown field.")))
        fields = {k: author.get(k) for k in ("handle", "name", "url")}
    elif author is None or isinstance(author, str | int):
        fields = {"handle": author, "name": None, "url": None}
    else:
        errors.append(FieldError("author", _("Expected an object with handle, name and url.")))
        fields = {}
    for key in ("handle", "name", "url"):
        flat = raw.get(f"author.{key}")
        if flat not in (None, ""):
            fields[key] = flat
    handle = _text(fields.get("handle"), "author.handle", errors, limit=200, required=True)
    name = _text(fields.get("name"), "author.name", errors, limit=200)
    url = _url(fields.get("url"), "author.url", errors)
    return handle, name, url


def parse_item(raw, *, defaults: Mapping | None = None, strict: bool = True) -> IncomingItem:
    """Validate one item. `defaults` fill fields the item leaves empty (an import's
    --source and --channel). `strict` refuses unknown fields (the API: a misspelt field
    must not be silently ignored); files pass False, since exports carry extra columns."""
    if not isinstance(raw, Mapping):
        raise ItemInvalid([FieldError("item", _("Expected a JSON object."))])
    values = dict(defaults or {})
    values.update({k: v for k, v in raw.items() if v not in (None, "")})
    errors: list[FieldError] = []
    if strict:
        for key in sorted(set(raw) - set(FIELDS) - set(AUTHOR_FIELDS)):
            errors.append(FieldError(str(key), _("Unknown field.")))
    source = _text(values.get("source"), "source", errors, limit=200, required=True)
    external_id = _text(values.get("external_id"), "external_id", errors, limit=255, required=True)
    channel = _text(values.get("channel"), "channel", errors, limit=20, required=True).lower()
    if channel and channel not in CHANNELS:
        errors.append(
            FieldError(
                "channel",
                _("Unknown channel “%(channel)s”: use one of %(choices)s.")
                % {"channel": channel, "choices": ", ".join(Channel.values)},
            )
        )
    handle, name, author_url = _author(values, errors, strict=strict)
    text = _text(values.get("text"), "text", errors, limit=TEXT_LIMIT, required=True)
    url = _url(values.get("url"), "url", errors)
    created_at = _time(values.get("created_at"), errors)
    in_reply_to = _text(values.get("in_reply_to"), "in_reply_to", errors, limit=255)
    if in_reply_to and in_reply_to == external_id:
        errors.append(FieldError("in_reply_to", _("A message cannot answer itself.")))
    direction = _direction(values.get("direction"), errors)
    priority = _text(values.get("priority"), "priority", errors, limit=10).lower()
    if priority and priority not in PRIORITY_KEYS:
        errors.append(
            FieldError(
                "priority",
                _("Unknown priority “%(priority)s”: use low, normal, high or urgent.")
                % {"priority": priority},
            )
        )
    if errors:
        raise ItemInvalid(errors)
    return IncomingItem(
        source=source,
        external_id=external_id,
        channel=channel,
        author_handle=handle,
        author_name=name,
        author_url=author_url,
        text=text,
        url=url,
        created_at=created_at,
        in_reply_to=in_reply_to,
        direction=direction,
        priority=priority,
    )
