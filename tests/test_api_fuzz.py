"""Schemathesis against the API's own OpenAPI schema, in process.

The schema is read from /api/v1/openapi.json through Django's WSGI handler (no server), and
every operation, reads and writes, gets generated requests:

- the coverage phase: boundary and type-breaking values derived from each parameter and
  body field (the longest string allowed and one longer, 0 and the largest id, a number
  where text is expected...), the same on every run;
- the fuzzing phase: Hypothesis-generated requests, valid ones (positive) and ones that
  break the schema on purpose (negative), derandomized so that CI sees the same cases.

Every answer must be what the schema promises: never a 5xx, a documented status code, a
body that matches the declared schema, the declared content type, and a request that breaks
the schema refused with a 4xx. Requests carry a Bearer token: a community manager over every
operation (at least MINIMUM_CASES cases), then the product team, then staff, who alone may
change sources.
"""

import itertools
import time
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from engage.choices import Channel
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from engage.services import sources as source_services
from engage.services import tokens
from tests import factories

pytestmark = pytest.mark.django_db

SCHEMA_PATH = "/api/v1/openapi.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
MINIMUM_CASES = 1000
# Ids that path parameters and body fields are pointed at in some valid cases, so that
# writes reach existing objects instead of a 404 or a 422.
PATH_IDS = ("conversation_id", "ticket_id", "source_id")
BODY_REFERENCES = {
    "conversation": "conversation_id",
    "into": "ticket_id",
    "assignee": "username",
    "owner": "username",
}


@dataclass(frozen=True)
class Plan:
    """What one identity runs: the coverage phase, and fuzzed cases per operation and mode."""

    coverage: bool
    positive: int
    negative: int
    tags: frozenset[str] = frozenset()  # only operations with one of these tags; empty: all


PLANS = {
    "manager": Plan(coverage=True, positive=15, negative=8),
    "product": Plan(coverage=False, positive=5, negative=3),
    # Staff alone may change sources: the other roles only ever get a 403 there.
    "staff": Plan(coverage=True, positive=10, negative=5, tags=frozenset({"sources"})),
}


@dataclass
class Tally:
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)

    def count(self, label: str, status: int) -> None:
        self.cases += 1
        seen = self.statuses.setdefault(label, {})
        seen[status] = seen.get(status, 0) + 1

    def failure_report(self, shown: int = 20) -> str:
        more = len(self.failures) - shown
        return "\n\n".join(self.failures[:shown]) + (f"\n\n...and {more} more" if more > 0 else "")

    def report(self, name: str, started: float) -> str:
        lines = [
            f"{name}: {self.cases} generated cases over {len(self.statuses)} operations "
            f"in {time.monotonic() - started:.1f} s"
        ]
        lines += [
            f"  {label}: {dict(sorted(seen.items()))}" for label, seen in self.statuses.items()
        ]
        return "\n".join(lines)


@pytest.fixture
def in_process_requests():
    """As Django's test client does: a request must not close the test's connection (and
    with it the transaction every test runs in)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(in_process_requests):
    return schemathesis.openapi.from_wsgi(SCHEMA_PATH, WSGIHandler(), headers={"Host": "localhost"})


@pytest.fixture
def world(manager, other_manager, product, staff) -> dict[str, list]:
    """Something to work on: conversations in listen, interact and react, tickets with
    evidence, a feed and an API source, and the people requests may name."""
    listen = factories.conversation()
    interact = factories.conversation()
    conversation_services.assign(interact.pk, manager, actor=manager)
    conversation_services.advance(interact.pk, actor=manager)
    react = factories.conversation()
    conversation_services.assign(react.pk, other_manager, actor=manager)
    conversation_services.advance(react.pk, actor=manager)
    conversation_services.log_reply(react.pk, actor=manager, text="Thanks, we are on it.")
    conversation_services.advance(react.pk, actor=manager)
    ticket = feedback_services.create_ticket(
        actor=manager, title="Water leaks", conversation_id=react.pk, quote="it leaks"
    )
    other_ticket = feedback_services.create_ticket(actor=product, title="Faster delivery")
    feed = source_services.add_feed(
        actor=staff, name="Aurora blog", url="https://blog.example/feed", channel=Channel.BLOG
    )
    return {
        "conversation_id": [listen.pk, interact.pk, react.pk],
        "ticket_id": [ticket.pk, other_ticket.pk],
        "source_id": [feed.pk, listen.source_id],
        "username": [manager.username, other_manager.username, product.username],
    }


def _bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.create_token(user, name='fuzz')[1]}"}


def _operations(api_schema, plan: Plan) -> list:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    if plan.tags:
        operations = [op for op in operations if plan.tags & set(op.tags or ())]
    return operations


def _point_at(case, known: dict) -> None:
    """Point the case's ids and usernames at existing ones; None keeps what was generated."""
    for name in PATH_IDS:
        if name in case.path_parameters and known.get(name) is not None:
            case.path_parameters[name] = known[name]
    if isinstance(case.body, dict):
        for name, kind in BODY_REFERENCES.items():
            if name in case.body and known.get(kind) is not None:
                case.body[name] = known[kind]


def _send(case, headers, tally: Tally) -> None:
    response = case.call(headers=headers)
    tally.count(case.operation.label, response.status_code)
    case.validate_response(response, checks=CHECKS, headers=headers)


def _record_failure(tally: Tally, label: str, error: BaseException) -> None:
    tally.failures.append(f"{label}:\n{error}")


