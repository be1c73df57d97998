"""manage.py import: JSON Lines and CSV files stored through the ingest service, invalid
rows reported by line and written beside the input, nothing stored twice."""

import csv
import gzip
import importlib
import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from engage.choices import Direction, SourceKind
from engage.models import Conversation, Message, Source
from engage.services import sources
from engage.services.ingest import ingest
from tests.conftest import work

pytestmark = pytest.mark.django_db


def _shared_sample(name: str) -> Path:
    """The public sample beside the checkout (../shared/data), or where this machine keeps
    it when the checkout is elsewhere (CI clones to a temporary folder). Never copied in."""
    places = [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    for place in places:
        if (place / name).exists():
            return place / name
    return places[0] / name


TWCS = _shared_sample("twcs-sample.csv")
TWCS_MAP = (
    "external_id=tweet_id,author.handle=author_id,direction=inbound,"
    "in_reply_to=in_response_to_tweet_id"
)
SUMMARY = re.compile(
    r"Imported .+: (?P<rows>\d+) rows? — (?P<created>\d+) created(?: \([^)]*\))?, "
    r"(?P<known>\d+) already known(?: \([^)]*\))?, (?P<invalid>\d+) invalid"
)


def run_import(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import", *map(str, args), "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def counts(out: str) -> dict[str, int]:
    found = SUMMARY.search(out)
    assert found, out
    return {name: int(value) for name, value in found.groupdict().items()}


def item(n: int, **overrides) -> dict:
    fields = {
        "source": "shop-export",
        "external_id": f"m{n}",
        "channel": "twitter",
        "author": {"handle": f"person{n}", "name": f"Person {n}"},
        "text": f"Message {n}: la mia Aurora perde acqua",
        "created_at": "2025-03-01T10:00:00Z",
    }
    fields.update(overrides)
    return fields


def write_jsonl(path: Path, lines: list) -> Path:
    """Objects are written as JSON; strings and bytes as they are (for broken lines)."""
    with path.open("wb") as file:
        for line in lines:
            if isinstance(line, bytes):
                file.write(line + b"\n")
            elif isinstance(line, str):
                file.write(line.encode() + b"\n")
            else:
                file.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
    return path


CSV_HEADER = ["id", "body", "author.handle", "author.name", "created_at", "likes"]


def write_csv(path: Path, rows: list[list[str]], header=CSV_HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def csv_row(n: int, **overrides) -> list[str]:
    fields = {
        "id": f"c{n}",
        "body": f"Row {n}: great coffee &amp; service",
        "author.handle": f"fan{n}",
        "author.name": f"Fan {n}",
        "created_at": "Tue Oct 31 22:10:47 +0000 2017",
        "likes": str(n),
    }
    fields.update(overrides)
    return [fields[name] for name in CSV_HEADER]


def import_csv(path: Path, *args) -> tuple[str, str]:
    return run_import(
        path,
        "--map",
        "external_id=id,text=body",
        "--source",
        "forum-dump",
        "--channel",
        "forum",
        *args,
    )


def read_rejects_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def read_rejects_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# Storing ---------------------------------------------------------------------------------


def test_a_jsonl_file_opens_conversations_on_a_file_source(tmp_path):
    path = write_jsonl(
        tmp_path / "mentions.jsonl",
        [
            item(1),
            # Flat author fields, as in CSV, are accepted in JSON too.
            {**item(2, author=None), "author.handle": "flat2", "author.name": "Flat Two"},
        ],
    )
    assert not Conversation.objects.exists()

    out, err = run_import(path)

    assert counts(out) == {"rows": 2, "created": 2, "known": 0, "invalid": 0}
    assert err == ""
    first, second = Conversation.objects.select_related("contact", "source").order_by("external_id")
    assert (first.external_id, first.text, first.channel) == (
        "m1",
        "Message 1: la mia Aurora perde acqua",
        "twitter",
    )
    assert (first.contact.handle, first.contact.name) == ("person1", "Person 1")
    assert (second.contact.handle, second.contact.name) == ("flat2", "Flat Two")
    assert first.source.name == "shop-export"
    assert first.source.kind == SourceKind.FILE
    assert Message.objects.filter(conversation=first, external_id="m1").exists()
    assert not (tmp_path / "mentions.rejects.jsonl").exists()


def test_a_csv_file_with_mapped_columns_and_default_source_and_channel(tmp_path):
    path = write_csv(tmp_path / "forum.csv", [csv_row(1), csv_row(2)])

    out, err = import_csv(path)

    assert counts(out) == {"rows": 2, "created": 2, "known": 0, "invalid": 0}
    assert "(see" not in out
    # The extra column is named once, at the start.
    assert err.strip() == "Ignoring columns: likes."
    conversation = Conversation.objects.select_related("contact", "source").get(external_id="c1")
    assert conversation.text == "Row 1: great coffee & service"
    assert conversation.contact.handle == "fan1"
    assert conversation.channel == "forum"
    assert (conversation.source.name, conversation.source.kind) == ("forum-dump", SourceKind.FILE)
    assert conversation.received_at.isoformat() == "2017-10-31T22:10:47+00:00"


def test_values_in_the_file_win_over_source_and_channel_defaults(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [item(1, channel="instagram"), item(2, source="")])

    run_import(path, "--source", "fallback", "--channel", "forum")

    assert dict(Conversation.objects.values_list("external_id", "channel")) == {
        "m1": "instagram",
        "m2": "twitter",
    }
    assert dict(Conversation.objects.values_list("external_id", "source__name")) == {
        "m1": "shop-export",
        "m2": "fallback",
    }


def test_running_the_same_file_again_adds_nothing(tmp_path):
    path = write_jsonl(tmp_path / "again.jsonl", [item(n) for n in range(1, 6)])
    first, _ = run_import(path)
    stored = (Conversation.objects.count(), Message.objects.count())

    second, _ = run_import(path)

    assert counts(first) == {"rows": 5, "created": 5, "known": 0, "invalid": 0}
    assert counts(second) == {"rows": 5, "created": 0, "known": 5, "invalid": 0}
    assert (Conversation.objects.count(), Message.objects.count()) == stored == (5, 5)


def test_batches_are_stored_whatever_the_batch_size(tmp_path):
    path = write_jsonl(tmp_path / "batches.jsonl", [item(n) for n in range(1, 8)])

    out, _ = run_import(path, "--batch-size", "3")

    assert counts(out)["created"] == 7
    assert Conversation.objects.count() == 7


def test_a_reply_joins_its_parent_even_in_a_later_batch(tmp_path):
    path = write_jsonl(
        tmp_path / "thread.jsonl",
        [
            item(1),
            item(2),
            item(3, in_reply_to="m1", direction="outbound", author={"handle": "CaffeAurora"}),
        ],
    )

    run_import(path, "--batch-size", "1")

    reply = Message.objects.get(external_id="m3")
    assert reply.direction == Direction.OUTBOUND
    assert reply.conversation == Conversation.objects.get(external_id="m1")


def test_gzipped_files_are_read_transparently(tmp_path):
    path = tmp_path / "mentions.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write(json.dumps(item(1)) + "\n" + json.dumps(item(2, created_at="yesterday")) + "\n")

    out, err = run_import(path)

    assert counts(out) == {"rows": 2, "created": 1, "known": 0, "invalid": 1}
    assert "line 2: created_at:" in err
    # The rejects are written uncompressed, next to the input.
    assert [r["_line"] for r in read_rejects_jsonl(tmp_path / "mentions.rejects.jsonl")] == [2]


# The public sample -------------------------------------------------------------------------


@pytest.mark.skipif(not TWCS.exists(), reason=f"the public sample {TWCS} is not there")
def test_the_twitter_customer_support_sample():
    with TWCS.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    by_id = {row["tweet_id"]: row for row in rows}
    replies = [r for r in rows if r["in_response_to_tweet_id"] in by_id]
    company_replies = [r for r in replies if r["inbound"] == "False"]
    orphans = [
        r
        for r in rows
        if r["in_response_to_tweet_id"] and r["in_response_to_tweet_id"] not in by_id
    ]
    escaped = [r for r in rows if "&amp;" in r["text"]]
    astral = [r for r in rows if any(ord(c) > 0xFFFF for c in r["text"])]
    # The sample has each of the things this test looks at.
    assert all(map(len, (company_replies, orphans, escaped, astral)))

    out, err = run_import(TWCS, "--map", TWCS_MAP, "--source", "twcs", "--channel", "twitter")

    found = counts(out)
    assert found["rows"] == len(rows)
    assert found["created"] + found["known"] + found["invalid"] == len(rows)
    assert found["invalid"] == 0, err
    assert "Ignoring columns: response_tweet_id." in err
    messages = {m.external_id: m for m in Message.objects.filter(source__name="twcs")}
    assert len(messages) == found["created"] + found["known"]
    assert Source.objects.get(name="twcs").kind == SourceKind.FILE
    assert not any("&amp;" in m.text for m in messages.values())
    for row in escaped:
        assert "&" in messages[row["tweet_id"]].text
    for row in astral:
        emoji = [c for c in row["text"] if ord(c) > 0xFFFF]
        assert all(c in messages[row["tweet_id"]].text for c in emoji)
    # Multi-line tweets keep their lines.
    for row in rows:
        if "\n" in row["text"].strip():
            assert "\n" in messages[row["tweet_id"]].text
    for row in company_replies:
        reply, parent = messages[row["tweet_id"]], messages[row["in_response_to_tweet_id"]]
        assert reply.direction == Direction.OUTBOUND
        assert reply.conversation_id is not None
        assert reply.conversation_id == parent.conversation_id, row["tweet_id"]
    # Our replies to tweets outside the sample wait for them; a person's open a conversation.
    for row in orphans:
        waiting = row["inbound"] == "False"
        assert (messages[row["tweet_id"]].conversation_id is None) == waiting
    stored = (Conversation.objects.count(), Message.objects.count())

    again, _ = run_import(TWCS, "--map", TWCS_MAP, "--source", "twcs", "--channel", "twitter")

    assert counts(again) == {"rows": len(rows), "created": 0, "known": len(rows), "invalid": 0}
    assert (Conversation.objects.count(), Message.objects.count()) == stored


# Refusing the whole file -------------------------------------------------------------------


def test_a_map_to_an_unknown_field_is_refused(tmp_path):
    path = write_csv(tmp_path / "forum.csv", [csv_row(1)])

    with pytest.raises(CommandError, match="--map: “body” is not an item field; use one of source"):
        run_import(path, "--map", "body=text")


@pytest.mark.parametrize("spec", ["text", "text=", "=body", "text=body,text=id"])
def test_a_malformed_map_is_refused(tmp_path, spec):
    path = write_csv(tmp_path / "forum.csv", [csv_row(1)])

    with pytest.raises(CommandError, match="--map"):
        run_import(path, "--map", spec)


def test_a_mapped_column_missing_from_the_header_is_named_with_the_header(tmp_path):
    path = write_csv(tmp_path / "forum.csv", [csv_row(1)])

    with pytest.raises(CommandError) as refused:
        run_import(
            path, "--map", "text=message,external_id=id", "--source", "s", "--channel", "forum"
        )

    assert str(refused.value) == (
        "--map text=message: there is no column “message”; the header has: "
        "id, body, author.handle, author.name, created_at, likes."
    )
    assert not Conversation.objects.exists()


def test_a_header_without_a_required_field_is_refused_before_storing(tmp_path):
    path = write_csv(tmp_path / "forum.csv", [csv_row(1)])

    with pytest.raises(CommandError, match="No column gives the items' text: .*--map text=COLUMN"):
        run_import(path, "--map", "external_id=id", "--source", "s", "--channel", "forum")
    with pytest.raises(CommandError, match="No column gives the items' channel"):
        run_import(path, "--map", "external_id=id,text=body", "--source", "s")
    assert not Conversation.objects.exists()


def test_an_unknown_extension_needs_a_format(tmp_path):
    path = tmp_path / "mentions.txt"
    path.write_text(json.dumps(item(1)) + "\n")

    with pytest.raises(CommandError, match=r"Cannot tell the format of .*mentions\.txt.*--format"):
        run_import(path)
    out, _ = run_import(path, "--format", "jsonl")

    assert counts(out)["created"] == 1


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*absent\.csv: No such file or directory"):
        run_import(tmp_path / "absent.csv")
    assert not (tmp_path / "absent.rejects.csv").exists()


def test_an_unknown_default_channel_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [item(1)])

    with pytest.raises(CommandError, match="--channel: unknown channel “myspace”"):
        run_import(path, "--channel", "myspace")


def test_a_batch_size_above_the_limit_is_refused(tmp_path, settings):
    settings.ENGAGE_INGEST_BATCH_LIMIT = 100
    path = write_jsonl(tmp_path / "m.jsonl", [item(1)])

    with pytest.raises(CommandError, match="--batch-size must be between 1 and 100"):
        run_import(path, "--batch-size", "101")


def test_an_empty_csv_file_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(CommandError, match="is empty: a CSV file starts with a header row"):
        run_import(path)


def test_a_file_that_is_not_gzip_inside_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)

    with pytest.raises(CommandError, match=r"Cannot read .*broken\.jsonl\.gz"):
        run_import(path)


# Invalid rows ------------------------------------------------------------------------------


def test_invalid_csv_rows_are_reported_by_line_and_written_beside_the_input(tmp_path):
    path = write_csv(
        tmp_path / "forum.csv",
        [
            csv_row(1),
            csv_row(2, created_at="yesterday"),  # line 3
            csv_row(3),
            csv_row(4, body="", **{"author.handle": ""}),  # line 5
            csv_row(5),
        ],
    )

    out, err = import_csv(path)

    assert counts(out) == {"rows": 5, "created": 3, "known": 0, "invalid": 2}
    rejects = tmp_path / "forum.rejects.csv"
    assert f"(see {rejects})" in out
    assert "line 3: created_at: “yesterday” is not a time: use ISO 8601" in err
    assert (
        "line 5: author.handle: This field is required and may not be blank.; "
        "text: This field is required and may not be blank."
    ) in err
    assert set(Conversation.objects.values_list("external_id", flat=True)) == {"c1", "c3", "c5"}
    written = read_rejects_csv(rejects)
    assert [row["line"] for row in written] == ["3", "5"]
    assert [row["id"] for row in written] == ["c2", "c4"]
    # The original columns as they were, so the file can be fixed and imported again.
    assert list(written[0]) == [*CSV_HEADER, "line", "errors"]
    assert written[0]["body"] == "Row 2: great coffee &amp; service"
    assert written[0]["errors"].startswith("created_at: “yesterday” is not a time")


def test_csv_line_numbers_count_the_lines_inside_quoted_fields(tmp_path):
    path = write_csv(
        tmp_path / "multiline.csv",
        [
            csv_row(1, body="first line\nsecond line\nthird line"),  # lines 2-4
            csv_row(2, created_at="not a date"),  # line 5
            csv_row(3, body="one\ntwo"),  # lines 6-7
            csv_row(4, created_at="still not a date", body="a\nb"),  # lines 8-9
        ],
    )

    out, err = import_csv(path)

    assert counts(out)["invalid"] == 2
    assert re.findall(r"^line (\d+):", err, re.MULTILINE) == ["5", "8"]
    written = read_rejects_csv(tmp_path / "multiline.rejects.csv")
    assert [(row["line"], row["id"]) for row in written] == [("5", "c2"), ("8", "c4")]
    assert written[1]["body"] == "a\nb"
    assert Message.objects.get(external_id="c1").text == "first line\nsecond line\nthird line"


def test_blank_csv_lines_are_skipped_and_do_not_shift_line_numbers(tmp_path):
    path = tmp_path / "gaps.csv"
    write_csv(path, [csv_row(1)])
    with path.open("a", encoding="utf-8", newline="") as file:
        file.write("\r\n\r\n")
        csv.writer(file).writerow(csv_row(2, created_at="never"))  # line 5

    out, err = import_csv(path)

    assert counts(out) == {"rows": 2, "created": 1, "known": 0, "invalid": 1}
    assert "line 5: created_at" in err


def test_a_csv_row_with_the_wrong_number_of_fields_is_rejected(tmp_path):
    path = write_csv(tmp_path / "ragged.csv", [csv_row(1), [*csv_row(2), "extra"], csv_row(3)])

    out, err = import_csv(path)

    assert counts(out) == {"rows": 3, "created": 2, "known": 0, "invalid": 1}
    assert "line 3: 7 fields where the header has 6" in err
    assert [row["id"] for row in read_rejects_csv(tmp_path / "ragged.rejects.csv")] == ["c2"]


def test_invalid_jsonl_lines_are_reported_and_kept_in_the_rejects_file(tmp_path):
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            item(1),
            '{"source": "shop-export", "text": ',  # line 2: cut short
            "",  # line 3: blank, skipped silently
            ["not", "an", "object"],  # line 4
            item(5, priority="whenever", extra="kept"),  # line 5
            item(6),
            '{"text": NaN}',  # line 7
        ],
    )

    out, err = run_import(path)

    assert counts(out) == {"rows": 6, "created": 2, "known": 0, "invalid": 4}
    assert "line 2: not JSON: Expecting value (column 35)" in err
    assert "line 3" not in err
    assert "line 4: item: Expected a JSON object." in err
    assert "line 5: priority: Unknown priority “whenever”" in err
    assert "line 7: not JSON: NaN is not JSON" in err
    # Keys no field reads are named when first seen.
    assert "line 5: ignoring extra." in err
    assert set(Conversation.objects.values_list("external_id", flat=True)) == {"m1", "m6"}
    written = read_rejects_jsonl(tmp_path / "mixed.rejects.jsonl")
    assert [line["_line"] for line in written] == [2, 4, 5, 7]
    assert written[0]["_raw"] == '{"source": "shop-export", "text": '
    assert written[1]["_raw"] == '["not", "an", "object"]'
    # An object comes back as it was, with its line and errors added.
    assert written[2] == {
        **item(5, priority="whenever", extra="kept"),
        "_line": 5,
        "_errors": ["priority: Unknown priority “whenever”: use low, normal, high or urgent."],
    }


