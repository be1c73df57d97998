"""Logging in through the real form, and the language the browser asks for."""

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_logs_in_through_the_form_and_lands_on_the_queue(page: Page, manager):
    page.goto("/queue/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/queue/$"))

    page.get_by_label("Username").fill("manager")
    page.get_by_label("Password").fill("pw-manager")
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(re.compile(r"/queue/$"))
    expect(page.get_by_role("heading", name="Queue", level=1)).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text("manager")


def test_a_wrong_password_is_refused_on_the_form(page: Page, manager):
    page.goto("/accounts/login/")

    page.get_by_label("Username").fill("manager")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()

    expect(
        page.get_by_role("alert").filter(has_text="correct username and password")
    ).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def test_an_italian_browser_gets_the_italian_pages(new_context, log_in, manager):
    context = new_context(locale="it-IT")
    log_in(context, manager)
    page = context.new_page()

    page.goto("/queue/")

    expect(page.locator("html")).to_have_attribute("lang", "it")
    expect(page.get_by_role("heading", name="Coda", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Prendi in carico la prossima")).to_be_visible()
