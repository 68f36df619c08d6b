"""Scenario 9: the cross-member and cross-unit authorization matrix, generated from OpenAPI.

Every ``/v1`` operation of the four services (read from ``app.openapi()``) has one or more
*targets* in ``TABLE``: a request aimed at data that Växjö kommun's unit A owns — its id in
the path, in the query or hidden in the body — with the scope the operation names and the
policy it follows. The world is real: seeded through the APIs of two members' instances
over a real broker (``tests/security/federation.py``). Every target is sent by each caller:

=============  =============================================================================
owner          Växjö, unit A, the operation's scope (and the target's role)
other_unit     Växjö, unit C (a bystander), the same scope and role
member_admin   Växjö, no unit, the scope and ``member_admin`` (and the target's role)
missing_scope  Växjö, unit A, every scope but the one needed, the target's role
missing_role   Växjö, unit A, the scope but not the role (targets that need a role)
foreign        Region Kronoberg, every scope and role, naming unit A, at Växjö's instance
foreign_home   Region Kronoberg's bystander unit, every scope and role, with Växjö's ids
               and bodies at the region's own instance
anonymous      no token
expired        Växjö, unit A, every scope and role, expired an hour ago
bad_signature  Växjö, unit A, every scope and role, signed with a key nobody trusts
=============  =============================================================================

An allowed call succeeds and shows the target. A refused call answers the expected status
(401, 403, 404, or the rule for an id hidden in a body) as problem+json, shows no private
marker of the owner and stores nothing (the service's database is unchanged, its audit log
aside). A list answers without anything of unit A. A call at the other member's instance
shows nothing of the owner's but public directory data. Where an allowed call consumed a
fresh resource, the owner finally repeats it on the seeded one (``owner_seeded``): the
refusals were not refusals of a broken request. Anything refused where it should be
allowed, or answered otherwise, is a *mismatch*; anything shown or stored where it should
be refused is a *leak*. Figures go to ``var/security/authorization-matrix.json``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.web.errors import PROBLEM_JSON
from tests.conftest import BACKENDS
from tests.security.federation import (
    ADMIN_ROLE,
    ALL_ROLES,
    ALL_SCOPES,
    OTHER,
    OWNER,
    SPECS,
    Federation,
    Resp,
    World,
    digest,
    seed,
    token,
    write_report,
)
from tests.security.matrix import (
    SCOPE_IN_DESCRIPTION,
    TABLE,
    Caller,
    Expect,
    Kind,
    Op,
    Policy,
    Target,
    callers_of,
    expected,
    openapi_operations,
)
from tests.security.operations import Env

REPORT = "authorization-matrix.json"
PUBLIC_PATHS = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
"""The only operations outside /v1: no authentication, no data."""


# --- OpenAPI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], dict[str, Any]]:
    return openapi_operations(tmp_path_factory.mktemp("openapi"))


class TestEveryOperationIsClassified:
    """The matrix is generated from OpenAPI: an operation without an entry fails here."""

    def test_every_v1_operation_has_targets_and_nothing_else_is_listed(
        self, ops: dict[tuple[str, str, str], dict[str, Any]]
    ) -> None:
        v1 = {k for k in ops if k[2].startswith("/v1/")}
        missing = sorted(v1 - TABLE.keys())
        stale = sorted(TABLE.keys() - v1)
        assert not missing, f"operations without a matrix entry (classify them): {missing}"
        assert not stale, f"matrix entries for operations that no longer exist: {stale}"
        assert all(TABLE[k].targets for k in v1)

    def test_outside_v1_only_unauthenticated_operations_without_data(
        self, ops: dict[tuple[str, str, str], dict[str, Any]]
    ) -> None:
        others = [k for k in ops if not k[2].startswith("/v1/")]
        assert {(m, p) for _, m, p in others} == PUBLIC_PATHS
        for key in others:
            assert "security" not in ops[key], key

    def test_each_entry_names_the_scope_its_operation_documents(
        self, ops: dict[tuple[str, str, str], dict[str, Any]]
    ) -> None:
        for key, op in TABLE.items():
            documented = set(SCOPE_IN_DESCRIPTION.findall(ops[key].get("description", "")))
            assert documented == {op.scope}, (key, documented, op.scope)
            assert op.scope in ALL_SCOPES

    def test_each_operation_requires_a_bearer_token(
        self, ops: dict[tuple[str, str, str], dict[str, Any]]
    ) -> None:
        for key in TABLE:
            assert ops[key].get("security") == [{"HTTPBearer": []}], key


# --- running the matrix ----------------------------------------------------------------


def _untrusted_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


UNTRUSTED_KEY = _untrusted_key()


def credentials(c: Caller, t: Target, scope: str, w: World) -> tuple[str, str | None]:
    """(the member whose instance is called, the bearer token) of caller ``c``."""
    roles: tuple[str, ...] = (t.role,) if t.role else ()
    everything: dict[str, Any] = {"scopes": ALL_SCOPES, "roles": ALL_ROLES}
    match c:
        case Caller.OWNER:
            return OWNER, token(OWNER, w.ua, [scope], roles)
        case Caller.OTHER_UNIT:
            return OWNER, token(OWNER, w.uc, [scope], roles)
        case Caller.MEMBER_ADMIN:
            return OWNER, token(OWNER, None, [scope], (ADMIN_ROLE, *roles))
        case Caller.MISSING_SCOPE:
            return OWNER, token(OWNER, w.ua, [s for s in ALL_SCOPES if s != scope], roles)
        case Caller.MISSING_ROLE:
            return OWNER, token(OWNER, w.ua, [scope])
        case Caller.FOREIGN:
            return OWNER, token(OTHER, w.ua, **everything)
        case Caller.FOREIGN_HOME:
            return OTHER, token(OTHER, w.r_x, **everything)
        case Caller.ANONYMOUS:
            return OWNER, None
        case Caller.EXPIRED:
            return OWNER, token(OWNER, w.ua, **everything, expired=True)
        case Caller.BAD_SIGNATURE:
            return OWNER, token(OWNER, w.ua, **everything, private_key_pem=UNTRUSTED_KEY)


@dataclass
class Cell:
    service: str
    method: str
    path: str
    target: str
    caller: str
    expected: str
    status: int
    leak: str | None = None
    mismatch: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def judge(
    t: Target,
    c: Caller,
    exp: Expect,
    sent: str,
    resp: Resp,
    w: World,
    *,
    stored: bool,
    shows: str | None,
) -> tuple[str | None, str | None]:
    """(leak, mismatch) of one answer; ``sent``: what the caller itself already sent (a
    marker found there is no leak); ``shows``: what an allowed answer must show."""
    body = resp.text
    owners_only = w.member_private - w.shared

    def shown(markers: set[str]) -> list[str]:
        return sorted(m for m in markers if m in body and m not in sent)

    if resp.status >= 500:
        return None, f"server error {resp.status}: {body[:200]}"
    match exp.kind:
        case Kind.ALLOW | Kind.ALLOW_HOME:
            if exp.kind is Kind.ALLOW_HOME and (found := shown(owners_only)):
                return f"the other member's instance shows {found}", None
            if not 200 <= resp.status < 300:
                return None, f"refused with {resp.status}: {body[:200]}"
            if shows is not None and shows not in body:
                return None, f"the answer does not show {shows!r}"
        case Kind.REFUSE:
            if 200 <= resp.status < 300:
                return f"accepted with {resp.status}: {body[:200]}", None
            if found := shown(w.member_private):
                return f"the refusal shows {found}", None
            if stored:
                return "refused, but the service stored something", None
            if resp.status not in exp.statuses:
                return None, f"refused with {resp.status}, expected {sorted(exp.statuses)}"
            if resp.headers.get("content-type") != PROBLEM_JSON:
                return None, f"refusal is not problem+json: {resp.headers.get('content-type')}"
        case Kind.FILTER:
            hidden = t.hidden(w) if c is Caller.MISSING_ROLE and t.hidden else w.unit_private
            if found := shown(hidden):
                return f"the list shows {found}", None
            if stored:
                return "a list stored something", None
            if resp.status != 200:
                return None, f"the list answered {resp.status}: {body[:200]}"
        case Kind.ISOLATED:
            if found := shown(owners_only):
                return f"the other member's instance shows {found}", None
    return None, None


async def run_cell(
    env: Env, key: tuple[str, str, str], op: Op, t: Target, c: Caller, *, seeded: bool = False
) -> Cell:
    """One caller's call of one target; ``seeded``: the owner on the seeded resource."""
    exp = expected(t, c)
    req = await t.build(env, exp.kind is Kind.ALLOW and t.fresh and not seeded)
    orgnr, bearer_token = credentials(c, t, op.scope, env.w)
    if req.as_unit is not None and c is Caller.OWNER:
        # The fresh resource is a unit: its owner is that unit itself.
        roles: tuple[str, ...] = (t.role,) if t.role else ()
        bearer_token = token(OWNER, req.as_unit, [op.scope], roles)
    watch = exp.kind in (Kind.REFUSE, Kind.FILTER) and orgnr == OWNER
    db, spec = env.fed.stacks[OWNER].db(req.service), SPECS[req.service]
    before = await digest(db, spec) if watch else ""
    resp = await env.fed.call(orgnr, req, bearer_token)
    stored = watch and await digest(db, spec) != before
    sent = req.text()
    if c is Caller.FOREIGN_HOME:
        # What the other member's users put into their own instance is theirs to see.
        env.home_sent += sent
        sent = env.home_sent
    shows = env.fill(t.shows) if t.shows else None
    leak, mismatch = judge(t, c, exp, sent, resp, env.w, stored=stored, shows=shows)
    name = "owner_seeded" if seeded else c.value
    return Cell(*key, t.label, name, exp.kind.value, resp.status, leak, mismatch)


