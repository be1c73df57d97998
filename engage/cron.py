"""The recurring jobs, for `python manage.py rqcron engage.cron` (one such process per
deployment; see the README's "Workers" section)."""

from rq import cron

from engage import tasks

cron.register(tasks.poll_due_feeds, queue_name="default", interval=60)
cron.register(tasks.sweep_unenriched, queue_name="default", interval=60)
cron.register(tasks.check_slas, queue_name="default", interval=60)
cron.register(tasks.snapshot_figures, queue_name="default", interval=60)
cron.register(tasks.sweep_notices, queue_name="default", interval=300)
