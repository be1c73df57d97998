"""Bad input through the real paths: files through `manage.py import`, feeds through a
poll of a local feed server, JSON bodies through POST /api/v1/ingest.

The corpus is in tests/data/malformed/ (csv/, jsonl/, feeds/); what would be too big to
keep there (a 1 MB field, 10,000 levels of nesting, a 10 MB body, a gzip bomb) is made by
the test. Whatever comes in: never a crash or a 500, an error that says where (line and
field for files, field for the API, the source's last error for feeds), and the valid rows
or items of the same input still stored.
"""

import gzip
import json
import shutil
import time
from pathlib import Path

import pytest
from django.core.management import CommandError
from django.utils import timezone

from engage import tasks
from engage.choices import Channel
from engage.models import Conversation, Source
from engage.services import sources, tokens
from tests.test_import import counts, read_rejects_csv, read_rejects_jsonl, run_import

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).parent / "data" / "malformed"


def corpus_file(tmp_path: Path, name: str) -> Path:
    """A copy of the corpus file in tmp_path, where its rejects file is written."""
    path = tmp_path / Path(name).name
    shutil.copy(CORPUS / name, path)
    return path


def stored_ids() -> set[str]:
    return set(Conversation.objects.values_list("external_id", flat=True))


def rejected_lines(err: str) -> dict[int, str]:
    """{line number: what stderr says about it}."""
    lines = {}
    for text in err.splitlines():
        if text.startswith("line ") and ": " in text and ": ignoring " not in text:
            number, _, message = text[len("line ") :].partition(": ")
            lines[int(number)] = message
    return lines


def assert_imported(out: str, err: str, expected_ids, expected_errors: dict[int, str]) -> None:
    """The import kept exactly `expected_ids` and named each rejected line with its error."""
    assert stored_ids() == expected_ids
    assert counts(out)["invalid"] == len(expected_errors)
    errors = rejected_lines(err)
    assert set(errors) == set(expected_errors)
    for line, message in expected_errors.items():
        assert message in errors[line]


def item_line(n: int, **overrides) -> str:
    fields = {
        "source": "malformed",
        "external_id": f"j{n}",
        "channel": "forum",
        "author": {"handle": f"p{n}"},
        "text": f"Item {n}",
    }
    return json.dumps({**fields, **overrides})


# Files: CSV -------------------------------------------------------------------------------

# file: (ids stored, {line: what its error names}); every line listed is in the rejects file.
CSV_FILES = {
    # A quote opened and never closed swallowed the rest of the file into one field.
    "csv/unterminated_quote.csv": (
        {"uq1", "uq3", "uq5"},
        {3: 'a quote (") opened on this line is never closed', 5: "author.handle: "},
    ),
    "csv/crlf_mix.csv": ({"cr1", "cr2", "cr3", "cr4", "cr6"}, {7: "created_at: "}),
    # A line of spaces and a line of empty columns (",,,") are blank lines.
    "csv/blank_lines.csv": ({"b1", "b2"}, {}),
    "csv/latin1.csv": ({"l1", "l3"}, {3: "not valid UTF-8"}),
    "csv/nul_bytes.csv": ({"n1", "n2", "n3"}, {}),
    # A spreadsheet's "Unicode text" export.
    "csv/utf16.csv": ({"u1"}, {}),
}


@pytest.mark.parametrize("name", CSV_FILES)
def test_a_malformed_csv_file_keeps_its_valid_rows_and_rejects_the_others_by_line(tmp_path, name):
    expected_ids, expected_errors = CSV_FILES[name]
    path = corpus_file(tmp_path, name)

    out, err = run_import(path, "--source", "malformed")

    assert_imported(out, err, expected_ids, expected_errors)
    rejects = path.with_name(path.stem + ".rejects.csv")
    if expected_errors:
        assert [int(row["line"]) for row in read_rejects_csv(rejects)] == sorted(expected_errors)
    else:
        assert not rejects.exists()


def test_the_rows_of_a_file_with_mixed_line_ends_keep_their_text_and_line_numbers(tmp_path):
    run_import(corpus_file(tmp_path, "csv/crlf_mix.csv"), "--source", "malformed")

    texts = dict(Conversation.objects.values_list("external_id", "text"))
    assert texts["cr3"] == "A quoted\r\nfield over two lines"
    assert texts["cr4"] == "Old Mac line end"
    assert texts["cr6"] == "Last one without a line end"


