"""Charts drawn by the server as inline SVG: bars, a funnel and a time series.

The geometry is computed here, in Python, in the units of each chart's viewBox; the markup
lives in templates/engage/dashboard/charts/, so every text in it is escaped by the template
engine. Colours come from CSS classes (engage/css/dashboard.css): the CSP forbids inline
styles. Nothing here touches the database.

Each chart takes rows already worded by the view (`Bar`), so a chart knows how to draw, not
what a figure means; each row carries the link to the conversations (or ticket) behind it.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from django import template
from django.template.defaultfilters import floatformat
from django.utils.translation import gettext as _

register = template.Library()


# Words ---------------------------------------------------------------------------------------


@register.filter
def duration(seconds) -> str:
    """A duration for people: "45 s", "12 min", "3 h 20 min", "2 d 4 h"; "—" for none.

    Two units at most: "3 h 20 min" reads at a glance, "3 h 20 min 12 s" does not.
    """
    if seconds is None or seconds == "":
        return "—"
    try:
        seconds = max(float(seconds), 0.0)
    except (TypeError, ValueError):
        return "—"
    if seconds < 60:
        return _("%(seconds)s s") % {"seconds": int(round(seconds))}
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return _("%(minutes)s min") % {"minutes": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        if minutes:
            return _("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": minutes}
        return _("%(hours)s h") % {"hours": hours}
    days, hours = divmod(hours, 24)
    if hours:
        return _("%(days)s d %(hours)s h") % {"days": floatformat(days, "g"), "hours": hours}
    return _("%(days)s d") % {"days": floatformat(days, "g")}


@register.filter
def percent(share) -> str:
    """A share (0..1) as a whole percentage in the current locale: "85%"; "—" for none."""
    if share is None or share == "":
        return "—"
    return _("%(value)s%%") % {"value": floatformat(float(share) * 100, 0)}


@register.filter
def number(value) -> str:
    """A count with the locale's thousands separator: "1,234" (English), "1.234" (Italian)."""
    if value is None:
        return "—"
    return floatformat(value, "g")


# Rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar (or funnel step): its length is `value` out of the chart's largest (or of
    `scale` when given, e.g. 1 for a share). `value` None draws no bar ("no data")."""

    label: str
    value: float | None
    text: str  # the figure, e.g. "1,234" or "85%"
    detail: str = ""  # what it is out of, e.g. "17 of 20"
    note: str = ""  # a further line (the funnel's median time in step)
    href: str = ""  # the conversations (or the ticket) behind the figure
    description: str = ""  # the whole figure in words, for assistive technology
    css: str = ""  # a class that picks the colour


@dataclass(frozen=True)
class Series:
    """One line of a time series: the attribute it reads from each point, and its words."""

    key: str
    label: str
    css: str
    href: str = ""  # the conversations it counts now (a past point cannot be listed)


# Geometry ------------------------------------------------------------------------------------


def _r(value: float) -> float:
    """Coordinates to a tenth of a unit: enough for a crisp line, short in the markup."""
    return round(value, 1)


def _length(value: float | None, largest: float, span: float, *, least: float = 3.0) -> float:
    """A bar's length: proportional, but never invisible for a value above zero."""
    if not value or largest <= 0:
        return 0.0
    return max(span * min(value / largest, 1.0), least)


@dataclass(frozen=True)
class PlacedBar:
    row: Bar
    x: float
    y: float
    width: float
    height: float
    text_y: float
    detail_y: float
    value_x: float


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    label_x: float  # where labels end (right-aligned)
    track_x: float
    track_width: float
    bar_height: float
    bars: list[PlacedBar]


BAR_ROW = 34
BAR_HEIGHT = 20


def bar_chart_geometry(rows: list[Bar], *, scale: float | None = None) -> BarChart:
    """Horizontal bars: a label column, a track, and the figure after the bar's track."""
    width, label_width, value_width = 420, 112, 118
    track_x = label_width + 8
    track_width = width - track_x - value_width
    largest = scale if scale is not None else max((row.value or 0 for row in rows), default=0)
    bars = []
    for index, row in enumerate(rows):
        y = 4 + index * BAR_ROW
        bars.append(
            PlacedBar(
                row=row,
                x=track_x,
                y=y,
                width=_r(_length(row.value, largest, track_width)),
                height=BAR_HEIGHT,
                text_y=y + BAR_HEIGHT / 2,
                detail_y=y + BAR_HEIGHT / 2,
                value_x=track_x + track_width + 10,
            )
        )
    height = 8 + max(len(rows), 1) * BAR_ROW - (BAR_ROW - BAR_HEIGHT)
    return BarChart(width, height, label_width, track_x, track_width, BAR_HEIGHT, bars)


