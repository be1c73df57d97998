"""One conversation through the cycle, as a community manager works it in the page."""

import re

import pytest
from playwright.sync_api import Page, expect

from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def current_step(page: Page):
    return page.locator("[aria-current='step']")


def step(page: Page, name: str):
    return page.get_by_role("listitem").filter(has_text=re.compile(rf"^\s*\d\s+{name}\b"))


def expect_message(page: Page, text: str, *, role: str = "status") -> None:
    """The message the page shows after an action: a status, or an alert when refused."""
    expect(page.get_by_role(role).filter(has_text=text)).to_be_visible()


def move_to(page: Page, stage: str) -> None:
    page.get_by_role("button", name=f"Move to {stage.lower()}").click()
    expect_message(page, f"Moved to {stage.lower()}.")
    expect(current_step(page)).to_contain_text(stage)


def open_in_two_browsers(new_context, log_in, conversation, *users) -> dict:
    """Each user in a browser of their own, on the conversation's page."""
    pages = {}
    for user in users:
        context = new_context()
        log_in(context, user)
        pages[user] = context.new_page()
        pages[user].goto(f"/conversations/{conversation.pk}/")
    return pages


def in_react(actor):
    conversation = factories.conversation(text="The milk frother stopped working")
    conversation_services.assign(conversation.pk, actor, actor=actor)
    conversation_services.advance(conversation.pk, actor=actor)
    conversation_services.log_reply(conversation.pk, actor=actor, text="Sorry! Checking now.")
    return conversation_services.advance(conversation.pk, actor=actor)


def test_a_manager_takes_a_conversation_through_all_four_steps(manager_page: Page, screenshot):
    conversation = factories.conversation(text="Does the Aurora Mini fit tall cups?")
    page = manager_page
    page.goto(f"/conversations/{conversation.pk}/")
    expect(current_step(page)).to_contain_text("Listen")

    page.get_by_role("button", name="Assign to me").click()
    expect_message(page, "Assigned to manager.")
    move_to(page, "Interact")
    expect(step(page, "Listen")).to_have_class(re.compile(r"\bdone\b"))

    thread = page.get_by_role("region", name="Thread")
    thread.get_by_label(re.compile(r"^Reply")).fill("It fits cups up to 8 cm tall.")
    thread.get_by_role("button", name="Log reply").click()
    expect_message(page, "Reply logged.")
    expect(thread.get_by_role("listitem").filter(has_text="Our reply")).to_contain_text(
        "It fits cups up to 8 cm tall."
    )
    move_to(page, "React")

    feedback = page.get_by_role("region", name="Product feedback")
    feedback.get_by_text("No product change needed").click()
    feedback.get_by_label("Why no product change is needed").fill("The answer settled it.")
    feedback.get_by_role("button", name="Record").click()
    expect_message(page, "Recorded that no product change is needed in this cycle.")
    # The reaction moves the cycle on by itself.
    expect_message(page, "Moved to sell.")
    expect(current_step(page)).to_contain_text("Sell")

    for done in ("Listen", "Interact", "React"):
        expect(step(page, done)).to_have_class(re.compile(r"\bdone\b"))
    expect(page.get_by_text("Sell is the last step")).to_be_visible()
    screenshot(page, "conversation")


def test_a_ticket_created_from_the_page_lets_the_conversation_reach_sell(
    manager_page: Page, manager
):
    conversation = in_react(manager)
    page = manager_page
    page.goto(f"/conversations/{conversation.pk}/")
    expect(current_step(page)).to_contain_text("React")

    feedback = page.get_by_role("region", name="Product feedback")
    feedback.get_by_text("Create a ticket from this conversation").click()
    feedback.get_by_label("Title").fill("Milk frother stops after a month")
    feedback.get_by_role("button", name="Create ticket").click()

    expect_message(page, "Ticket “Milk frother stops after a month” created")
    expect_message(page, "Moved to sell.")
    expect(feedback).to_contain_text("Milk frother stops after a month")
    expect(current_step(page)).to_contain_text("Sell")


def test_a_manager_finds_a_ticket_as_they_type_and_links_it_with_one_click(
    manager_page: Page, manager
):
    frother = feedback_services.create_ticket(actor=manager, title="Milk frother stops working")
    feedback_services.create_ticket(actor=manager, title="Quieter grinder")
    conversation = in_react(manager)
    page = manager_page
    page.goto(f"/conversations/{conversation.pk}/")
    feedback = page.get_by_role("region", name="Product feedback")

    # Suggested at once: the conversation is about the milk frother.
    similar = feedback.locator(".similar-tickets")
    expect(similar).to_contain_text(f"#{frother.pk} Milk frother stops working")
    expect(similar).not_to_contain_text("Quieter grinder")
    expect(similar.get_by_label("Quote")).to_have_value("The milk frother stopped working")

    # Searching lists the matches in place (htmx), without leaving the page.
    feedback.get_by_text("Link to an existing ticket").click()
    feedback.get_by_label("Search tickets").fill("grinder")
    results = feedback.locator("#ticket-results")
    expect(results).to_contain_text("Quieter grinder")
    expect(results).not_to_contain_text("Milk frother")
    assert "ticket_q" not in page.url

    similar.get_by_label("Quote").fill("stopped working after a month")
    similar.get_by_role("button", name="Link with this quote").click()
    expect_message(page, "Linked to ticket “Milk frother stops working”.")
    expect_message(page, "Moved to sell.")
    expect(feedback.locator("ul.links")).to_contain_text("stopped working after a month")


def test_moving_on_without_an_assignee_is_refused_with_the_reason(manager_page: Page):
    conversation = factories.conversation()
    page = manager_page
    page.goto(f"/conversations/{conversation.pk}/")

    page.get_by_role("button", name="Move to interact").click()

    expect_message(
        page,
        "Assign someone before moving to interact: this conversation has no assignee.",
        role="alert",
    )
    expect(current_step(page)).to_contain_text("Listen")


def test_a_change_from_a_stale_page_is_refused_and_the_new_state_shown(
    new_context, log_in, manager, other_manager
):
    conversation = factories.conversation()
    pages = open_in_two_browsers(new_context, log_in, conversation, manager, other_manager)

    pages[other_manager].get_by_role("button", name="Assign to me").click()
    expect_message(pages[other_manager], "Assigned to other.")

    mine = pages[manager]
    mine.get_by_role("button", name="Assign to me").click()

    expect_message(mine, "Someone else changed this conversation since you opened it", role="alert")
    assignment = mine.get_by_role("region", name="Assignment and state")
    expect(assignment).to_contain_text(re.compile(r"Assignee\s*other\b"))


def test_the_page_shows_who_else_is_here_and_that_they_changed_it(
    new_context, log_in, manager, other_manager
):
    conversation = factories.conversation()
    pages = open_in_two_browsers(new_context, log_in, conversation, manager, other_manager)
    mine, theirs = pages[manager], pages[other_manager]

    def heartbeat():
        # The same request the page sends every 15 s (and when its tab becomes visible).
        mine.evaluate("document.body.dispatchEvent(new CustomEvent('engage:presence'))")

    heartbeat()
    expect(mine.locator("#presence")).to_contain_text("Also here now:")
    expect(mine.locator("#presence")).to_contain_text("other")

    theirs.get_by_role("button", name="Assign to me").click()
    expect_message(theirs, "Assigned to other.")
    heartbeat()
    expect(mine.get_by_role("alert")).to_contain_text(
        "other changed this conversation since you opened it."
    )