def _coverage(operation, world, headers, tally: Tally) -> None:
    """Every coverage case once. Valid ones take turns at existing objects and generated ids."""
    columns = [_cycle(values) for values in world.values()]
    choices = [dict(zip(world, row, strict=True)) for row in zip(*columns, strict=True)]
    generator = CoverageGenerator(
        operation=operation,
        generation_modes=MODES,
        generation_config=operation.schema.config.generation_for(
            operation=operation, phase="coverage"
        ),
        auth_storage=None,
        override=Override(),
        feedback=FeedbackSources(),
    )
    for case, known in zip(generator, itertools.cycle(choices)):
        if case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE:
            _point_at(case, known)
        try:
            _send(case, headers, tally)
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - all are reported
            _record_failure(tally, f"{operation.label} (coverage)", error)


def _cycle(values: list) -> list:
    """The existing values and None, repeated to a common length of 12."""
    return list(itertools.islice(itertools.cycle([*values, None]), 12))


def _fuzz(operation, mode, count: int, world, headers, tally: Tally) -> None:
    known = st.fixed_dictionaries(
        {name: st.sampled_from([*ids, None]) for name, ids in world.items()}
    )

    @given(case=operation.as_strategy(generation_mode=mode), known=known)
    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case, known):
        if mode is GenerationMode.POSITIVE:
            _point_at(case, known)
        _send(case, headers, tally)

    try:
        run()
    # Schemathesis reports failed checks as a BaseExceptionGroup.
    except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - all are reported
        _record_failure(tally, f"{operation.label} ({mode.value})", error)


def _run(api_schema, world, role: str, user, plan: Plan) -> Tally:
    headers, tally, started = _bearer(user), Tally(), time.monotonic()
    for operation in _operations(api_schema, plan):
        if plan.coverage:
            _coverage(operation, world, headers, tally)
        _fuzz(operation, GenerationMode.POSITIVE, plan.positive, world, headers, tally)
        _fuzz(operation, GenerationMode.NEGATIVE, plan.negative, world, headers, tally)
    print("\n" + tally.report(role, started))
    return tally


def test_every_operation_answers_as_its_schema_says_to_a_community_manager(
    api_schema, world, manager
):
    tally = _run(api_schema, world, "community manager", manager, PLANS["manager"])

    assert not tally.failures, tally.failure_report()
    assert len(tally.statuses) == len(_operations(api_schema, PLANS["manager"]))
    assert tally.cases >= MINIMUM_CASES


@pytest.mark.parametrize("role", ["product", "staff"])
def test_every_operation_answers_as_its_schema_says_to_the_other_roles(
    api_schema, world, role, request
):
    plan = PLANS[role]

    tally = _run(api_schema, world, role, request.getfixturevalue(role), plan)

    assert not tally.failures, tally.failure_report()
    assert len(tally.statuses) == len(_operations(api_schema, plan))


# What the fuzzing found, kept as explicit cases so that each stays fixed whatever the
# generator draws. Each names the role, the operation, its path parameters and body (built
# from `world`), and the status answered now.


@dataclass(frozen=True)
class Found:
    role: str
    method: str
    path: str
    path_parameters: object  # world -> dict
    body: object  # world -> body
    status: int


def _item(**overrides) -> dict:
    fields = {
        "source": "fuzz",
        "external_id": "found-1",
        "channel": "twitter",
        "author": {"handle": "@ada"},
        "text": "La mia Aurora perde acqua",
    }
    return {**fields, **overrides}


FOUND = {
    # SQLite cannot bind an id beyond a bigint: the merge's `pk IN (...)` was a 500.
    "merging from a ticket id no row can have": Found(
        "product",
        "POST",
        "/api/v1/feedback/{ticket_id}/merge",
        lambda world: {"ticket_id": 1747094930954315965329833984},
        lambda world: {"into": world["ticket_id"][1]},
        404,
    ),
    # Renaming an API or file source to a taken name reached the database's unique
    # constraint: an IntegrityError and a 500.
    "renaming an API source to a taken name": Found(
        "staff",
        "PATCH",
        "/api/v1/sources/{source_id}",
        lambda world: {"source_id": world["source_id"][1]},
        lambda world: {"name": "Aurora blog"},
        422,
    ),
    # The schema says text, but numbers were taken as text; and a number was taken as a
    # time, read as seconds or milliseconds since 1970 depending on its size.
    "a number as an item's text": Found(
        "manager", "POST", "/api/v1/conversations", dict, lambda world: _item(text=42), 422
    ),
    "a number as an item's time": Found(
        "manager",
        "POST",
        "/api/v1/conversations",
        dict,
        lambda world: _item(created_at=1_700_000_000_000),
        422,
    ),
    # Numeric external ids (tweet ids) stay accepted, and the schema now says so.
    "a numeric external id": Found(
        "manager",
        "POST",
        "/api/v1/conversations",
        dict,
        lambda world: _item(external_id=1234567890123),
        201,
    ),
    # A body that is not JSON is a 400, which the schema did not list.
    "a body that is not JSON": Found(
        "manager",
        "POST",
        "/api/v1/conversations/{conversation_id}/notes",
        lambda world: {"conversation_id": world["conversation_id"][0]},
        lambda world: b"\x00",
        400,
    ),
}


@pytest.mark.parametrize("name", FOUND)
def test_what_the_fuzzing_found_stays_fixed(api_schema, world, name, request):
    found = FOUND[name]
    headers = _bearer(request.getfixturevalue(found.role))
    case = api_schema[found.path][found.method].Case(
        path_parameters=found.path_parameters(world),
        body=found.body(world),
        media_type="application/json",
    )

    response = case.call(headers=headers)

    case.validate_response(response, checks=CHECKS, headers=headers)
    assert response.status_code == found.status, response.text