def test_nul_bytes_are_dropped_from_what_is_stored(tmp_path):
    run_import(corpus_file(tmp_path, "csv/nul_bytes.csv"), "--source", "malformed")

    assert Conversation.objects.get(external_id="n1").text == "Text with a NUL inside"
    assert Conversation.objects.filter(external_id="n2").exists()


def test_the_row_a_never_closed_quote_began_goes_to_the_rejects_file_as_it_was(tmp_path):
    path = corpus_file(tmp_path, "csv/unterminated_quote.csv")

    run_import(path, "--source", "malformed")

    first, second = read_rejects_csv(tmp_path / "unterminated_quote.rejects.csv")
    assert (first["external_id"], first["text"]) == ("uq2", "This quote is never closed\n")
    assert "never closed" in first["errors"]
    assert second["external_id"] == "uq4"


def test_a_quote_never_closed_in_a_big_file_loses_no_row_after_it(tmp_path):
    # The swallowed rows pass the csv module's field limit (128 KB) long before the end.
    path = tmp_path / "big.csv"
    rows = [f"r{n},forum,fan{n},Row {n} about the Aurora {'!' * 60}" for n in range(3000)]
    rows[1] = 'r1,forum,fan1,"A quote that is never closed'
    path.write_text("external_id,channel,author.handle,text\n" + "\n".join(rows) + "\n")

    out, err = run_import(path, "--source", "malformed")

    assert counts(out) == {"rows": 3000, "created": 2999, "known": 0, "invalid": 1}
    assert stored_ids() == {f"r{n}" for n in range(3000)} - {"r1"}
    assert rejected_lines(err) == {
        3: "not readable as CSV: field larger than field limit (131072) "
        "(a quote opened on this line and never closed?)"
    }


def test_a_field_of_a_megabyte_rejects_its_row_only(tmp_path):
    path = tmp_path / "huge_field.csv"
    path.write_text(
        "external_id,channel,author.handle,text\n"
        "h1,forum,ada,Before the huge field\n"
        f"h2,forum,bob,{'x' * 1024 * 1024}\n"
        "h3,forum,cleo,After the huge field\n"
    )

    out, err = run_import(path, "--source", "malformed")

    assert stored_ids() == {"h1", "h3"}
    assert "line 3: not readable as CSV: field larger than field limit" in err
    (rejected,) = read_rejects_csv(tmp_path / "huge_field.rejects.csv")
    # The line number and the errors stay under their own headings.
    assert rejected["line"] == "3"
    assert rejected["errors"].startswith("not readable as CSV")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "csv/semicolon.csv",
            "the file seems to separate its columns with “;”. Save it as CSV with commas",
        ),
        (
            "csv/missing_header.csv",
            "No column gives the items' external_id: name one “external_id” or map one with "
            "--map external_id=COLUMN. The header has: mh1, forum, ada, No header row here.",
        ),
        ("csv/duplicate_headers.csv", "The header names text more than once."),
    ],
)
def test_a_csv_file_whose_header_cannot_work_is_refused_before_storing_anything(
    tmp_path, name, message
):
    path = corpus_file(tmp_path, name)

    with pytest.raises(CommandError) as refused:
        run_import(path, "--source", "malformed")

    assert message in str(refused.value)
    assert not Conversation.objects.exists()
    assert not list(tmp_path.glob("*.rejects.*"))


# Files: JSON Lines ------------------------------------------------------------------------