def test_an_invalid_utf8_line_is_reported_and_the_rest_imported(tmp_path):
    good = json.dumps(item(1)).encode()
    bad = (
        json.dumps(item(2, text="caff\u00e8"), ensure_ascii=False)
        .encode()
        .replace("\u00e8".encode(), b"\xe8")
    )
    path = write_jsonl(tmp_path / "latin1.jsonl", [good, bad, json.dumps(item(3))])

    out, err = run_import(path)

    assert counts(out) == {"rows": 3, "created": 2, "known": 0, "invalid": 1}
    assert re.search(r"line 2: not valid UTF-8 \(invalid continuation byte at byte \d+\)", err)
    (written,) = read_rejects_jsonl(tmp_path / "latin1.rejects.jsonl")
    # The rejects file is valid UTF-8 itself; the bad byte is shown, not lost.
    assert written["_line"] == 2
    assert '"caff\\xe8"' in written["_raw"]


def test_an_invalid_utf8_csv_row_is_reported_and_the_rest_imported(tmp_path):
    path = write_csv(
        tmp_path / "latin1.csv", [csv_row(1), csv_row(2, body="caff\u00e8"), csv_row(3)]
    )
    path.write_bytes(path.read_bytes().replace("\u00e8".encode(), b"\xe8"))

    out, err = import_csv(path)

    assert counts(out) == {"rows": 3, "created": 2, "known": 0, "invalid": 1}
    assert "line 3: not valid UTF-8" in err
    (written,) = read_rejects_csv(tmp_path / "latin1.rejects.csv")
    assert (written["id"], written["body"]) == ("c2", "caff\\xe8")