async def run_matrix(env: Env) -> list[Cell]:
    cells: list[Cell] = []
    for key, op in TABLE.items():
        for t in op.targets:
            # Refusals first, on the seeded resource; then the allowed calls.
            order = sorted(callers_of(t), key=lambda c: expected(t, c).kind is Kind.ALLOW)
            for c in order:
                cells.append(await run_cell(env, key, op, t, c))
            if t.fresh:
                cells.append(await run_cell(env, key, op, t, Caller.OWNER, seeded=True))
    return cells


@pytest.fixture(scope="module", params=BACKENDS)
async def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Env]:
    """The seeded federation of one backend, its workers stopped: only requests change it."""
    fed = Federation(request.param, tmp_path_factory.mktemp(f"matrix-{request.param}"))
    try:
        await fed.start()
        world = await seed(fed)
        await fed.stop_workers()
        yield Env(fed, world)
    finally:
        await fed.close()


class TestAuthorizationMatrix:
    async def test_no_caller_reaches_data_it_may_not(self, env: Env) -> None:
        started = time.monotonic()
        cells = await run_matrix(env)
        leaks = [x.as_dict() for x in cells if x.leak]
        mismatches = [x.as_dict() for x in cells if x.mismatch]
        targets = [t for op in TABLE.values() for t in op.targets]
        figures = {
            "operations": len(TABLE),
            "operations_by_service": dict(Counter(k[0] for k in TABLE)),
            "targets": len(targets),
            "hidden_id_targets": sum("(in the" in t.label for t in targets),
            "cross_member_targets": sum(t.policy is Policy.NOBODY for t in targets),
            "callers": [c.value for c in Caller],
            "cells_checked": len(cells),
            "cells_by_expectation": dict(Counter(x.expected for x in cells)),
            "cells_by_caller": dict(Counter(x.caller for x in cells)),
            "leaks": len(leaks),
            "mismatches": len(mismatches),
            "seconds": round(time.monotonic() - started, 1),
            "leak_cells": leaks,
            "mismatch_cells": mismatches,
            "cells": [x.as_dict() for x in cells],
        }
        path = write_report(REPORT, env.fed.backend, figures)
        assert len(cells) >= len(targets) * 9
        assert not leaks, f"{len(leaks)} leaks (see {path}): {leaks[:5]}"
        assert not mismatches, f"{len(mismatches)} mismatches (see {path}): {mismatches[:5]}"
