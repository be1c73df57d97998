"""The dashboard's funnel and first-response figures of its preset periods, kept by a job.

Aggregating the conversations of a period costs about 40 ms for each 30,000 of them (the
funnel's medians and the responses' percentiles sort them all): 90 days at a million
conversations is a quarter of a million rows and half a second. The figures job
(tasks.snapshot_figures, every minute) computes the 7, 30 and 90 days up to now over every
channel and person, the scopes the page opens on, into FiguresSnapshot rows; the page shows
the latest when it is at most metrics.SNAPSHOT_AGE old, and says as of when. A channel, a
person or dates of one's own are computed for the view, as the API and the CSV exports
always are.
"""

from datetime import datetime, timedelta

from django.utils import timezone

from engage import metrics
from engage.models import FiguresSnapshot


def take_figures_snapshots(now: datetime | None = None) -> list[FiguresSnapshot]:
    """Compute and record the figures of each preset period up to `now`, and delete that
    period's earlier snapshots (only the latest is read). Running it again records newer
    figures and leaves one snapshot a period. No transaction: a reader sees the old
    snapshot or the new one, and the latest wins."""
    now = now or timezone.now()
    taken = []
    for period, days in metrics.PERIODS.items():
        scope = metrics.Scope(start=now - timedelta(days=days), end=now, period=period)
        snapshot = FiguresSnapshot.objects.create(
            period=period, taken_at=now, **metrics.snapshot_record(scope)
        )
        FiguresSnapshot.objects.filter(period=period, taken_at__lt=now).delete()
        taken.append(snapshot)
    return taken
