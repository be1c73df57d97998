"""engage.timeformat.Clock writes what Django's date filter and timesince write."""

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import dateformat, translation
from django.utils.formats import get_format
from django.utils.timesince import timesince, timeuntil

from engage.timeformat import Clock

ROME = ZoneInfo("Europe/Rome")
LANGUAGES = ["en", "it"]
CHARACTERS = "aAbdDEfFgGhHijlmMnNPsyY"


def moments() -> list[datetime]:
    """Every month and weekday, midnight, noon, the minutes around them, leap days."""
    rng = random.Random(7)
    fixed = [
        datetime(2024, 2, 29, 0, 0, tzinfo=ROME),
        datetime(2024, 2, 29, 12, 0, tzinfo=ROME),
        datetime(2025, 12, 31, 23, 59, 59, tzinfo=ROME),
        datetime(2026, 1, 1, 0, 5, tzinfo=ROME),
        datetime(2026, 6, 1, 12, 30, tzinfo=ROME),
        datetime(2026, 7, 4, 11, 0, tzinfo=ROME),
        datetime(2026, 7, 4, 13, 7, 9, tzinfo=ROME),
        datetime(5, 3, 9, 1, 2, 3, tzinfo=UTC),
    ]
    start = datetime(2023, 1, 1, tzinfo=UTC)
    spread = [
        (start + timedelta(seconds=rng.randrange(4 * 365 * 86400))).astimezone(ROME)
        for _ in range(400)
    ]
    return fixed + spread


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_format_character_and_the_sites_formats_as_django_writes_them(language):
    with translation.override(language):
        clock = Clock()
        formats = [
            *CHARACTERS,
            get_format("DATETIME_FORMAT"),
            get_format("SHORT_DATETIME_FORMAT"),
            get_format("DATE_FORMAT"),
            r"\Y\e\s: jS F Y \a\t P",  # escapes, and S, which Django does itself
            "c e O T Z",  # the time zone's characters: Django's
        ]
        for moment in moments():
            for format_string in formats:
                assert clock.format(moment, format_string) == dateformat.format(
                    moment, format_string
                ), (moment, format_string)


@pytest.mark.parametrize("language", LANGUAGES)
def test_since_and_until_as_django_writes_them(language):
    rng = random.Random(11)
    now = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    offsets = [0, 1, 59, 60, 61, 3600, 86399, 86400, 7 * 86400, 28 * 86400, 31 * 86400]
    offsets += [rng.randrange(3 * 365 * 86400) for _ in range(1500)]
    with translation.override(language):
        clock = Clock()
        for seconds in offsets:
            for then in (now - timedelta(seconds=seconds), now + timedelta(seconds=seconds)):
                assert clock.since(then, now) == timesince(then, now), (then, now)
                assert clock.until(then, now) == timeuntil(then, now), (then, now)
        # Month ends and leap years, where the pivot day is clamped.
        for then, later in [
            (datetime(2024, 1, 31, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
            (datetime(2023, 2, 28, 23, tzinfo=UTC), datetime(2024, 2, 29, 1, tzinfo=UTC)),
            (datetime(2025, 12, 31, 12, tzinfo=UTC), datetime(2026, 12, 31, 11, tzinfo=UTC)),
        ]:
            assert clock.since(then, later) == timesince(then, later)
            # Compared in the first one's time zone, as Django does.
            assert clock.since(then.astimezone(ROME), later) == timesince(
                then.astimezone(ROME), later
            )


def test_a_clock_speaks_the_language_it_was_made_in():
    moment = datetime(2026, 12, 7, 16, 45, tzinfo=UTC)
    with translation.override("it"):
        italian = Clock()
    with translation.override("en"):
        assert italian.format(moment, "F") == "Dicembre"
        assert italian.since(moment - timedelta(days=3), moment) == "3\xa0giorni"
