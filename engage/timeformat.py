"""Django's `date` filter and `timesince` / `timeuntil`, for the many times of one page.

The queue page shows two times a row, each as a phrase ("3 hours, 5 minutes") and as a full
date in its title: 200 calls a page to `django.utils.dateformat.format` and `timesince`, each
20-30 µs, most of it spent translating the same month names and units again, splitting the
same format string and asking the time zone about every value. A `Clock` translates once,
in the language active when it is made, and then follows Django's own rules (the methods of
`django.utils.dateformat.DateFormat` and the algorithm of `django.utils.timesince`).
Format characters it does not know are left to Django. tests/test_timeformat.py proves the
output equal to Django's, in English and Italian, over many dates.
"""

import datetime

from django.utils import dateformat, translation
from django.utils.dates import MONTHS, MONTHS_3, MONTHS_ALT, MONTHS_AP, WEEKDAYS, WEEKDAYS_ABBR
from django.utils.timesince import MONTHS_DAYS, TIME_CHUNKS, TIME_STRINGS, TIME_STRINGS_KEYS
from django.utils.translation import gettext as _


class Clock:
    """Formats times as Django would in the language active when it was made."""

    def __init__(self):
        self.months = {n: str(name) for n, name in MONTHS.items()}
        self.months_ap = {n: str(name) for n, name in MONTHS_AP.items()}
        self.months_alt = {n: str(name) for n, name in MONTHS_ALT.items()}
        self.months_3 = {n: str(name) for n, name in MONTHS_3.items()}
        self.months_3_title = {n: name.title() for n, name in self.months_3.items()}
        self.weekdays = {n: str(name) for n, name in WEEKDAYS.items()}
        self.weekdays_abbr = {n: str(name) for n, name in WEEKDAYS_ABBR.items()}
        self.am, self.pm = _("a.m."), _("p.m.")
        self.upper_am, self.upper_pm = _("AM"), _("PM")
        self.midnight, self.noon = _("midnight"), _("noon")
        self.separator = _(", ")
        self.language = translation.get_language()
        # (unit, count) -> "3 hours", translated and kept from wrapping.
        self.units: dict[tuple[str, int], str] = {}
        self.formats: dict[str, object] = {}
        self.zero = self._unit("minute", 0)

    # The date filter ------------------------------------------------------------------

    def format(self, value: datetime.datetime, format_string: str) -> str:
        """`dateformat.format(value, format_string)`."""
        compiled = self.formats.get(format_string)
        if compiled is None:
            compiled = self.formats[format_string] = self._compile(format_string)
        return compiled(value)

    def _compile(self, format_string: str):
        pieces = dateformat.re_formatchars.split(str(format_string))
        parts = []
        for n, piece in enumerate(pieces):
            if n % 2:
                method = getattr(self, f"_char_{piece}", None)
                if method is None:
                    # A character that needs the time zone or more: Django does it all.
                    return lambda value: dateformat.format(value, format_string)
                parts.append(method)
            elif piece:
                parts.append(dateformat.re_escaped.sub(r"\1", piece))

        def formatted(value) -> str:
            return "".join([part if type(part) is str else part(value) for part in parts])

        return formatted

    def _char_a(self, v):
        return self.pm if v.hour > 11 else self.am

    def _char_A(self, v):
        return self.upper_pm if v.hour > 11 else self.upper_am

    def _char_b(self, v):
        return self.months_3[v.month]

    def _char_d(self, v):
        return f"{v.day:02d}"

    def _char_D(self, v):
        return self.weekdays_abbr[v.weekday()]

    def _char_E(self, v):
        return self.months_alt[v.month]

    def _char_f(self, v):
        hour = v.hour % 12 or 12
        return f"{hour}:{v.minute:02d}" if v.minute else str(hour)

    def _char_F(self, v):
        return self.months[v.month]

    def _char_g(self, v):
        return str(v.hour % 12 or 12)

    def _char_G(self, v):
        return str(v.hour)

    def _char_h(self, v):
        return f"{v.hour % 12 or 12:02d}"

    def _char_H(self, v):
        return f"{v.hour:02d}"

    def _char_i(self, v):
        return f"{v.minute:02d}"

    def _char_j(self, v):
        return str(v.day)

    def _char_l(self, v):
        return self.weekdays[v.weekday()]

    def _char_m(self, v):
        return f"{v.month:02d}"

    def _char_M(self, v):
        return self.months_3_title[v.month]

    def _char_n(self, v):
        return str(v.month)

    def _char_N(self, v):
        return self.months_ap[v.month]

    def _char_P(self, v):
        if v.minute == 0 and v.hour == 0:
            return self.midnight
        if v.minute == 0 and v.hour == 12:
            return self.noon
        return f"{self._char_f(v)} {self._char_a(v)}"

    def _char_s(self, v):
        return f"{v.second:02d}"

    def _char_y(self, v):
        return f"{v.year % 100:02d}"

    def _char_Y(self, v):
        return f"{v.year:04d}"

    # timesince and timeuntil ------------------------------------------------------------

    def since(self, d: datetime.datetime, now: datetime.datetime) -> str:
        """`timesince(d, now)`: two adjacent units at most."""
        if now.tzinfo is not None and d.tzinfo is not None:
            now = now.astimezone(d.tzinfo)
        return self._between(d, now)

    def until(self, d: datetime.datetime, now: datetime.datetime) -> str:
        """`timeuntil(d, now)`."""
        if now.tzinfo is not None and d.tzinfo is not None:
            now = now.astimezone(d.tzinfo)
        return self._between(now, d)

    def _unit(self, name: str, count: int) -> str:
        key = (name, count)
        text = self.units.get(key)
        if text is None:
            # Translated (by count: plural forms) in the clock's language; avoid_wrapping
            # keeps the number and its unit on one line.
            with translation.override(self.language):
                text = TIME_STRINGS[name] % {"num": count}
            text = self.units[key] = text.replace(" ", "\xa0")
        return text

    def _between(self, d: datetime.datetime, now: datetime.datetime) -> str:
        # django.utils.timesince.timesince, step by step, with depth 2.
        delta = now - d
        if delta.days * 86400 + delta.seconds <= 0:
            return self.zero
        total_months = (now.year - d.year) * 12 + (now.month - d.month)
        if d.day > now.day or (d.day == now.day and d.time() > now.time()):
            total_months -= 1
        years, months = divmod(total_months, 12)
        if years or months:
            pivot_year = d.year + years
            pivot_month = d.month + months
            if pivot_month > 12:
                pivot_month -= 12
                pivot_year += 1
            pivot = datetime.datetime(
                pivot_year,
                pivot_month,
                min(MONTHS_DAYS[pivot_month - 1], d.day),
                d.hour,
                d.minute,
                d.second,
                tzinfo=d.tzinfo,
            )
        else:
            pivot = d
        remaining = (now - pivot).total_seconds()
        partials = [years, months]
        for chunk in TIME_CHUNKS:
            count = int(remaining // chunk)
            partials.append(count)
            remaining -= chunk * count
        first = next((n for n, value in enumerate(partials) if value), None)
        if first is None:
            return self.zero
        result = [self._unit(TIME_STRINGS_KEYS[first], partials[first])]
        if first + 1 < len(partials) and partials[first + 1]:
            result.append(self._unit(TIME_STRINGS_KEYS[first + 1], partials[first + 1]))
        return self.separator.join(result)