def test_a_byte_order_mark_is_not_part_of_the_first_column_or_line(tmp_path):
    csv_path = write_csv(tmp_path / "excel.csv", [csv_row(1)])
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())
    jsonl_path = write_jsonl(tmp_path / "bom.jsonl", [item(2)])
    jsonl_path.write_bytes(b"\xef\xbb\xbf" + jsonl_path.read_bytes())

    csv_out, _ = import_csv(csv_path)
    jsonl_out, _ = run_import(jsonl_path)

    assert counts(csv_out)["created"] == 1
    assert counts(jsonl_out)["created"] == 1
    assert set(Conversation.objects.values_list("external_id", flat=True)) == {"c1", "m2"}


def test_a_stale_rejects_file_is_removed_when_a_run_has_none(tmp_path):
    path = write_jsonl(tmp_path / "fixme.jsonl", [item(1), item(2, created_at="soon")])
    run_import(path)
    rejects = tmp_path / "fixme.rejects.jsonl"
    assert rejects.exists()

    write_jsonl(path, [item(1), item(2)])
    out, _ = run_import(path)

    assert counts(out) == {"rows": 2, "created": 1, "known": 1, "invalid": 0}
    assert not rejects.exists()


def test_a_rejects_file_is_replaced_by_the_new_runs_rejects(tmp_path):
    path = write_jsonl(tmp_path / "fixme.jsonl", [item(1, created_at="soon"), item(2)])
    run_import(path)

    write_jsonl(path, [item(1), item(2, text="")])
    run_import(path)

    written = read_rejects_jsonl(tmp_path / "fixme.rejects.jsonl")
    assert [(line["_line"], line["external_id"]) for line in written] == [(2, "m2")]
    # Only the final file is left: no temporary files beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixme.jsonl", "fixme.rejects.jsonl"]


