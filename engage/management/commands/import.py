"""manage.py import FILE: store the messages of a JSON Lines or CSV file.

    python manage.py import mentions.jsonl
    python manage.py import twcs.csv.gz --source twcs --channel twitter \\
        --map external_id=tweet_id,author.handle=author_id,direction=inbound,in_reply_to=in_response_to_tweet_id

Each line (JSON Lines) or record (CSV, header row first) is one item with the API's fields:
source, external_id, channel, author (an object, or flat author.handle, author.name,
author.url), text, url, created_at, in_reply_to, direction, priority. `--map field=column`
reads a field from a column (or JSON key, dotted for nested objects) of another name;
`--source` and `--channel` fill rows that leave those empty. Other columns are ignored.

The file is streamed: only the current batch is held, whatever its size; gzip is read
transparently. Each batch is stored in one transaction through engage.services.ingest, as
engage itself (no user), so an interrupted import can simply be run again: stored rows
come back "already known". Invalid rows are reported on stderr by line number, skipped,
and written beside the input as `<name>.rejects.<ext>`, in the input's format with the line
number and the errors added, ready to fix and import again.
"""

import collections
import contextlib
import csv
import gzip
import io
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import reset_queries
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from tqdm import tqdm

from engage.choices import Channel, SourceKind
from engage.items import AUTHOR_FIELDS, FIELDS, ItemInvalid, parse_item
from engage.services.ingest import ingest

TARGETS = (*FIELDS, *AUTHOR_FIELDS)
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
# A JSON line longer than this is refused without being held in memory: an item's text is
# at most 100,000 characters, which even fully \u-escaped stays well under it.
MAX_LINE_BYTES = 4 * 1024 * 1024
# Invalid rows shown on stderr; every one of them is in the rejects file.
SHOWN_REJECTS = 100
# Distinct ignored JSON keys remembered, so that a file of random keys cannot grow memory.
IGNORED_KEYS_KEPT = 200
PROGRESS_EVERY = 1000


@dataclass
class Record:
    """One row as read: what parse_item gets (`values`), what the rejects file gets back
    (`original`), and why it could not even be read, if so (`problem`)."""

    line: int
    values: object = None
    original: object = None
    problem: str = ""
    text: str = ""  # a JSON line as read, for a rejects line that JSON cannot write again


@dataclass
class Tally:
    rows: int = 0
    created: int = 0
    waiting: int = 0
    known: int = 0
    duplicates: int = 0
    invalid: int = 0


def printable(text: str) -> str:
    """Text that came through surrogateescape, with its undecodable bytes shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def parse_map(spec: str | None) -> dict[str, str]:
    """`text=body,external_id=id` → {"text": "body", "external_id": "id"}."""
    mapping: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        target, equals, column = (s.strip() for s in part.partition("="))
        if not equals or not target or not column:
            raise CommandError(
                _("--map takes field=column pairs separated by commas, not “%(part)s”.")
                % {"part": part.strip()}
            )
        if target not in TARGETS:
            raise CommandError(
                _("--map: “%(target)s” is not an item field; use one of %(fields)s.")
                % {"target": target, "fields": ", ".join(TARGETS)}
            )
        if target in mapping:
            raise CommandError(_("--map names “%(target)s” twice.") % {"target": target})
        mapping[target] = column
    return mapping


def format_of(path: Path, given: str | None) -> tuple[str, str]:
    """The file's format and the extension its rejects file gets."""
    suffixes = path.suffixes
    if suffixes and suffixes[-1].lower() == ".gz":
        suffixes = suffixes[:-1]
    extension = suffixes[-1] if suffixes else ""
    found = EXTENSIONS.get(extension.lower())
    if given:
        return given, extension or f".{given}"
    if found is None:
        raise CommandError(
            _(
                "Cannot tell the format of %(file)s from its name: use --format jsonl or "
                "--format csv (known extensions: %(extensions)s, optionally .gz)."
            )
            % {"file": path, "extensions": ", ".join(EXTENSIONS)}
        )
    return found, extension


def rejects_path(path: Path, extension: str) -> Path:
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    if extension and name.endswith(extension):
        name = name[: -len(extension)]
    return path.with_name(f"{name}.rejects{extension}")


