"""Every address of the project refuses whoever may not use it.

The walk enumerates every URL pattern the project serves (the admin and django-rq's
dashboard in it, the API's routes, accounts, i18n, engage's pages), builds a concrete URL
for each from objects made below, and sends it every method it allows: GET and POST, any
other method a 405 names in its Allow header, and for the API each declared method.

- Anonymous: pages redirect to the login page, the admin to the admin's login, the API
  answers 401.
- Logged in without the role: pages and the API answer 403, the admin redirects to its
  login (every non-staff user).
- Who may use an address reaches it with GET: the refusals are about roles, and the ids
  name real objects.

Only the patterns in PUBLIC are left out, each with its reason. Any other pattern, including
one added later and classified nowhere, must refuse anonymous users and outsiders; one that
cannot be exercised (a parameter without a value, every method answered 405) is a failure,
never skipped. Static files are served by WhiteNoise's middleware, not by a URL pattern.
"""

import inspect
import json
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.contrib.contenttypes.models import ContentType
from django.http import HttpResponse
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, path, re_path, resolve, reverse
from django.urls import converters as url_converters
from django.utils.regex_helper import normalize
from django.views.generic import RedirectView
from django_rq import stats_views
from ninja.operation import PathView

from engage.models import Conversation, Notification, RoutingRule, Team
from engage.services import availability as availability_services
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from engage.services import saved_replies as saved_reply_services
from engage.services import saved_views as saved_view_services
from engage.services import tags as tag_services
from engage.services import targets as target_services
from engage.services import tokens

pytestmark = pytest.mark.django_db

# Patterns anyone may use, by route, with the reason. Nothing else is public.
PUBLIC = {
    "accounts/login/": "the login page",
    "admin/login/": "the admin's login page",
    "accounts/logout/": "logging out (POST) asks for no login",
    "admin/logout/": "the admin's logging out",
    "accounts/password_reset/": "the password reset flow is for people who cannot log in",
    "accounts/password_reset/done/": "the password reset flow",
    "accounts/reset/<uidb64>/<token>/": "the password reset flow (the token is the key)",
    "accounts/reset/done/": "the password reset flow",
    "i18n/setlang/": "choosing the language, on the login page too",
    "healthz": "load balancers check it without credentials; it shows no data",
    "api/v1/openapi.json": "the API's schema: documentation, no data (tests/test_api.py)",
    "api/v1/docs": "the API's documentation page, no data",
    "api/v1/": "the API's JSON 404 for an address that does not exist",
    "api/v1/<path:unknown>": "the API's JSON 404 for an address that does not exist",
}

# Who may use what. Anonymous users may use nothing outside PUBLIC.
LOGGED_IN = frozenset({"outsider", "product", "manager", "staff"})
ROLES = frozenset({"product", "manager", "staff"})  # engage.permissions.can_view
MANAGERS = frozenset({"manager", "staff"})  # can_work
PRODUCT = frozenset({"product", "staff"})  # can_manage_tickets
STAFF = frozenset({"staff"})
# Any page or API operation not named here is for ROLES; the admin is for STAFF.
DEFAULT = ROLES

# engage's pages by URL name: who may use them, for every method or per method.
PAGES = {
    "claim_next": MANAGERS,
    "queue_bulk": MANAGERS,
    **{
        f"conversation_{action}": MANAGERS
        for action in [
            "advance",
            "restart",
            "assign",
            "reply",
            "note",
            "no_change",
            "create_ticket",
            "link_ticket",
            "ticket_search",
            "priority",
            "state",
            "tags",
            "merge",
        ]
    },
    **{f"feedback_{action}": PRODUCT for action in ["status", "owner", "edit", "merge"]},
    "saved_reply_create": MANAGERS,
    "saved_reply_edit": MANAGERS,
    "saved_reply_delete": MANAGERS,
    "source_add": STAFF,
    "source_edit": STAFF,
    **{f"source_{action}": STAFF for action in ["pause", "resume", "remove", "restore", "poll"]},
    "availability": MANAGERS,
    "targets": {"GET": ROLES, "POST": STAFF},
    # Changing one's own password is for anyone logged in, a role or not.
    "password_change": LOGGED_IN,
    "password_change_done": LOGGED_IN,
}