JSONL_FILES = {
    "jsonl/truncated_last_line.jsonl": ({"j1", "j2"}, {3: "not JSON: Unterminated string"}),
    "jsonl/not_objects.jsonl": (
        {"j1", "j7"},
        dict.fromkeys(range(2, 7), "item: Expected a JSON object."),
    ),
    "jsonl/huge_numbers.jsonl": (
        {"j6", "j7"},
        {
            1: "external_id: Expected text, got a number too large to store.",
            2: "text: Expected text, got a number too large to store.",
            3: "not JSON: Exceeds the limit (4300 digits)",
            4: "created_at: 1e+20 is not a time: as seconds since 1970 it is out of range.",
            5: "created_at: -1000000000000000.0 is not a time",
        },
    ),
    "jsonl/invalid_unicode.jsonl": (
        {"j1", "j6"},
        {
            2: "not valid UTF-8",
            3: "text: Not valid Unicode: a lone surrogate",
            4: "author.handle: Not valid Unicode: a lone surrogate",
            5: "not valid UTF-8",
        },
    ),
    "jsonl/wrong_types.jsonl": (
        {"j12"},
        {
            1: "source: Expected text, got a list.",
            2: "external_id: Expected text, got an object.",
            3: "channel: Unknown channel “5”",
            4: "author: Expected an object with handle, name and url.",
            5: "author.handle: Expected text, got an object.",
            6: "text: Expected text, got true/false.",
            7: "url: Expected an http(s) address, got “123”.",
            8: "created_at: “{'when': 'now'}” is not a time",
            9: "in_reply_to: Expected text, got a list.",
            10: "direction: Use inbound or outbound",
            11: "priority: Unknown priority “3.5”",
        },
    ),
    "jsonl/unknown_fields.jsonl": ({"j1", "j2"}, {}),
    "jsonl/empty.jsonl": (set(), {}),
    "jsonl/blank_only.jsonl": (set(), {}),
}


@pytest.mark.parametrize("name", JSONL_FILES)
def test_a_malformed_jsonl_file_keeps_its_valid_lines_and_rejects_the_others_by_line(
    tmp_path, name
):
    expected_ids, expected_errors = JSONL_FILES[name]
    path = corpus_file(tmp_path, name)

    out, err = run_import(path)

    assert_imported(out, err, expected_ids, expected_errors)
    rejects = path.with_name(path.stem + ".rejects.jsonl")
    if expected_errors:
        # The rejects file is JSON Lines itself, one line per reject.
        assert [line["_line"] for line in read_rejects_jsonl(rejects)] == sorted(expected_errors)
    else:
        assert not rejects.exists()


def test_rejected_numbers_json_cannot_write_are_kept_as_the_line_was_read(tmp_path):
    run_import(corpus_file(tmp_path, "jsonl/huge_numbers.jsonl"))

    rejects = (tmp_path / "huge_numbers.rejects.jsonl").read_text(encoding="utf-8")

    def refuse(name):
        raise AssertionError(f"{name} in the rejects file")

    written = [json.loads(line, parse_constant=refuse) for line in rejects.splitlines()]
    assert '"external_id": 1e400' in written[0]["_raw"]
    assert written[3]["created_at"] == 1e20


def test_a_lone_surrogate_goes_back_to_the_rejects_file_as_its_escape(tmp_path):
    run_import(corpus_file(tmp_path, "jsonl/invalid_unicode.jsonl"))

    written = read_rejects_jsonl(tmp_path / "invalid_unicode.rejects.jsonl")

    by_line = {line["_line"]: line for line in written}
    assert by_line[3]["text"] == "Item \ud800 3"
    assert by_line[4]["author"] == {"handle": "\udfff"}


def test_ten_thousand_levels_of_nesting_reject_their_line_only(tmp_path):
    path = tmp_path / "deep.jsonl"
    deep = '{"text": ' + "[" * 10_000 + "]" * 10_000 + "}"
    path.write_text("\n".join([item_line(1), deep, item_line(3)]) + "\n")

    out, err = run_import(path)

    assert stored_ids() == {"j1", "j3"}
    assert "line 2: not JSON: nested too deeply" in err
    (written,) = read_rejects_jsonl(tmp_path / "deep.rejects.jsonl")
    assert written["_line"] == 2


def test_unknown_keys_are_named_once_and_ignored(tmp_path):
    out, err = run_import(corpus_file(tmp_path, "jsonl/unknown_fields.jsonl"))

    assert "line 1: ignoring sentiment, likes, nested." in err
    assert counts(out) == {"rows": 2, "created": 2, "known": 0, "invalid": 0}


def test_our_message_that_answers_nothing_is_rejected_by_line_not_a_crash(tmp_path):
    out, err = run_import(corpus_file(tmp_path, "jsonl/outbound_without_parent.jsonl"))

    assert stored_ids() == {"j1", "j3"}
    assert "line 2: " in err


# Feeds ------------------------------------------------------------------------------------

FEEDS = CORPUS / "feeds"


@pytest.fixture
def publisher(settings, feed_server):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = ["127.0.0.1"]
    return feed_server


