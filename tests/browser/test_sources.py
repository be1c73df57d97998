"""Listening, as staff and a community manager see it: a feed added on /sources/, polled,
its health shown, its comments arriving in the queue."""

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import work
from tests.test_polling import COMMENTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_add_a_feed_poll_it_and_its_comments_reach_the_queue(
    page: Page, context: BrowserContext, log_in, staff, feed_server, settings, queue, screenshot
):
    settings.ENGAGE_FEED_ALLOWED_HOSTS = ["127.0.0.1"]
    url = feed_server.route("/comments", COMMENTS, content_type="application/atom+xml")
    log_in(context, staff)
    page.goto("/sources/")

    page.get_by_text("Add feed", exact=True).first.click()
    form = page.get_by_role("form", name="Add feed")
    form.get_by_label("Name").fill("Aurora blog comments")
    form.get_by_label("Feed URL").fill(url)
    form.get_by_label("Keywords").fill("aurora")
    form.get_by_role("button", name="Add feed").click()

    row = page.get_by_role("row").filter(has_text="Aurora blog comments")
    expect(row).to_contain_text("Never polled")
    row.get_by_role("button", name="Poll now").click()
    expect(page.get_by_text("Polling “Aurora blog comments” now")).to_be_visible()
    work(queue)  # the worker's part, when the jobs go to Redis
    page.reload()

    row = page.get_by_role("row").filter(has_text="Aurora blog comments")
    expect(row).to_contain_text("2 in the last poll")
    expect(row.locator("[data-source-error]")).to_have_text("—")
    screenshot(page, "sources")
    page.goto("/queue/")
    expect(page.get_by_role("link", name="La nuova miscela di Caffè Aurora")).to_be_visible()
    expect(page.get_by_text("Qualcuno ha provato la ricetta")).to_have_count(0)


def test_a_failing_feed_shows_why_on_the_sources_page(
    page: Page, context: BrowserContext, log_in, staff, manager, feed_server, settings
):
    from engage import tasks
    from engage.services import sources

    settings.ENGAGE_FEED_ALLOWED_HOSTS = []
    feed = sources.add_feed(
        actor=staff, name="Intranet forum", url=feed_server.route("/feed", COMMENTS)
    )
    tasks.poll_feed(feed.pk)
    log_in(context, manager)

    page.goto("/sources/")

    row = page.get_by_role("row").filter(has_text="Intranet forum")
    expect(row).to_contain_text("Failing")
    expect(row.locator("[data-source-error]")).to_contain_text("loopback address")
    expect(row.get_by_role("button", name="Poll now")).to_have_count(0)
