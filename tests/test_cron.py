"""The scheduler's configuration: what `manage.py rqcron engage.cron` runs, and how often."""

from django_rq.cron import DjangoCronScheduler

from engage import tasks


def test_the_scheduler_polls_feeds_sweeps_enrichment_and_checks_slas_every_minute():
    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("engage.cron")

    jobs = {job.func: job for job in scheduler.get_jobs()}

    assert {func: job.interval for func, job in jobs.items()} == {
        tasks.poll_due_feeds: 60,
        tasks.sweep_unenriched: 60,
        tasks.check_slas: 60,
        tasks.snapshot_figures: 60,  # the dashboard's preset periods
        tasks.sweep_notices: 300,  # notices Redis missed
    }
    assert {job.queue_name for job in jobs.values()} == {"default"}
