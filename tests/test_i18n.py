"""The pages speak Italian, and the Italian catalogue is complete, current and compiled."""

import ast
import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from engage.services import conversations as conversation_services

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "it" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%(?:\([a-z_]+\))?[sd]|%%")
ITALIAN = {"HTTP_ACCEPT_LANGUAGE": "it"}


@pytest.fixture(autouse=True)
def back_to_english():
    """LocaleMiddleware leaves the last request's language active in this thread: reset it,
    or the tests that follow would read Italian messages."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


def read_po(path: Path) -> list[dict]:
    """A small .po reader: entries with their flags, msgid(_plural) and msgstr(s)."""
    entries, current, key = [], None, None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        line = line.strip()
        if not line:
            if current is not None:
                entries.append(current)
            current = None
            continue
        if current is None:
            current = {"flags": set(), "msgstr": {}}
        if line.startswith("#,"):
            current["flags"] |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            target = current["msgstr"] if isinstance(key, int) else current
            target[key] += ast.literal_eval(line)
        else:
            name, text = line.split(" ", 1)
            match = re.fullmatch(r"msgstr\[(\d+)\]", name)
            if match or name == "msgstr":
                key = int(match.group(1)) if match else 0
                current["msgstr"][key] = ast.literal_eval(text)
            else:
                key = name
                current[key] = ast.literal_eval(text)
    return entries


def test_queue_is_in_italian(client, manager):
    client.force_login(manager)

    response = client.get(reverse("queue"), headers={"accept-language": "it"})

    body = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="it">' in body
    assert "<h1>Coda</h1>" in body
    assert "Prendi in carico la prossima" in body
    assert "Qualsiasi stato" in body


def test_workflow_refusal_is_in_italian(client, manager, conversation):
    client.force_login(manager)

    response = client.post(
        reverse("conversation_advance", args=[conversation.pk]),
        {"version": conversation.version},
        **ITALIAN,
    )
    page = client.get(response["Location"], **ITALIAN)

    body = page.content.decode()
    assert "Assegna qualcuno prima di passare all&#x27;interazione" in body
    assert "Ascolto" in body
    assert "Discussione" in body


def test_claim_with_nothing_left_says_so_in_italian(client, manager):
    client.force_login(manager)

    response = client.post(reverse("claim_next"), **ITALIAN)
    page = client.get(response["Location"], **ITALIAN)

    assert "Non c&#x27;è più niente da prendere in carico." in page.content.decode()


def test_language_switch_sets_italian(client, manager, conversation):
    conversation_services.assign(conversation.pk, manager, actor=manager)
    client.force_login(manager)

    response = client.post(reverse("set_language"), {"language": "it", "next": reverse("queue")})

    assert response.status_code == 302
    assert "Conversazioni" in client.get(reverse("queue")).content.decode()


def test_catalogue_has_no_untranslated_or_fuzzy_entries():
    entries = read_po(CATALOGUE / "django.po")
    header, messages = entries[0], entries[1:]

    assert header["msgid"] == ""
    assert "Language: it" in header["msgstr"][0]
    assert "fuzzy" not in header["flags"]
    assert len(messages) > 100
    fuzzy = [entry["msgid"] for entry in messages if "fuzzy" in entry["flags"]]
    assert fuzzy == []
    untranslated = [entry["msgid"] for entry in messages if not all(entry["msgstr"].values())]
    assert untranslated == []
    for entry in messages:
        # Every placeholder of the English text must survive, or the page shows a KeyError.
        expected = sorted(set(PLACEHOLDER.findall(entry.get("msgid_plural", entry["msgid"]))))
        for text in entry["msgstr"].values():
            assert sorted(set(PLACEHOLDER.findall(text))) == expected, entry["msgid"]


def test_compiled_catalogue_matches_the_po_file():
    with (CATALOGUE / "django.mo").open("rb") as compiled:
        translations = gettext.GNUTranslations(compiled)

    for entry in read_po(CATALOGUE / "django.po")[1:]:
        if "msgid_plural" in entry:
            # Italian: one form for 1, another for every other number.
            for n, form in [(1, 0), (2, 1)]:
                compiled_text = translations.ngettext(entry["msgid"], entry["msgid_plural"], n)
                assert compiled_text == entry["msgstr"][form], entry["msgid"]
        else:
            assert translations.gettext(entry["msgid"]) == entry["msgstr"][0], entry["msgid"]