def poll(staff, publisher, body: bytes, **route) -> Source:
    """Serve `body` as a feed, poll it once, return the source with its outcome."""
    url = publisher.route("/feed", body, **route)
    source = Source.objects.filter(url=url).first() or sources.add_feed(
        actor=staff, name="Aurora forum", url=url, channel=Channel.FORUM
    )
    Source.objects.filter(pk=source.pk).update(next_poll_at=timezone.now())
    tasks.poll_feed(source.pk)
    source.refresh_from_db()
    return source


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("billion_laughs.xml", "it declares XML entities, which are refused."),
        ("xxe_passwd.xml", "it declares XML entities, which are refused."),
        ("xxe_parameter_entity.xml", "it declares XML entities, which are refused."),
        ("html_login_page.html", "the address returned a web page, not a feed."),
    ],
)
def test_a_hostile_or_wrong_feed_fails_with_its_reason_on_the_source(
    staff, publisher, name, message
):
    started = time.monotonic()

    source = poll(staff, publisher, (FEEDS / name).read_bytes())

    assert message in source.last_error
    assert source.failures == 1
    assert not Conversation.objects.exists()
    assert time.monotonic() - started < 5


def test_an_external_dtd_is_never_read(staff, publisher):
    source = poll(staff, publisher, (FEEDS / "external_dtd.xml").read_bytes())

    assert source.last_error == ""
    assert Conversation.objects.get().text == "Aurora with an external DTD"
    assert not Conversation.objects.filter(text__contains="root:").exists()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/octet-stream", "text/html; charset=klingon"]
)
def test_a_feed_served_with_the_wrong_content_type_is_read_all_the_same(
    staff, publisher, content_type
):
    source = poll(staff, publisher, (FEEDS / "valid.xml").read_bytes(), content_type=content_type)

    assert source.last_error == ""
    assert stored_ids() == {"post-1", "post-2", "post-3"}


def test_a_truncated_feed_keeps_its_whole_entries_and_names_the_cut_one(staff, publisher):
    source = poll(staff, publisher, (FEEDS / "truncated.xml").read_bytes())

    assert stored_ids() == {"post-1", "post-2"}
    assert source.failures == 0
    assert source.last_error.startswith("Entry 3 (")
    assert "text: This field is required" in source.last_error


def test_entries_with_bad_dates_are_kept_or_named_one_by_one(staff, publisher):
    before = timezone.now()

    source = poll(staff, publisher, (FEEDS / "invalid_dates.xml").read_bytes())

    # Unreadable dates are unknown: received now. A far-future one is named and skipped.
    assert stored_ids() == {"date-1", "date-2", "date-4"}
    received = dict(Conversation.objects.values_list("external_id", "received_at"))
    assert received["date-1"] >= before
    assert received["date-2"] >= before
    assert received["date-4"].isoformat() == "2024-01-02T10:00:00+00:00"
    assert source.last_error == (
        "Entry 3 (date-3) skipped: created_at: 2999-01-01T10:00:00+00:00 is not a plausible time."
    )


def test_entries_without_ids_or_links_get_an_id_that_holds_from_poll_to_poll(staff, publisher):
    body = (FEEDS / "missing_ids.xml").read_bytes()

    first = poll(staff, publisher, body)
    again = poll(staff, publisher, body)

    texts = set(Conversation.objects.values_list("text", flat=True))
    assert texts == {
        "Aurora without an id or a link",
        "Aurora with only a link",
        "Aurora complete entry",
    }
    assert first.items_added_last == 3
    assert again.items_added_last == 0
    assert "Entry 3 (" in again.last_error
    assert "text: This field is required" in again.last_error


def test_a_gzip_bomb_is_refused_without_inflating_it(staff, publisher, settings):
    body = (FEEDS / "valid.xml").read_bytes()
    bomb = gzip.compress(body.replace(b"</channel>", b"<!--" + b" " * 64 * 1024 * 1024 + b"-->"))
    assert len(bomb) < settings.ENGAGE_FEED_MAX_BYTES

    source = poll(staff, publisher, bomb, headers={"Content-Encoding": "gzip"})

    assert "The feed is larger than" in source.last_error
    assert not Conversation.objects.exists()