def test_a_fixed_rejects_file_imports_again(tmp_path):
    path = write_csv(tmp_path / "forum.csv", [csv_row(1), csv_row(2, created_at="someday")])
    import_csv(path)
    rejects = tmp_path / "forum.rejects.csv"
    rejects.write_text(
        rejects.read_text(encoding="utf-8").replace("someday", "2025-01-02T03:04:05Z")
    )

    out, err = import_csv(rejects)

    assert counts(out) == {"rows": 1, "created": 1, "known": 0, "invalid": 0}
    assert "Ignoring columns: likes, line, errors." in err
    assert Conversation.objects.filter(external_id="c2").exists()


def test_only_the_first_hundred_invalid_rows_are_shown(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [item(n, text="") for n in range(150)])

    out, err = run_import(path)

    assert counts(out)["invalid"] == 150
    assert len(re.findall(r"^line \d+:", err, re.MULTILINE)) == 100
    assert "More invalid rows are not shown here" in err
    assert len(read_rejects_jsonl(tmp_path / "bad.rejects.jsonl")) == 150


def test_a_map_to_keys_no_line_has_is_pointed_out(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [item(1)])

    out, err = run_import(path, "--map", "text=body")

    assert counts(out)["invalid"] == 1
    assert "--map: no line has “body”." in err


