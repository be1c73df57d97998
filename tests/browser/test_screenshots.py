"""The pages a community manager lives in, with the demo's believable data, photographed.

The pictures (in $ENGAGE_SCREENSHOTS) are for a person to look at: is this a page one
would enjoy working in all day? The assertions only check that there is something to see.
"""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from playwright.sync_api import Page, expect

from engage.choices import Role
from engage.models import Conversation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_manager(db):
    # The groups come from a migration, and transactional tests flush them; demo expects them.
    for role in Role.values:
        Group.objects.get_or_create(name=role)
    call_command("demo", password="demo-password", stdout=StringIO())
    return get_user_model().objects.get(username="manager")


def test_the_demo_queue_and_a_busy_conversation(new_context, log_in, demo_manager, screenshot):
    context = new_context(viewport={"width": 1440, "height": 900})
    log_in(context, demo_manager)
    page: Page = context.new_page()

    page.goto("/queue/")
    expect(
        page.get_by_role("link", name="Next page").or_(page.get_by_role("table"))
    ).to_be_visible()
    screenshot(page, "demo-queue-first-screen", full_page=False)
    screenshot(page, "demo-queue")

    busiest = Conversation.objects.filter(assignee=demo_manager).order_by("-version").first()
    page.goto(f"/conversations/{busiest.pk}/")
    expect(page.get_by_role("heading", name=f"Conversation #{busiest.pk}")).to_be_visible()
    screenshot(page, "demo-conversation")