# API operations by function name (engage/api.py).
API = {
    "create_conversation": MANAGERS,
    "ingest": MANAGERS,
    "advance": MANAGERS,
    "restart": MANAGERS,
    "assign": MANAGERS,
    "claim": MANAGERS,
    "log_reply": MANAGERS,
    "add_note": MANAGERS,
    "record_no_change": MANAGERS,
    "set_priority": MANAGERS,
    "set_state": MANAGERS,
    "add_source": STAFF,
    "update_source": STAFF,
    "remove_source": STAFF,
    "restore_source": STAFF,
    "poll_source": STAFF,
    "create_ticket": ROLES,  # community managers and the product team both open tickets
    "link_evidence": ROLES,
    "update_ticket": PRODUCT,
    "merge_tickets": PRODUCT,
}

# A valid body per API operation, so that a refusal comes from the role and not from a 422.
# An operation missing here is sent {}.
API_BODIES = {
    "create_conversation": {
        "source": "access-test",
        "external_id": "access-1",
        "channel": "twitter",
        "author": {"handle": "@walker", "name": "Walker"},
        "text": "Is the export ready?",
    },
    "ingest": {"items": [{"source": "s", "external_id": "x"}]},
    "restart": {"reason": "negative feedback"},
    "assign": {"assignee": None},
    "log_reply": {"text": "Thanks!"},
    "add_note": {"text": "A note"},
    "record_no_change": {"reason": "Nothing to change"},
    "set_priority": {"priority": "high"},
    "set_state": {"state": "closed"},
    "add_source": {"name": "Feed", "url": "https://example.com/feed.xml"},
    "create_ticket": {"title": "A ticket"},
    "link_evidence": {"conversation": 1, "quote": "a quote"},
    "merge_tickets": {"into": 1},
}

# django-rq's statistics as JSON take a token instead of a session: 401 without one.
TOKEN_VIEWS = {stats_views.stats_json}

# Staff are not sent to these to read them (refusals are still checked there):
# - parameters world() fills with names of nothing: django-rq raises (a 500) for them;
MADE_UP = {"job_id", "result_id", "key", "scheduler_name", "cron_job_name", "token"}
# - django-rq's page for rq-scheduler, a package engage does not use (rqcron schedules).
# (django-rq's "Dashboard" is a model without a table: its object pages say there is no such
# object, engage.admin.JobQueuesAdmin; they are read like every other admin page.)
NOT_READ = ("admin/django_rq/dashboard/schedulers/",)

KNOWN_CONVERTERS = (
    url_converters.IntConverter,
    url_converters.StringConverter,
    url_converters.SlugConverter,
    url_converters.PathConverter,
    url_converters.UUIDConverter,
)


class Unbuildable(Exception):
    """A pattern this walk cannot turn into a URL: it must be taught, never skipped."""


@dataclass(frozen=True)
class Endpoint:
    route: str
    name: str | None
    chain: tuple
    callback: object

    @property
    def kind(self) -> str:
        if self.callback in TOKEN_VIEWS:
            return "token"
        if self.route.startswith("admin/"):
            return "admin"
        if self.route.startswith("api/"):
            return "api"
        return "page"

    @property
    def operations(self) -> list[tuple[str, str]]:
        """The API's (method, operation name) pairs at this route."""
        if not inspect.isfunction(self.callback):
            return []
        path_view = inspect.getclosurevars(self.callback).nonlocals.get("self")
        if not isinstance(path_view, PathView):
            return []
        return [(m, op.view_func.__name__) for op in path_view.operations for m in op.methods]

    def allowed(self, method: str, operation: str | None) -> frozenset:
        if self.kind in ("admin", "token"):
            return STAFF
        if self.kind == "api":
            return API.get(operation, DEFAULT)
        rule = PAGES.get(self.name, DEFAULT)
        return rule.get(method, DEFAULT) if isinstance(rule, dict) else rule


