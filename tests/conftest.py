import pytest
from django.conf import settings
from django.utils import translation

from engage.choices import Role
from tests import factories


@pytest.fixture
def manager(db):
    return factories.user("manager", role=Role.COMMUNITY_MANAGER)


@pytest.fixture
def other_manager(db):
    return factories.user("other", role=Role.COMMUNITY_MANAGER)


@pytest.fixture
def product(db):
    return factories.user("product", role=Role.PRODUCT_TEAM)


@pytest.fixture
def outsider(db):
    """A logged-in user with no role: sees nothing."""
    return factories.user("outsider", role=None)


@pytest.fixture
def staff(db):
    return factories.user("admin", role=None, is_staff=True, is_superuser=True)


@pytest.fixture
def conversation(db):
    return factories.conversation()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Real hashing costs ~0.3 s a user; tests create many users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _english_by_default():
    """LocaleMiddleware leaves the last request's language active in the test thread."""
    yield
    translation.activate(settings.LANGUAGE_CODE)