class Lines:
    """The lines of a text for csv.reader, counted, keeping those of the record being read,
    and able to take some back: after a quote that is never closed has swallowed the rest
    of the file into one field, the lines after it are read again as records."""

    def __init__(self, text):
        self.text = text
        self.taken_back: collections.deque[str] = collections.deque()
        self.number = 0  # lines handed out so far
        self.record: list[str] = []  # the lines of the current record
        self.ended = False  # the reader asked for a line after the last one

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.taken_back.popleft() if self.taken_back else self.text.readline()
        if not line:
            self.ended = True
            raise StopIteration
        self.number += 1
        self.record.append(line)
        return line

    def start_record(self) -> int:
        """The number of the line the next record starts on."""
        self.record = []
        return self.number + 1

    def take_back(self, lines: list[str]) -> None:
        self.taken_back.extendleft(reversed(lines))
        self.number -= len(lines)
        self.ended = False


# Byte order marks of the encodings a spreadsheet's "Unicode text" export uses.
UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")
SEPARATORS = (";", "\t", "|")


class CsvRows:
    """Records of a CSV file with a header row. Line numbers are those of a record's first
    line, so a quoted field with newlines does not shift the ones after it."""

    def __init__(self, binary, columns: dict[str, str]):
        # UTF-16 (with its byte order mark) is read as such; anything else as UTF-8, where
        # surrogateescape lets a row with invalid UTF-8 be reported rather than the whole
        # file refused.
        encoding = "utf-16" if binary.peek(2)[:2] in UTF16_MARKS else "utf-8-sig"
        text = io.TextIOWrapper(binary, encoding=encoding, errors="surrogateescape", newline="")
        self.lines = Lines(text)
        self.reader = csv.reader(self.lines)
        header = []
        while not header:
            try:
                header = next(self.reader)
            except StopIteration:
                break
            except csv.Error as error:
                raise CommandError(
                    _("The header row is not readable: %(error)s.") % {"error": error}
                ) from None
        self.header = [printable(name.strip()) for name in header]
        self.columns = columns

    def check(self, required: dict[str, str], mapping: dict[str, str]) -> None:
        """Refuse a file whose header cannot give the items their fields, before storing any."""
        names = set(self.header)
        listing = ", ".join(self.header) or _("(nothing)")
        separator = next((c for c in SEPARATORS if len(self.header) == 1 and c in listing), None)
        if separator is not None:
            raise CommandError(
                _(
                    "The header has a single column, “%(header)s”: the file seems to separate "
                    "its columns with “%(separator)s”. Save it as CSV with commas between columns."
                )
                % {"header": listing[:200], "separator": separator}
            )
        for target, column in mapping.items():
            if column not in names:
                raise CommandError(
                    _(
                        "--map %(target)s=%(column)s: there is no column “%(column)s”; the header has: %(header)s."
                    )
                    % {"target": target, "column": column, "header": listing}
                )
        for target, alternatives in required.items():
            if not any(self.columns[name] in names for name in alternatives.split("|")):
                raise CommandError(
                    _(
                        "No column gives the items' %(target)s: name one “%(target)s” or map one "
                        "with --map %(target)s=COLUMN. The header has: %(header)s."
                    )
                    % {"target": target, "header": listing}
                )
        used = [c for c in self.columns.values() if c in names]
        twice = sorted({c for c in used if self.header.count(c) > 1})
        if twice:
            raise CommandError(
                _("The header names %(columns)s more than once.") % {"columns": ", ".join(twice)}
            )
        # Positions, so that each row becomes a dict of only the fields parse_item reads.
        self.positions = {
            target: self.header.index(c) for target, c in self.columns.items() if c in names
        }

    def ignored(self) -> list[str]:
        return [name for name in self.header if name not in set(self.columns.values())]

    def __iter__(self) -> Iterator[Record]:
        width = len(self.header)
        while True:
            line = self.lines.start_record()
            try:
                fields = next(self.reader)
            except StopIteration:
                return
            except csv.Error as error:
                problem = _("not readable as CSV: %(error)s") % {"error": error}
                if len(self.lines.record) > 1:
                    # A field over the size limit that spans lines is, most likely, a quote
                    # never closed that swallowed the rows after it: they are read again.
                    problem += _(" (a quote opened on this line and never closed?)")
                    yield self._unclosed(line, width, problem)
                    continue
                # Empty columns, so that the line number and the errors of the rejects
                # file stay under their own headings.
                yield Record(line, original=[""] * width, problem=problem)
                continue
            if self.lines.ended:
                # The file ended inside a quoted field: its quote was never closed.
                yield self._unclosed(
                    line, width, _('a quote (") opened on this line is never closed')
                )
                continue
            if not any(field.strip() for field in fields):
                continue  # a blank line, or one of empty columns (",,,")
            original = fields
            problem = ""
            try:
                "".join(fields).encode()
            except UnicodeEncodeError:
                original = [printable(value) for value in fields]
                problem = _("not valid UTF-8 (the bytes that are not UTF-8 are shown as \\xNN)")
            if len(fields) != width:
                problem = problem or _(
                    "%(count)d fields where the header has %(width)d (an unquoted comma or quote?)"
                ) % {"count": len(fields), "width": width}
                original = (original + [""] * width)[:width]
            if problem:
                yield Record(line, original=original, problem=problem)
                continue
            values = {target: fields[n] for target, n in self.positions.items()}
            yield Record(line, values=values, original=fields)

    def _unclosed(self, line: int, width: int, problem: str) -> Record:
        """Reject the record that starts on `line` with its first line only, and read the
        lines it swallowed again, so that the rows among them are not lost."""
        first, *swallowed = self.lines.record
        self.lines.take_back(swallowed)
        try:
            original = next(csv.reader([first]), [])
        except csv.Error:  # the first line alone is over the size limit
            original = []
        return Record(line, original=(original + [""] * width)[:width], problem=problem)