TITLED_ROW = 50


def titled_bar_geometry(rows: list[Bar]) -> BarChart:
    """Bars with their label above them (long labels: ticket titles), figure after the bar."""
    width, track_width, value_room = 560, 380, 170
    largest = max((row.value or 0 for row in rows), default=0)
    bars = []
    for index, row in enumerate(rows):
        y = 4 + index * TITLED_ROW
        bar_y = y + 20
        length = _length(row.value, largest, track_width)
        bars.append(
            PlacedBar(
                row=row,
                x=0,
                y=bar_y,
                width=_r(length),
                height=18,
                text_y=y + 12,
                detail_y=bar_y + 9,
                value_x=_r(length + 10),
            )
        )
    height = 8 + max(len(rows), 1) * TITLED_ROW - 8
    return BarChart(width, height, 0, 0, track_width + value_room, 18, bars)


@dataclass(frozen=True)
class FunnelStep:
    row: Bar
    x: float
    y: float
    width: float
    label_y: float
    note_y: float
    value_y: float
    detail_y: float
    # The narrowing band between this bar and the next ("" after the last one).
    neck: str


@dataclass(frozen=True)
class FunnelChart:
    width: int
    height: int
    label_x: float
    value_x: float
    bar_height: float
    steps: list[FunnelStep]


FUNNEL_ROW = 62
FUNNEL_BAR = 42


def funnel_geometry(rows: list[Bar]) -> FunnelChart:
    """Bars centred on one axis, each as wide as its count against the first (the widest),
    joined by bands that narrow from one to the next: the funnel. Stage names on the left,
    figures on the right, in columns that line up whatever the bars' widths."""
    width, label_width, value_width = 640, 156, 168
    span = width - label_width - value_width - 32
    centre = label_width + 16 + span / 2
    largest = max((row.value or 0 for row in rows), default=0)
    placed = []
    for index, row in enumerate(rows):
        y = 4 + index * FUNNEL_ROW
        bar_width = _length(row.value, largest, span, least=4.0)
        placed.append((row, _r(centre - bar_width / 2), y, _r(bar_width)))
    steps = []
    for index, (row, x, y, bar_width) in enumerate(placed):
        neck = ""
        if index + 1 < len(placed):
            _next_row, next_x, next_y, next_width = placed[index + 1]
            top, bottom = y + FUNNEL_BAR, next_y
            neck = " ".join(
                f"{px:.1f},{py:.1f}"
                for px, py in (
                    (x, top),
                    (x + bar_width, top),
                    (next_x + next_width, bottom),
                    (next_x, bottom),
                )
            )
        steps.append(
            FunnelStep(
                row=row,
                x=x,
                y=y,
                width=bar_width,
                # One line sits in the middle of the bar; two share it.
                label_y=y + 18 if row.note else y + FUNNEL_BAR / 2 + 5,
                note_y=y + 34,
                value_y=y + 18 if row.detail else y + FUNNEL_BAR / 2 + 6,
                detail_y=y + 34,
                neck=neck,
            )
        )
    height = 8 + max(len(rows), 1) * FUNNEL_ROW - (FUNNEL_ROW - FUNNEL_BAR)
    return FunnelChart(width, height, label_width, width - value_width + 8, FUNNEL_BAR, steps)