def test_dotted_map_columns_reach_into_nested_json(tmp_path):
    tweet = {
        "id_str": "42",
        "full_text": "Aurora Duo: ottima!",
        "user": {"screen_name": "giovanna", "name": "Giovanna"},
    }
    path = write_jsonl(tmp_path / "tweets.jsonl", [tweet])

    out, err = run_import(
        path,
        "--map",
        "external_id=id_str,text=full_text,author.handle=user.screen_name,author.name=user.name",
        "--source",
        "tweets",
        "--channel",
        "twitter",
    )

    assert counts(out)["created"] == 1, err
    conversation = Conversation.objects.select_related("contact").get()
    assert (conversation.text, conversation.contact.handle) == ("Aurora Duo: ottima!", "giovanna")


# Transactions ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_each_batch_commits_so_an_interrupted_import_resumes(tmp_path, monkeypatch, queue):
    """Batches commit one by one (and are enriched after commit, as in production): an
    interrupted import keeps what it stored, and the next run skips it."""
    command = importlib.import_module("engage.management.commands.import")
    calls = []

    def interrupted_on_the_second_batch(items, **kwargs):
        calls.append(len(items))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return ingest(items, **kwargs)

    monkeypatch.setattr(command, "ingest", interrupted_on_the_second_batch)
    path = write_jsonl(tmp_path / "long.jsonl", [item(n) for n in range(1, 6)] + ["oops"])
    old_rejects = tmp_path / "long.rejects.jsonl"
    old_rejects.write_text('{"_line": 1, "_errors": ["from an earlier run"]}\n')

    with pytest.raises(
        CommandError, match="Interrupted after 4 rows.*running the import again skips"
    ):
        run_import(path, "--batch-size", "2")

    assert calls == [2, 2]
    assert set(Message.objects.values_list("external_id", flat=True)) == {"m1", "m2"}
    # The enrichment queued after commit ran (jobs are run here if Redis queued them).
    work(queue)
    assert not Message.objects.filter(enriched_at__isnull=True).exists()
    # A run that did not finish leaves the earlier rejects file alone.
    assert "from an earlier run" in old_rejects.read_text()
    monkeypatch.setattr(command, "ingest", ingest)

    out, _ = run_import(path, "--batch-size", "2")

    assert counts(out) == {"rows": 6, "created": 3, "known": 2, "invalid": 1}
    assert Message.objects.count() == 5
    assert [line["_raw"] for line in read_rejects_jsonl(old_rejects)] == ["oops"]


def test_an_item_the_service_refuses_is_rejected_like_an_invalid_row(tmp_path, staff):
    path = write_jsonl(tmp_path / "late.jsonl", [item(1, source="closed-shop"), item(2)])
    run_import(write_jsonl(tmp_path / "first.jsonl", [item(3, source="closed-shop")]))
    sources.remove(Source.objects.get(name="closed-shop").pk, actor=staff)

    out, err = run_import(path)

    assert counts(out) == {"rows": 2, "created": 1, "known": 0, "invalid": 1}
    assert "line 1: source: The source “closed-shop” was removed" in err
    (written,) = read_rejects_jsonl(tmp_path / "late.rejects.jsonl")
    assert (written["_line"], written["external_id"]) == (1, "m1")