def _reject_constant(name: str):
    raise ValueError(_("%(name)s is not JSON") % {"name": name})


class JsonLines:
    """Objects of a JSON Lines file, one per line; blank lines are skipped."""

    def __init__(self, binary, columns: dict[str, str]):
        self.binary = binary
        self.columns = columns
        self.used = set(columns.values()) | {c.split(".")[0] for c in columns.values()}
        self.seen: set[str] = set()
        # The columns some line had: a --map naming a key no line has is a mistake.
        self.found: set[str] = set()

    def _lines(self) -> Iterator[tuple[int, bytes | None]]:
        number = 0
        while chunk := self.binary.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
                while chunk and not chunk.endswith(b"\n"):
                    chunk = self.binary.readline(MAX_LINE_BYTES + 1)
                yield number, None
            else:
                yield number, chunk.removeprefix(b"\xef\xbb\xbf") if number == 1 else chunk

    def __iter__(self) -> Iterator[Record]:
        for line, data in self._lines():
            if data is None:
                yield Record(
                    line,
                    original="",
                    problem=_("longer than %(mib)d MiB") % {"mib": MAX_LINE_BYTES // 1024 // 1024},
                )
                continue
            if not data.strip():
                continue
            try:
                text = data.decode().rstrip("\r\n")
            except UnicodeDecodeError as error:
                raw = data.decode("utf-8", "backslashreplace").rstrip("\r\n")
                problem = _("not valid UTF-8 (%(reason)s at byte %(at)d)") % {
                    "reason": error.reason,
                    "at": error.start + 1,
                }
                yield Record(line, original=raw, problem=problem)
                continue
            try:
                value = json.loads(text, parse_constant=_reject_constant)
            except json.JSONDecodeError as error:
                problem = _("not JSON: %(error)s (column %(column)d)") % {
                    "error": error.msg,
                    "column": error.colno,
                }
                yield Record(line, original=text, problem=problem)
                continue
            except (ValueError, RecursionError) as error:
                message = str(error) if isinstance(error, ValueError) else _("nested too deeply")
                problem = _("not JSON: %(error)s") % {"error": message}
                yield Record(line, original=text, problem=problem)
                continue
            if not isinstance(value, dict):
                # parse_item says what is wrong; the rejects file keeps the line as it was.
                yield Record(line, values=value, original=text)
                continue
            yield Record(line, values=self._fields(value), original=value, text=text)

    def _fields(self, value: dict) -> dict:
        values = {}
        for target, column in self.columns.items():
            found = _lookup(value, column)
            if found is not None:
                values[target] = found
                self.found.add(column)
        return values

    def new_ignored_keys(self, value) -> list[str]:
        if not isinstance(value, dict) or len(self.seen) >= IGNORED_KEYS_KEPT:
            return []
        new = [k for k in value if k not in self.used and k not in self.seen]
        self.seen.update(new)
        return new


def _lookup(value: dict, column: str):
    """`value[column]`, or, for a dotted column that is not a key, the nested value."""
    if column in value:
        return value[column]
    found = value
    for part in column.split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return found


class Rejects:
    """The invalid rows, beside the input and in its format. The file is written under a
    temporary name and moved into place at the end, so a failed run leaves the previous
    rejects as they were; it exists only when there was at least one reject."""

    def __init__(self, path: Path, fmt: str, header: list[str] | None):
        self.path, self.fmt, self.header = path, fmt, header
        self.file = None
        self.writer = None

    def _open(self) -> None:
        try:
            handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            # backslashreplace: a lone surrogate (a JSON "\\ud800" escape) is written back as
            # that escape, which is what the input said.
            self.file = open(  # noqa: SIM115 - closed in finish()
                handle, "w", encoding="utf-8", errors="backslashreplace", newline=""
            )
        except OSError as error:
            raise CommandError(
                _("Cannot write the rejects file beside %(path)s: %(reason)s.")
                % {"path": self.path, "reason": error.strerror or error}
            ) from None
        self.temporary = Path(name)
        if self.fmt == "csv":
            self.writer = csv.writer(self.file)
            names = set(self.header)
            self.extra = []
            for wanted in ("line", "errors"):
                while wanted in names:
                    wanted = f"_{wanted}"
                self.extra.append(wanted)
            self.writer.writerow([*self.header, *self.extra])

    def add(self, record: Record, errors: list[str]) -> None:
        if self.file is None:
            self._open()
        if self.fmt == "csv":
            self.writer.writerow([*record.original, record.line, "; ".join(errors)])
            return
        text = None
        if isinstance(record.original, dict):
            # allow_nan=False: 1e400, read as infinity, would be written as Infinity, which
            # is not JSON; such a line is written back as it was read instead.
            with contextlib.suppress(ValueError):
                text = json.dumps(
                    {**record.original, "_line": record.line, "_errors": errors},
                    ensure_ascii=False,
                    allow_nan=False,
                )
        if text is None:
            raw = record.text or record.original
            text = json.dumps(
                {"_line": record.line, "_errors": errors, "_raw": raw}, ensure_ascii=False
            )
        self.file.write(text + "\n")

    def finish(self, *, completed: bool) -> None:
        if self.file is not None:
            self.file.close()
            if completed:
                os.replace(self.temporary, self.path)
            else:
                self.temporary.unlink(missing_ok=True)
        elif completed:
            # This run had no rejects: an earlier run's would describe a file that changed.
            self.path.unlink(missing_ok=True)


class Command(BaseCommand):
    help = (
        "Import messages from a JSON Lines or CSV file (optionally gzipped). Invalid rows are "
        "reported, skipped and written to <name>.rejects.<ext> beside the file; running it "
        "again stores nothing twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "file", help="The file to import (.jsonl, .ndjson, .json, .csv, or .gz of them)."
        )
        parser.add_argument(
            "--format", dest="fmt", choices=["jsonl", "csv"], help="Overrides the extension."
        )
        parser.add_argument(
            "--map",
            dest="mapping",
            metavar="FIELD=COLUMN,...",
            help="Read a field from a column (or JSON key) of another name, e.g. text=body,external_id=id.",
        )
        parser.add_argument("--source", help="Source name for rows that give none.")
        parser.add_argument("--channel", help="Channel for rows that give none.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help="Items stored per transaction (at most ENGAGE_INGEST_BATCH_LIMIT).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(
        self, *args, file, fmt, mapping, source, channel, batch_size, no_progress, **options
    ):
        path = Path(file)
        fmt, extension = format_of(path, fmt)
        mapping = parse_map(mapping)
        defaults = self._defaults(source, channel)
        limit = settings.ENGAGE_INGEST_BATCH_LIMIT
        if not 1 <= batch_size <= limit:
            raise CommandError(
                _("--batch-size must be between 1 and %(limit)d.") % {"limit": limit}
            )
        self.batch_size = batch_size
        self.defaults = defaults
        # The progress bar writes to the stream itself: OutputWrapper would end each redraw
        # with a newline.
        self.stream = options.get("stderr") or sys.stderr
        self.tally = Tally()
        # Whether every row read was handled, so that the rejects file describes them.
        self.completed = False
        started = time.monotonic()
        with contextlib.ExitStack() as stack:
            raw, rows = self._open(stack, path, fmt, mapping)
            self.rejects = Rejects(
                rejects_path(path, extension), fmt, getattr(rows, "header", None)
            )
            stack.callback(lambda: self.rejects.finish(completed=self.completed))
            self.bar = stack.enter_context(
                tqdm(
                    total=os.fstat(raw.fileno()).st_size or None,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=path.name,
                    file=self.stream,
                    disable=True if no_progress else None,
                    leave=False,
                )
            )
            if fmt == "csv" and rows.ignored():
                self._say(
                    _("Ignoring columns: %(columns)s.") % {"columns": ", ".join(rows.ignored())},
                    notice=True,
                )
            try:
                self._run(rows, raw, path)
            except KeyboardInterrupt:
                raise CommandError(
                    _(
                        "Interrupted after %(rows)d rows. The batches stored so far stay stored; "
                        "running the import again skips them."
                    )
                    % {"rows": self.tally.rows}
                ) from None
            self.completed = True
        elapsed = time.monotonic() - started
        self.stdout.write(self._summary(path, self.tally, elapsed))
        if fmt == "jsonl":
            unused = [c for c in mapping.values() if c not in rows.found]
            if unused and self.tally.rows:
                keys = ", ".join(f"“{c}”" for c in unused)
                self._say(_("--map: no line has %(keys)s.") % {"keys": keys}, notice=True)

    def _open(self, stack, path: Path, fmt: str, mapping: dict[str, str]):
        """The raw file (whose position drives the progress bar) and its rows. The header
        of a CSV file is checked here, so that a file that cannot work stores nothing."""
        columns = {target: mapping.get(target, target) for target in TARGETS}
        try:
            raw = stack.enter_context(open(path, "rb"))  # noqa: SIM115 - the stack closes it
            binary = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == b"\x1f\x8b" else raw
            if fmt == "jsonl":
                return raw, JsonLines(binary, columns)
            rows = CsvRows(binary, columns)
        except (OSError, EOFError, zlib.error) as error:
            raise CommandError(
                _("Cannot read %(file)s: %(reason)s.")
                % {"file": path, "reason": getattr(error, "strerror", None) or error}
            ) from None
        if not rows.header:
            raise CommandError(
                _("%(file)s is empty: a CSV file starts with a header row.") % {"file": path}
            )
        rows.check(self._required(self.defaults), mapping)
        return raw, rows

    def _defaults(self, source: str | None, channel: str | None) -> dict[str, str]:
        defaults = {}
        if source is not None:
            if not source.strip() or len(source.strip()) > 200:
                raise CommandError(_("--source must be a name of 1 to 200 characters."))
            defaults["source"] = source.strip()
        if channel is not None:
            if channel.strip().lower() not in Channel.values:
                raise CommandError(
                    _("--channel: unknown channel “%(channel)s”; use one of %(choices)s.")
                    % {"channel": channel, "choices": ", ".join(Channel.values)}
                )
            defaults["channel"] = channel.strip().lower()
        return defaults

    @staticmethod
    def _required(defaults: dict) -> dict[str, str]:
        """Fields every row needs a column for; `|` separates columns that can each give it."""
        required = {
            "external_id": "external_id",
            "text": "text",
            "author.handle": "author.handle|author",
        }
        for name in ("source", "channel"):
            if name not in defaults:
                required[name] = name
        return required

    def _run(self, rows, raw, path: Path) -> None:
        tally = self.tally
        batch: list[tuple[Record, object]] = []
        record = None
        try:
            for record in rows:
                tally.rows += 1
                if tally.rows % PROGRESS_EVERY == 0:
                    self.bar.update(raw.tell() - self.bar.n)
                if isinstance(rows, JsonLines) and (new := rows.new_ignored_keys(record.original)):
                    self._say(
                        _("line %(line)d: ignoring %(keys)s.")
                        % {"line": record.line, "keys": ", ".join(new)},
                        notice=True,
                    )
                if record.problem:
                    self._reject(tally, record, [record.problem])
                    continue
                try:
                    item = parse_item(record.values, defaults=self.defaults, strict=False)
                except ItemInvalid as invalid:
                    self._reject(tally, record, [f"{e.field}: {e.message}" for e in invalid.errors])
                    continue
                batch.append((record, item))
                if len(batch) >= self.batch_size:
                    self._store(tally, batch)
                    batch = []
                    self.bar.update(raw.tell() - self.bar.n)
        except (OSError, EOFError, zlib.error) as error:
            # A truncated gzip, a disk error: keep what was read, say where it stopped.
            self._store(tally, batch)
            self.completed = True
            raise CommandError(
                _(
                    "Cannot read %(file)s after line %(line)s: %(reason)s. The %(rows)d rows "
                    "before it were handled; running the import again skips those stored."
                )
                % {
                    "file": path,
                    "line": record.line if record else 0,
                    "reason": getattr(error, "strerror", None) or error,
                    "rows": tally.rows,
                }
            ) from None
        self._store(tally, batch)
        if self.bar.total:
            self.bar.update(self.bar.total - self.bar.n)

    def _store(self, tally: Tally, batch: list) -> None:
        if not batch:
            return
        outcomes = ingest([item for _, item in batch], actor=None, kind=SourceKind.FILE)
        # With DEBUG on, every query is kept (up to 9,000, each bulk INSERT a large string)
        # until a request starts, and a command has none: memory would grow with the file.
        reset_queries()
        for (record, _item), outcome in zip(batch, outcomes, strict=True):
            if outcome.status == "created":
                tally.created += 1
                tally.waiting += outcome.conversation is None
            elif outcome.status == "known":
                tally.known += 1
                tally.duplicates += outcome.duplicate
            else:
                # The service refused the item (a removed source, say): as invalid as a bad row.
                errors = [f"{e.field}: {e.message}" for e in outcome.errors]
                self._reject(tally, record, errors or [outcome.status])

    def _reject(self, tally: Tally, record: Record, errors: list[str]) -> None:
        tally.invalid += 1
        if tally.invalid <= SHOWN_REJECTS:
            self._say(
                _("line %(line)d: %(errors)s") % {"line": record.line, "errors": "; ".join(errors)}
            )
        elif tally.invalid == SHOWN_REJECTS + 1:
            self._say(
                _("More invalid rows are not shown here; all are in %(rejects)s.")
                % {"rejects": self.rejects.path},
                notice=True,
            )
        self.rejects.add(record, errors)

    def _say(self, message: str, *, notice: bool = False) -> None:
        """A line on stderr that does not tear the progress bar. Rejected rows are errors;
        a notice (what is ignored, what is not shown) is a warning."""
        # A message may quote a value with a lone surrogate, which no terminal can encode.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        with tqdm.external_write_mode(file=self.stream):
            self.stderr.write(message, style_func=self.style.WARNING if notice else None)

    def _summary(self, path: Path, tally: Tally, elapsed: float) -> str:
        rows = ngettext("%(count)d row", "%(count)d rows", tally.rows) % {"count": tally.rows}
        created = ngettext("%(count)d created", "%(count)d created", tally.created) % {
            "count": tally.created
        }
        if tally.waiting:
            created += ngettext(
                " (%(count)d of them a reply waiting for the message it answers)",
                " (%(count)d of them replies waiting for the messages they answer)",
                tally.waiting,
            ) % {"count": tally.waiting}
        known = ngettext("%(count)d already known", "%(count)d already known", tally.known) % {
            "count": tally.known
        }
        if tally.duplicates:
            known += ngettext(
                " (%(count)d of them a duplicate)",
                " (%(count)d of them duplicates)",
                tally.duplicates,
            ) % {"count": tally.duplicates}
        invalid = ngettext("%(count)d invalid", "%(count)d invalid", tally.invalid) % {
            "count": tally.invalid
        }
        if tally.invalid:
            invalid += _(" (see %(rejects)s)") % {"rejects": self.rejects.path}
        return _(
            "Imported %(file)s: %(rows)s — %(created)s, %(known)s, %(invalid)s "
            "in %(seconds).1f s (%(speed)d rows/s)."
        ) % {
            "file": path,
            "rows": rows,
            "created": created,
            "known": known,
            "invalid": invalid,
            "seconds": elapsed,
            "speed": tally.rows / elapsed if elapsed > 0 else 0,
        }
