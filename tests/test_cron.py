"""The scheduler's configuration: what `manage.py rqcron engage.cron` runs, and how often."""

from django_rq.cron import DjangoCronScheduler

from engage import tasks


def test_the_scheduler_polls_feeds_sweeps_enrichment_and_checks_slas_every_minute():
    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("engage.cron")

    jobs = {job.func: job for job in scheduler.get_jobs()}

    assert set(jobs) == {tasks.poll_due_feeds, tasks.sweep_unenriched, tasks.check_slas}
    assert {job.interval for job in jobs.values()} == {60}
    assert {job.queue_name for job in jobs.values()} == {"default"}
