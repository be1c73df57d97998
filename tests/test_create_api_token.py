"""manage.py create_api_token: a token shown once, stored as its hash, that the API accepts."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from engage.models import ApiToken
from engage.services import tokens
from tests import factories

pytestmark = pytest.mark.django_db


def create_token(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_prints_a_new_token_alone_on_its_last_line_and_stores_only_its_hash(manager):
    out, err = create_token("manager", "--name", "nightly import")

    raw = out.strip().splitlines()[-1]
    token = ApiToken.objects.get()
    assert raw.startswith(tokens.PREFIX)
    assert token.user == manager
    assert token.name == "nightly import"
    assert token.key_hash == tokens.digest(raw)
    assert raw not in {str(value) for value in ApiToken.objects.values().get().values()}
    assert tokens.authenticate(raw) == manager
    assert err == ""


def test_the_printed_token_authenticates_against_the_api(client, manager, conversation):
    out, _err = create_token("manager")
    raw = out.strip().splitlines()[-1]

    response = client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {raw}"})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["items"]] == [conversation.pk]


def test_each_run_makes_a_different_token(manager):
    first = create_token("manager")[0].strip().splitlines()[-1]
    second = create_token("manager")[0].strip().splitlines()[-1]

    assert first != second
    assert ApiToken.objects.count() == 2


def test_an_unknown_user_is_a_clear_error():
    with pytest.raises(CommandError, match="There is no user “ghost”"):
        create_token("ghost")
    assert not ApiToken.objects.exists()


def test_an_inactive_user_gets_no_token(db):
    factories.user("gone", is_active=False)

    with pytest.raises(CommandError, match="inactive"):
        create_token("gone")
    assert not ApiToken.objects.exists()


def test_a_too_long_name_is_refused(manager):
    with pytest.raises(CommandError, match="at most 100"):
        create_token("manager", "--name", "n" * 101)


def test_a_user_without_a_role_is_warned(outsider):
    out, err = create_token("outsider")

    assert out.strip().splitlines()[-1].startswith(tokens.PREFIX)
    assert "no role" in err
