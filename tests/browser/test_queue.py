"""The triage queue, as a community manager uses it: stages, search, claim the next one,
act on many rows at once."""

import re

import pytest
from playwright.sync_api import Page, expect

from engage.services import conversations as conversation_services
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def in_interact(text: str, actor):
    conversation = factories.conversation(text=text)
    conversation_services.assign(conversation.pk, actor, actor=actor)
    return conversation_services.advance(conversation.pk, actor=actor)


def row_link(page: Page, text: str):
    """The link of a queue row, named by the conversation's excerpt."""
    return page.get_by_role("link", name=text)


def outcome_row(outcome, conversation):
    """One line of a bulk action's outcome: "#12 moved to interact" or "#13: why not"."""
    return outcome.get_by_role("listitem").filter(has_text=re.compile(rf"#{conversation.pk}\b"))


def stage_tab(page: Page, stage: str):
    return page.get_by_role("navigation", name="Stages").get_by_role(
        "link", name=re.compile(rf"^{stage}\b")
    )


def test_a_stage_tab_shows_its_count_and_only_that_stage(manager_page: Page, manager):
    factories.conversation(text="The grinder is too loud in the morning")
    in_interact("Where can I buy descaling tablets?", manager)
    page = manager_page
    page.goto("/queue/")
    expect(row_link(page, "The grinder is too loud in the morning")).to_be_visible()
    expect(row_link(page, "Where can I buy descaling tablets?")).to_be_visible()
    expect(stage_tab(page, "Interact")).to_have_text(re.compile(r"Interact\s*1"))

    stage_tab(page, "Interact").click()

    expect(page).to_have_url(re.compile(r"[?&]stage=interact"))
    expect(stage_tab(page, "Interact")).to_have_attribute("aria-current", "page")
    expect(row_link(page, "Where can I buy descaling tablets?")).to_be_visible()
    expect(row_link(page, "The grinder is too loud in the morning")).to_have_count(0)


def test_a_text_search_finds_the_matching_conversations(manager_page: Page):
    factories.conversation(text="My espresso tastes burnt since the update")
    factories.conversation(text="Lovely crema this morning, thank you")
    page = manager_page
    page.goto("/queue/")

    page.get_by_role("searchbox", name="Search").fill("espresso")
    page.get_by_role("button", name="Filter").click()

    expect(page).to_have_url(re.compile(r"[?&]q=espresso"))
    expect(row_link(page, "My espresso tastes burnt since the update")).to_be_visible()
    expect(row_link(page, "Lovely crema this morning, thank you")).to_have_count(0)


def test_claim_next_opens_the_most_urgent_unassigned_conversation(manager_page: Page):
    factories.conversation(text="Just saying hello")
    urgent = factories.conversation(text="The boiler is leaking water!", priority="urgent")
    page = manager_page
    page.goto("/queue/")

    page.get_by_role("button", name="Claim next").click()

    expect(page).to_have_url(re.compile(rf"/conversations/{urgent.pk}/$"))
    expect(
        page.get_by_role("status").filter(has_text=f"You claimed conversation #{urgent.pk}.")
    ).to_be_visible()
    thread = page.get_by_role("region", name="Thread")
    expect(thread.get_by_text("The boiler is leaking water!")).to_be_visible()
    assignment = page.get_by_role("region", name="Assignment and state")
    expect(assignment).to_contain_text(re.compile(r"Assignee\s*manager\b"))


def test_bulk_assign_to_me_reports_the_outcome_of_each_selected_row(manager_page: Page):
    first, second, untouched = (factories.conversation() for _ in range(3))
    page = manager_page
    page.goto("/queue/")

    page.get_by_label(f"Select conversation #{first.pk}").check()
    page.get_by_label(f"Select conversation #{second.pk}").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    page.get_by_role("button", name="Assign to me", exact=True).click()

    outcome = page.get_by_role("status").filter(has_text="Assign to me: 2 done, 0 refused")
    expect(outcome).to_be_visible()
    for conversation in (first, second):
        expect(outcome_row(outcome, conversation)).to_have_text(
            f"#{conversation.pk} assigned to manager"
        )
    expect(outcome).not_to_contain_text(re.compile(rf"#{untouched.pk}\b"))
    expect(
        page.get_by_role("row").filter(has_text=re.compile(rf"#{untouched.pk}\b"))
    ).to_contain_text("nobody")


def test_bulk_assign_to_a_chosen_community_manager(manager_page: Page, other_manager):
    conversation = factories.conversation()
    page = manager_page
    page.goto("/queue/")

    page.get_by_label(f"Select conversation #{conversation.pk}").check()
    page.get_by_text("More actions").click()
    bulk = page.get_by_role("form", name="Act on the selected conversations")
    # The page is rendered by the server: count now rather than wait for the label to appear.
    assert bulk.get_by_label("Community manager").count() == 1
    bulk.get_by_label("Community manager").select_option("other")
    bulk.get_by_role("button", name="Assign", exact=True).click()

    outcome = page.get_by_role("status").filter(has_text="Assign: 1 done, 0 refused")
    expect(outcome).to_contain_text(f"#{conversation.pk} assigned to other")


def test_bulk_advance_says_why_a_row_was_refused_and_does_the_others(
    manager_page: Page, manager, screenshot
):
    assigned = factories.conversation()
    conversation_services.assign(assigned.pk, manager, actor=manager)
    unassigned = factories.conversation()
    page = manager_page
    page.goto("/queue/")

    page.get_by_label(f"Select conversation #{assigned.pk}").check()
    page.get_by_label(f"Select conversation #{unassigned.pk}").check()
    page.get_by_role("button", name="Advance", exact=True).click()

    outcome = page.get_by_role("alert").filter(has_text="Advance: 1 done, 1 refused")
    expect(outcome).to_be_visible()
    expect(outcome_row(outcome, assigned)).to_have_text(f"#{assigned.pk} moved to interact")
    expect(outcome_row(outcome, unassigned)).to_have_text(
        f"#{unassigned.pk}: Assign someone before moving to interact: "
        "this conversation has no assignee."
    )
    screenshot(page, "queue-bulk-outcome", full_page=False)