def test_a_feed_that_turns_malformed_keeps_what_it_gave_before(staff, publisher):
    poll(staff, publisher, (FEEDS / "valid.xml").read_bytes())

    source = poll(staff, publisher, (FEEDS / "billion_laughs.xml").read_bytes())

    assert "declares XML entities" in source.last_error
    assert source.items_added_total == 3
    assert stored_ids() == {"post-1", "post-2", "post-3"}


# The push API -----------------------------------------------------------------------------


@pytest.fixture
def bearer(manager) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.create_token(manager, name='malformed')[1]}"}


def push(client, bearer, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/api/v1/ingest", data, content_type="application/json", headers=bearer)


def item(n: int, **overrides) -> dict:
    return json.loads(item_line(n, **overrides))


@pytest.mark.parametrize(
    "body",
    [b"{", b"not json", b"\xff\xfe{}", b'{"items": [' + b"[" * 10_000 + b"]" * 10_000 + b"]}"],
    ids=["cut short", "not json", "not utf-8", "ten thousand levels"],
)
def test_a_body_that_is_not_json_is_a_400_and_stores_nothing(client, bearer, body):
    response = push(client, bearer, body)

    assert response.status_code == 400
    assert response.json() == {"detail": "The request body is not valid JSON."}
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", None),  # no body at all
        ([], "items"),
        ("items", "items"),
        (42, "items"),
        (None, "items"),
        ({"items": {}}, "items"),
        ({"items": "abc"}, "items"),
        ({"items": []}, "items"),
        ({"item": [{}]}, "items"),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_422_naming_items(client, bearer, body, field):
    response = push(client, bearer, body)

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["detail"]] == [field]
    assert not Conversation.objects.exists()


def test_a_body_over_ten_megabytes_is_a_413_and_stores_nothing(client, bearer, settings):
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)
    body = {"items": [item(1), item(2, text=padding)]}

    response = push(client, bearer, body)

    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is too large."}
    assert not Conversation.objects.exists()


def test_every_bad_item_is_named_by_field_and_the_good_ones_are_stored(client, bearer):
    bad = {
        1: ({"text": [[[[["deep"]]]]]}, "text"),
        2: ({"source": {"name": "x"}}, "source"),
        3: ({"channel": 5}, "channel"),
        4: ({"author": ["p4"]}, "author"),
        5: ({"created_at": {"when": "now"}}, "created_at"),
        6: ({"direction": True, "in_reply_to": ["j1"]}, "in_reply_to"),
        7: ({"priority": 3.5}, "priority"),
        8: ({"url": "javascript:alert(1)"}, "url"),
        9: ({"text": "lone \ud800 surrogate"}, "text"),
        10: ({"author": {"handle": "\udfff"}}, "author.handle"),
        11: ({"created_at": 1e20}, "created_at"),
        12: ({"title": "unknown"}, "title"),
    }
    items = [item(0)] + [item(n, **fields) for n, (fields, _) in bad.items()] + [item(13)]
    # JSON's 1e400 is infinity to the parser, and "inf" is not the text anyone sent.
    body = json.dumps({"items": items}).replace('"text": "Item 13"', '"text": 1e400')

    response = push(client, bearer, body.encode())

    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["index"] for result in results] == list(range(len(items)))
    assert results[0]["status"] == "created"
    for n, (_fields, field) in bad.items():
        assert results[n]["status"] == "error", results[n]
        assert field in [error["field"] for error in results[n]["errors"]], results[n]
    assert results[13]["status"] == "error"
    assert [error["field"] for error in results[13]["errors"]] == ["text"]
    assert stored_ids() == {"j0"}


def test_deep_nesting_inside_an_item_is_that_items_error(client, bearer):
    body = {"items": [item(1), {"text": "x"}]}
    text = json.dumps(body).replace('{"text": "x"}', '{"text": ' + "[" * 500 + "]" * 500 + "}")

    response = push(client, bearer, text.encode())

    first, second = response.json()["results"]
    assert first["status"] == "created"
    assert "text" in [error["field"] for error in second["errors"]]


def test_our_message_that_answers_nothing_is_an_item_error_not_a_500(client, bearer):
    body = {"items": [item(1), item(2, direction="outbound", author={"handle": "brand"})]}

    response = push(client, bearer, body)

    assert response.status_code == 200
    assert response.json()["results"][1]["status"] == "error"
    assert stored_ids() == {"j1"}
