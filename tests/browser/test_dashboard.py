"""The dashboard as a manager sees it: the funnel drawn by the server, and a step of the funnel
followed to the queue of exactly its conversations."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from engage.services import sla
from tests.test_dashboard import build

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_follows_the_interact_step_of_the_funnel_to_its_conversations(
    manager_page: Page, manager, other_manager, product, screenshot
):
    world = build(manager, other_manager, product)
    for hours in (30, 20, 12, 6, 3, 0):  # the hourly job's backlog snapshots
        sla.take_snapshot(timezone.now() - timedelta(hours=hours))
    page = manager_page
    page.set_viewport_size({"width": 1440, "height": 900})

    page.goto("/dashboard/")

    funnel = page.get_by_role("group", name="Funnel of the conversations received in the period")
    expect(funnel).to_be_visible()
    for stage, count in (("Listen", "6"), ("Interact", "3"), ("React", "1"), ("Sell", "1")):
        step = funnel.get_by_role("link", name=re.compile(f"^{stage}:"))
        expect(step).to_contain_text(stage)
        expect(step).to_contain_text(count)
    expect(funnel).to_contain_text("50% of Listen")
    expect(page.get_by_role("heading", name="Responsiveness")).to_be_visible()
    expect(page.get_by_role("heading", name="Workload")).to_be_visible()
    expect(page.get_by_role("heading", name="Feedback", exact=True)).to_be_visible()
    screenshot(page, "dashboard")

    funnel.get_by_role("link", name=re.compile("^Interact:")).click()

    expect(page).to_have_url(re.compile(r"/queue/\?.*reached=interact"))
    rows = page.locator("[data-row]")
    expect(rows).to_have_count(3)
    shown = {int(pk) for pk in rows.evaluate_all("rows => rows.map(r => r.dataset.rowId)")}
    assert shown == {world.sold.pk, world.talking.pk, world.restarted.pk}
    expect(page.get_by_label("Reached")).to_have_value("interact")
    screenshot(page, "dashboard-to-queue", full_page=False)
