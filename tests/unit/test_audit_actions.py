"""The audit action registry: every action code the code base passes to the auditor is
registered with a service and Swedish wording, none is registered but unused, the auditor
refuses an unknown code, and ``docs/audit-actions.md`` is the registry as generated."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, cast

import pytest

from services.referral.codes import TRANSITIONS, Actor
from services.referral.schemas import ActionStep
from shared.identity.audit import Auditor
from shared.identity.audit_actions import (
    ACTIONS,
    REFUSED_REQUEST_TEXT,
    AuditAction,
    action_text,
    audit_actions_markdown,
)
from shared.identity.auth import Caller
from shared.service import load_spec

ROOT = Path(__file__).resolve().parents[2]
AUDIT_CALLS = frozenset(
    {
        # the auditor's own methods
        "record_access",
        "record_denied",
        "access_record",
        # the services' helpers that pass their action on to them
        "accessed",
        "audited",
        "once",
        "audit",
        "plan_answer",
        "_audit_plans",
        "_audit_draft",
        "_block_view",
    }
)
CODE = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


def _name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _used() -> tuple[set[str], set[str]]:
    """The literal action codes, and the f-string templates, passed to an audit call."""
    literal: set[str] = set()
    templates: set[str] = set()
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or _name(node) not in AUDIT_CALLS:
                continue
            args = [*node.args, *(k.value for k in node.keywords if k.arg == "action")]
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if CODE.match(arg.value):
                        literal.add(arg.value)
                elif isinstance(arg, ast.JoinedStr):
                    templates.add(ast.unparse(arg))
    return literal, templates


HOLDER_MOVES = {to for (_, to), who in TRANSITIONS.items() if who is Actor.HOLDER}
RECORDS = {a.value for a, s in ACTIONS.items() if a.endswith(".record") and s.service == "consent"}
DYNAMIC: dict[str, set[str]] = {
    # a task moved on by its receiving unit (inbox_router)
    "f'incoming.{body.to.value}'": {f"incoming.{to.value}" for to in HOLDER_MOVES},
    # an action of a plan moved on (plans_router)
    "f'plan.action_{body.to.value}'": {f"plan.action_{s.value}" for s in ActionStep},
    # a creation replayed under its Idempotency-Key (consent api)
    "f'{action}.replay'": {f"{r}.replay" for r in RECORDS},
}


class TestEveryActionIsRegistered:
    def test_every_literal_code_is_registered(self) -> None:
        literal, _ = _used()
        assert len(literal) > 30, "the scan finds the audit calls"
        assert literal - {a.value for a in AuditAction} == set()

    def test_every_dynamic_code_is_known_and_registered(self) -> None:
        _, templates = _used()
        assert templates == set(DYNAMIC), "a new f-string action: add what it makes to DYNAMIC"
        made = set().union(*DYNAMIC.values())
        assert made - {a.value for a in AuditAction} == set()

    def test_every_registered_code_is_used(self) -> None:
        literal, _ = _used()
        used = literal | set().union(*DYNAMIC.values())
        assert {a.value for a in AuditAction} - used == set()

    def test_every_code_has_a_service_and_swedish_wording(self) -> None:
        assert set(ACTIONS) == set(AuditAction)
        for action, spec in ACTIONS.items():
            assert spec.service in {"consent", "referral", "directory", "notify"}, action
            assert spec.text, action
            assert spec.text == spec.text.strip(), action
            assert action.value not in spec.text

    def test_wording_of_a_code(self) -> None:
        assert action_text("referral.read") == "läste en skickad remiss"
        assert action_text("get_referral") == REFUSED_REQUEST_TEXT


class TestTheAuditorRefusesAnUnknownCode:
    """Refused at the call, before anything is written (no session is touched)."""

    auditor = Auditor("consent", load_spec("consent").infra)
    caller = Caller(sub="ssk-1", org="212000-0142")
    nothing = cast(Any, None)

    async def test_record_access(self) -> None:
        with pytest.raises(ValueError, match="not in the registry"):
            await self.auditor.record_access(
                self.nothing, self.caller, action="referral.peek", person_id=None
            )

    def test_access_record(self) -> None:
        with pytest.raises(ValueError, match="not in the registry"):
            self.auditor.access_record(self.caller, action="referral.peek", person_id=None)

    async def test_record_denied(self) -> None:
        with pytest.raises(ValueError, match="not in the registry"):
            await self.auditor.record_denied(self.nothing, self.caller, action="x", person_id=None)


class TestTheDocument:
    def test_the_committed_file_is_the_generated_one(self) -> None:
        committed = (ROOT / "docs" / "audit-actions.md").read_text(encoding="utf-8")
        assert committed == audit_actions_markdown(), "run `vardkedja audit-actions`"