def walk(urlconf=None) -> list[Endpoint]:
    """Every URL pattern under the root, once per route (the API declares a route once per
    operation; the operations are read from the route's view)."""
    found: dict[str, Endpoint] = {}

    def visit(resolver: URLResolver, chain: tuple, namespace: str) -> None:
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                visit(pattern, (*chain, pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                links = (*chain, pattern.pattern)
                # Joined as Django's resolver joins them (ResolverMatch.route).
                route = str(links[0]) + "".join(str(link).removeprefix("^") for link in links[1:])
                name = f"{namespace}{pattern.name}" if pattern.name else None
                found.setdefault(route, Endpoint(route, name, links, pattern.callback))
            else:
                raise Unbuildable(f"a pattern of an unknown kind: {pattern!r}")

    visit(get_resolver(urlconf), (), "")
    return list(found.values())


def params(endpoint: Endpoint) -> set[str]:
    return {name for link in endpoint.chain for name in filled_case(link)[1]}


def filled_case(link) -> tuple[str, list[str]]:
    """The reading of a pattern that fills the most parameters: optional groups too."""
    return max(normalize(link.regex.pattern), key=lambda case: len(case[1]))


def build(endpoint: Endpoint, values: dict, urlconf=None) -> str:
    """The endpoint's URL, each parameter filled from `values` through its converter; it must
    resolve back to the same pattern."""
    url = "/"
    for link in endpoint.chain:
        template, names = filled_case(link)
        filled = {}
        for param in names:
            if param not in values:
                raise Unbuildable(f"no value for the parameter {param!r}: add one to world()")
            converter = getattr(link, "converters", {}).get(param)
            if converter is not None and not isinstance(converter, KNOWN_CONVERTERS):
                raise Unbuildable(f"an unknown converter {type(converter).__name__} for {param!r}")
            value = values[param]
            filled[param] = converter.to_url(value) if converter is not None else str(value)
        url += template % filled
    match = resolve(urlparse(url).path, urlconf)
    if match.route != endpoint.route:
        raise Unbuildable(f"{url} resolves to {match.route!r} instead")
    return url


@dataclass
class World:
    """Real objects for the URLs' parameters, and a client per role."""

    clients: dict
    by_prefix: dict  # the first segment of a route: the pk its <pk> names
    admin_objects: dict  # "app/model": a pk of one object
    extra: dict  # parameters named alike everywhere

    def values(self, endpoint: Endpoint) -> dict:
        values = dict(self.extra)
        parts = endpoint.route.split("/")
        if parts[0] in self.by_prefix:
            values["pk"] = self.by_prefix[parts[0]]
        model = "/".join(parts[1:3])  # admin/<app>/<model>/...
        if endpoint.kind == "admin" and model in self.admin_objects:
            values["object_id"] = self.admin_objects[model]
        return values


def logged_in_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(manager, other_manager, product, outsider, staff, conversation) -> World:
    """One object of every kind a URL can name, built through the services."""
    ticket = feedback_services.create_ticket(actor=product, title="Export to CSV")
    conversation_services.assign(conversation.pk, manager, actor=manager)
    conversation_services.advance(conversation.pk, actor=manager)
    conversation_services.log_reply(conversation.pk, actor=manager, text="Thanks!")
    conversation_services.advance(conversation.pk, actor=manager)
    feedback_services.link_evidence(ticket.pk, conversation.pk, actor=manager, quote="CSV")
    # A mention is a notification for other_manager.
    conversation_services.add_note(conversation.pk, actor=manager, text="@other have a look")
    tag_services.change_tags(conversation.pk, actor=manager, add=["export"])
    reply = saved_reply_services.create_saved_reply(
        actor=manager, title="Thanks", language="en", text="Thanks, {name}!"
    )
    view = saved_view_services.save_view(actor=manager, name="Mine", query="assignee=me")
    availability_services.set_available(manager, available=True)
    target_services.set_target(1, actor=staff, minutes=90)
    tokens.create_token(manager, name="access walk")
    # Teams and routing rules are made in the admin only: no service writes them.
    team = Team.objects.create(name="Desk")
    RoutingRule.objects.create(name="Italian", language="it", team=team)
    notification = Notification.objects.get(user=other_manager)
    admin_objects = {}
    for model in admin.site._registry:
        label = f"{model._meta.app_label}/{model._meta.model_name}"
        if not model._meta.managed:  # django-rq's dashboard: a model without a table
            admin_objects[label] = 1
            continue
        first = model._default_manager.order_by("pk").first()
        assert first is not None, f"no {label} for the admin's URLs: make one in world()"
        admin_objects[label] = first.pk
    return World(
        clients={
            "anonymous": Client(),
            "outsider": logged_in_client(outsider),
            "product": logged_in_client(product),
            "manager": logged_in_client(manager),
            "staff": logged_in_client(staff),
        },
        by_prefix={
            "conversations": conversation.pk,
            "feedback": ticket.pk,
            "saved-replies": reply.pk,
            "queue": view.pk,
            "notifications": notification.pk,
            "sources": conversation.source_id,
        },
        admin_objects=admin_objects,
        extra={
            "conversation_id": conversation.pk,
            "ticket_id": ticket.pk,
            "source_id": conversation.source_id,
            "table": "funnel",
            # The admin's user password page and its "view on site" redirect.
            "id": staff.pk,
            "content_type_id": ContentType.objects.get_for_model(Conversation).pk,
            "object_id": conversation.pk,
            "app_label": "engage",
            "url": "no-such-page/",
            # django-rq's dashboard: its jobs, workers and schedulers live in Redis, not in
            # the database, and it refuses non-staff before it looks any of them up. These
            # names are made up (MADE_UP): staff are not sent there.
            "queue_index": 0,
            "scheduler_index": 0,
            "connection_index": 0,
            "job_id": "no-such-job",
            "result_id": "no-such-result",
            "key": "no-such-worker",
            "scheduler_name": "no-such-scheduler",
            "cron_job_name": "no-such-cron-job",
            "token": "nottoken",
        },
    )


def send(client: Client, endpoint: Endpoint, url: str, method: str, operation: str | None):
    if endpoint.kind == "api":
        body = json.dumps(API_BODIES.get(operation, {}))
        return client.generic(method, url, body, content_type="application/json")
    if method == "GET":
        return client.get(url)
    if method == "POST":
        return client.post(url, {})
    return client.generic(method, url)


def redirects_to(response, target: str) -> bool:
    return response.status_code in (301, 302, 303) and (
        urlparse(response["Location"]).path == urlparse(target).path
    )


def is_refusal(endpoint: Endpoint, who: str, response, client: Client) -> bool:
    redirect_only = getattr(endpoint.callback, "view_class", None) is RedirectView
    if redirect_only and not is_refusal_of(endpoint, who, response):
        # Only a redirect (the admin's old object URLs): refused if where it leads is.
        response = client.get(response["Location"])
    return is_refusal_of(endpoint, who, response)


def is_refusal_of(endpoint: Endpoint, who: str, response) -> bool:
    if endpoint.kind == "api":
        return response.status_code == (401 if who == "anonymous" else 403)
    if endpoint.kind == "token":
        return response.status_code == 401
    if endpoint.kind == "admin":
        return redirects_to(response, reverse("admin:login"))
    if who == "anonymous":
        return redirects_to(response, resolve_url("login"))
    return response.status_code == 403


def requests(endpoint: Endpoint) -> list[tuple[str, str | None]]:
    """The (method, API operation) pairs to send first; pages and the admin get GET and POST,
    then whatever a 405 says they allow."""
    if endpoint.kind == "api":
        return endpoint.operations
    return [("GET", None), ("POST", None)]


def refusal_problems(who: str, world: World, urlconf=None) -> list[str]:
    """What `who` could use among what they must be refused."""
    client = world.clients[who]
    problems = []
    for endpoint in walk(urlconf):
        if endpoint.route in PUBLIC:
            continue
        try:
            url = build(endpoint, world.values(endpoint), urlconf)
            pending = requests(endpoint)
            if not pending:
                raise Unbuildable("no method to send")
        except Unbuildable as error:
            problems.append(f"{endpoint.route}: could not be exercised: {error}")
            continue
        sent, answered = set(), False
        while pending:
            method, operation = pending.pop(0)
            sent.add(method)
            if who in endpoint.allowed(method, operation):
                answered = True  # theirs to use: not a refusal to check
                continue
            response = send(client, endpoint, url, method, operation)
            if response.status_code == 405:
                allow = [m.strip() for m in response.get("Allow", "").split(",") if m.strip()]
                pending += [(m, None) for m in allow if m not in sent | {"HEAD", "OPTIONS"}]
                sent.update(allow)
                continue
            answered = True
            if not is_refusal(endpoint, who, response, client):
                problems.append(
                    f"{method} {url} ({endpoint.route}) answered {response.status_code} "
                    f"to {who}, who must be refused"
                )
        if not answered:
            problems.append(f"{endpoint.route}: could not be exercised: every method was 405")
    return problems


def reach_problems(who: str, world: World) -> list[str]:
    """What `who` may read but cannot, or that names no real object (GET only: no writes)."""
    client = world.clients[who]
    client.raise_request_exception = False  # a crash is reported with the others
    problems = []
    for endpoint in walk():
        if endpoint.route in PUBLIC:
            continue
        if params(endpoint) & MADE_UP or endpoint.route.startswith(NOT_READ):
            continue
        url = build(endpoint, world.values(endpoint))
        gets = [(m, op) for m, op in requests(endpoint) if m == "GET"]
        for method, operation in gets:
            if who not in endpoint.allowed(method, operation):
                continue
            response = send(client, endpoint, url, method, operation)
            if response.status_code == 405:
                continue  # a POST-only address
            if endpoint.kind == "admin":
                # The admin answers 403 where no one may add or delete (the history) and 404
                # for what does not exist (its catch-all): keeping out is sending to its login.
                failed = redirects_to(response, reverse("admin:login"))
            else:
                failed = response.status_code in (401, 403, 404) or is_refusal(
                    endpoint, "anonymous", response, client
                )
            if failed or response.status_code >= 500:
                problems.append(f"GET {url} ({endpoint.route}) answered {response.status_code}")
    return problems


def test_anonymous_users_are_refused_everywhere_but_the_public_patterns(world):
    problems = refusal_problems("anonymous", world)

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("who", ["outsider", "product", "manager"])
def test_each_role_is_refused_what_it_may_not_do(world, who):
    problems = refusal_problems(who, world)

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("who", ["outsider", "product", "manager", "staff"])
def test_each_role_reaches_what_it_may_read(world, who):
    problems = reach_problems(who, world)

    assert not problems, "\n".join(problems)


def test_the_walk_covers_the_whole_project():
    routes = {endpoint.route for endpoint in walk()}
    kinds = {endpoint.kind for endpoint in walk()}

    assert kinds == {"page", "api", "admin", "token"}
    assert set(PUBLIC) <= routes, f"PUBLIC names patterns that are gone: {set(PUBLIC) - routes}"
    for route in [
        "conversations/<int:pk>/advance/",
        "api/v1/conversations/<conversation_id>",
        "admin/engage/conversation/<path:object_id>/change/",
        "admin/django_rq/dashboard/queues/<int:queue_index>/empty/",
        "accounts/password_change/",
        "i18n/setlang/",
        "healthz",
    ]:
        assert route in routes
    named = {endpoint.name for endpoint in walk()}
    assert set(PAGES) <= named, f"PAGES names pages that are gone: {set(PAGES) - named}"
    operations = {op for endpoint in walk() for _method, op in endpoint.operations}
    assert set(API) <= operations, f"API names operations that are gone: {set(API) - operations}"


# The walk itself: a new page that forgets its protection, or that the walk cannot build,
# fails the tests above. Shown here on a project of three pages.


def leaky(request, **kwargs):
    return HttpResponse("every conversation")


@login_required
def logged_in_only(request, **kwargs):
    return HttpResponse("every conversation")


class LeakyProject:
    urlpatterns = [
        path("accounts/login/", leaky, name="login"),
        path("reports/", leaky, name="reports"),
        path("summary/", logged_in_only, name="summary"),
        re_path(r"^archive/([0-9]+)/$", logged_in_only),
        path("export/<int:batch>/", logged_in_only),
    ]


def test_the_walk_finds_unprotected_and_unexercisable_patterns(world, settings):
    settings.ROOT_URLCONF = LeakyProject

    anonymous = "\n".join(refusal_problems("anonymous", world, LeakyProject))
    outsider = "\n".join(refusal_problems("outsider", world, LeakyProject))

    assert "GET /reports/ (reports/) answered 200 to anonymous" in anonymous
    assert "POST /reports/ (reports/) answered 200 to anonymous" in anonymous
    assert "summary/" not in anonymous  # login_required: refused
    assert "GET /summary/ (summary/) answered 200 to outsider" in outsider
    assert "^archive/([0-9]+)/$: could not be exercised" in anonymous
    assert "export/<int:batch>/: could not be exercised: no value for the parameter 'batch'" in (
        anonymous
    )