def nice_ceiling(value: float) -> int:
    """The smallest "round" number (1, 2, 2.5, 5 × 10ⁿ, whole) at or above `value`."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * magnitude
        if candidate >= value and float(candidate).is_integer():
            return int(candidate)
    return int(10 * magnitude)


@dataclass(frozen=True)
class Tick:
    value: float
    position: float


@dataclass(frozen=True)
class TimeTick:
    when: datetime
    position: float
    anchor: str  # SVG text-anchor: the first label starts at its tick, the last ends there
    format: str  # for the date filter: the day, and the hour when the points span few days


@dataclass(frozen=True)
class PlacedPoint:
    when: datetime
    value: int
    x: float
    y: float


@dataclass(frozen=True)
class PlacedSeries:
    series: Series
    points: list[PlacedPoint]
    markers: list[PlacedPoint]  # the points drawn as dots (all, or a sample of many)
    polyline: str
    last: PlacedPoint | None


@dataclass(frozen=True)
class SeriesChart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    y_ticks: list[Tick]
    x_ticks: list[TimeTick]
    lines: list[PlacedSeries]


MAX_MARKERS = 60


def series_geometry(points: list, series: list[Series]) -> SeriesChart:
    """A time series: x by time (not by index: snapshots may be uneven), y from 0 to a round
    ceiling, with 0, half and the ceiling marked (quarters when they are whole numbers)."""
    width, height = 640, 240
    left, right, top, bottom = 52, width - 20, 14, height - 34
    times = [point.taken_at for point in points]
    largest = max((getattr(p, s.key) or 0 for p in points for s in series), default=0)
    ceiling = nice_ceiling(largest)
    parts = 4 if ceiling % 4 == 0 else 2 if ceiling % 2 == 0 else 1
    y_ticks = [
        Tick(ceiling * i // parts, _r(bottom - (bottom - top) * i / parts))
        for i in range(parts + 1)
    ]
    first, last = (times[0], times[-1]) if times else (None, None)
    span = (last - first).total_seconds() if times else 0

    def x_of(moment: datetime) -> float:
        if not span:
            return (left + right) / 2
        return _r(left + (right - left) * (moment - first).total_seconds() / span)

    def y_of(value: float) -> float:
        return _r(bottom - (bottom - top) * (value or 0) / ceiling)

    # The first and the last time carry a label, and the time halfway between them (evenly
    # placed, whatever the points' spacing, so that labels never run into each other).
    x_ticks = []
    label_format = "j M H:i" if span < 3 * 86400 else "j M"
    if times and span:
        middle = first + (last - first) / 2
        for moment, anchor in ((first, "start"), (middle, "middle"), (last, "end")):
            x_ticks.append(TimeTick(moment, x_of(moment), anchor, label_format))
    elif times:
        x_ticks.append(TimeTick(first, x_of(first), "middle", label_format))
    step = max(1, math.ceil(len(points) / MAX_MARKERS))
    lines = []
    for one in series:
        placed = [
            PlacedPoint(
                p.taken_at, getattr(p, one.key) or 0, x_of(p.taken_at), y_of(getattr(p, one.key))
            )
            for p in points
        ]
        markers = placed[::step]
        if placed and markers[-1] is not placed[-1]:
            markers.append(placed[-1])
        lines.append(
            PlacedSeries(
                series=one,
                points=placed,
                markers=markers,
                polyline=" ".join(f"{p.x:.1f},{p.y:.1f}" for p in placed),
                last=placed[-1] if placed else None,
            )
        )
    return SeriesChart(
        width,
        height,
        left,
        right,
        top,
        bottom,
        y_ticks,
        x_ticks,
        lines,
    )


# Tags ----------------------------------------------------------------------------------------


def _labels(chart_id: str, title: str, summary: str) -> dict:
    return {"chart_id": chart_id, "title": title, "summary": summary}


@register.inclusion_tag("engage/dashboard/charts/bars.html")
def bar_chart(rows, chart_id: str, title: str, summary: str = "", scale=None):
    """`{% bar_chart rows "id" title summary scale=1 %}`: horizontal bars, each a link."""
    return {
        "chart": bar_chart_geometry(list(rows), scale=scale),
        **_labels(chart_id, title, summary),
    }


@register.inclusion_tag("engage/dashboard/charts/titled_bars.html")
def titled_bar_chart(rows, chart_id: str, title: str, summary: str = ""):
    """Bars under long labels (ticket titles), each a link."""
    return {"chart": titled_bar_geometry(list(rows)), **_labels(chart_id, title, summary)}


@register.inclusion_tag("engage/dashboard/charts/funnel.html")
def funnel_chart(rows, chart_id: str, title: str, summary: str = ""):
    """The funnel: one step per row, widest first."""
    return {"chart": funnel_geometry(list(rows)), **_labels(chart_id, title, summary)}


@register.inclusion_tag("engage/dashboard/charts/series.html")
def series_chart(points, series, chart_id: str, title: str, summary: str = ""):
    """A time series of `points` (objects with `taken_at` and each series' key)."""
    return {
        "chart": series_geometry(list(points), list(series)),
        **_labels(chart_id, title, summary),
    }
