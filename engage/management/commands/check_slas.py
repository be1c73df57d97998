"""manage.py check_slas [--sweep]: run the SLA job once, here, and say what it changed.

The scheduler (`manage.py rqcron engage.cron`) queues this job every minute where Redis
runs. The embedded default (no REDIS_URL) has no scheduler: run this command from cron,
or in a loop beside the server (`while sleep 60; do manage.py check_slas; done`).
"""

from django.core.management.base import BaseCommand

from engage.services import sla


class Command(BaseCommand):
    help = "Flag conversations about to breach or past their first-response target, once."

    def add_arguments(self, parser):
        parser.add_argument(
            "--sweep",
            action="store_true",
            help="Also look at due times older than a day (a large old backlog, at once).",
        )

    def handle(self, *args, sweep: bool, **options):
        result = sla.check(sweep=True if sweep else None)
        self.stdout.write(
            f"{result.at_risk} about to breach, {result.breached} breached, "
            f"{result.cleared} back within target, {result.notified} notice(s); "
            f"backlog snapshot {'taken' if result.snapshot else 'already taken this hour'}."
        )
