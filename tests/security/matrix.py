"""The authorization matrix's table: every ``/v1`` operation of the four services, the
scope it needs and its *targets* (requests aimed at unit A's data of Växjö kommun), each
with the policy that says which caller may (see ``test_authorization_matrix.py``).

A new operation gets an entry here or ``TestEveryOperationIsClassified`` fails; the audit
completeness test (``test_audit_completeness.py``) performs the non-personal operations
with their first target.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.web.app import create_app
from tests.security.federation import (
    ADMIN_ROLE,
    LEAD_ROLE,
    OWNER,
    PROTECTED_ROLE,
    SERVICES,
    SPECS,
    World,
    settings_for,
    unit_body,
)
from tests.security.operations import (
    CLOSE,
    MEMBER_BODY,
    QUESTION,
    QUESTION_OF_OTHERS,
    REVIEW,
    ROUTING,
    Builder,
    b_attach,
    b_consent_of_others,
    b_convene,
    b_create_unit,
    b_delete_draft,
    b_delete_subscription,
    b_discharge,
    b_follow_up,
    b_import,
    b_information,
    b_on_record,
    b_plan,
    b_record,
    b_redeliver,
    b_region_unit,
    b_remissmote,
    b_revise_plan,
    b_send_across,
    b_send_within,
    b_step_action,
    b_stream,
    b_subscribe,
    b_transition,
    b_unit_action,
    b_update_unit,
    b_upload,
    b_withdraw,
    get,
    lift,
    send,
    withdrawal,
)

# --- the policy of each target ---------------------------------------------------------


class Policy(enum.Enum):
    MEMBER = "member"
    """Any unit of the member with the scope (member-level data, or the caller's own)."""
    UNIT = "unit"
    """Only the owning unit (and ``member_admin`` where the target says so)."""
    ROLE = "role"
    """Holders of the target's role, in any unit."""
    FEDERATION = "federation"
    """Directory data every member holds a replica of: the other member sees it too."""
    NOBODY = "nobody"
    """Another member's resource named at this member's instance: nobody here may."""


class Caller(enum.Enum):
    OWNER = "owner"
    OTHER_UNIT = "other_unit"
    MEMBER_ADMIN = "member_admin"
    MISSING_SCOPE = "missing_scope"
    MISSING_ROLE = "missing_role"
    FOREIGN = "foreign"
    FOREIGN_HOME = "foreign_home"
    ANONYMOUS = "anonymous"
    EXPIRED = "expired"
    BAD_SIGNATURE = "bad_signature"


class Kind(enum.Enum):
    ALLOW = "allow"
    REFUSE = "refuse"
    FILTER = "filter"
    ISOLATED = "isolated"
    ALLOW_HOME = "allow_home"


@dataclass(frozen=True)
class Expect:
    kind: Kind
    statuses: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Target:
    label: str
    policy: Policy
    build: Builder
    role: str | None = None
    admin_crosses: bool = False
    """UNIT: ``member_admin`` may act for any unit."""
    needs_unit: bool = False
    """The token must name a unit (the referral service acts as a unit)."""
    filters: bool = False
    """A list: refused callers get it without the data instead of an error."""
    fresh: bool = False
    """Allowed calls get a fresh resource (they change it, or create with a person)."""
    refuse: frozenset[int] = frozenset({403, 404})
    shows: str | None = None
    """Template of what an allowed answer must show."""
    hidden: Callable[[World], set[str]] | None = None
    """A list filtered by role: what the caller without the role must not see."""


@dataclass(frozen=True)
class Op:
    scope: str
    targets: tuple[Target, ...]


def expected(t: Target, c: Caller) -> Expect:
    """What caller ``c`` must get from target ``t``."""
    if c in (Caller.ANONYMOUS, Caller.EXPIRED, Caller.BAD_SIGNATURE):
        return Expect(Kind.REFUSE, frozenset({401}))
    if c in (Caller.FOREIGN, Caller.MISSING_SCOPE):
        return Expect(Kind.REFUSE, frozenset({403}))
    if c is Caller.FOREIGN_HOME:
        return Expect(Kind.ALLOW_HOME if t.policy is Policy.FEDERATION else Kind.ISOLATED)
    if t.policy is Policy.NOBODY:
        return Expect(Kind.REFUSE, t.refuse)
    if c is Caller.MISSING_ROLE:
        return Expect(Kind.FILTER) if t.filters else Expect(Kind.REFUSE, t.refuse)
    if c is Caller.OWNER:
        return Expect(Kind.ALLOW)
    if c is Caller.MEMBER_ADMIN and t.needs_unit:
        return Expect(Kind.REFUSE, frozenset({403}))
    if t.policy in (Policy.MEMBER, Policy.FEDERATION, Policy.ROLE):
        return Expect(Kind.ALLOW)
    if c is Caller.MEMBER_ADMIN and t.admin_crosses:
        return Expect(Kind.ALLOW)
    return Expect(Kind.FILTER) if t.filters else Expect(Kind.REFUSE, t.refuse)


def callers_of(t: Target) -> list[Caller]:
    return [c for c in Caller if c is not Caller.MISSING_ROLE or t.role is not None]


# --- the table: every /v1 operation, its scope and its targets ----------------------------

M, U, R, F, N = Policy.MEMBER, Policy.UNIT, Policy.ROLE, Policy.FEDERATION, Policy.NOBODY
T = Target
NOT_FOUND = frozenset({404})
RULE = frozenset({422})
UNIT_TOKEN_REFUSED = frozenset({403, 404})
"""A unit's token changes only its own unit: any other id answers 403 before it is looked
up (the same for every id, so nothing is told), a member-level token 404."""
IN_BODY = frozenset({403, 404, 422})
UNIT_REF: dict[str, Any] = {"needs_unit": True}
"""The referral service acts as the token's unit (none: 403)."""
ADMIN: dict[str, Any] = {"admin_crosses": True}
"""notify, and the directory's unit changes: ``member_admin`` may act for every unit."""
PROT: dict[str, Any] = {"role": PROTECTED_ROLE, "hidden": lambda w: w.protected}
"""About a person with protected identity: only with the role."""
D, C, RF, NT = "directory", "consent", "referral", "notify"
HOOK = "/v1/webhook-subscriptions/{sub_a}"

TABLE: dict[tuple[str, str, str], Op] = {
    # directory: the member's own units (member-level: any unit's staff with the scope),
    # and the federation's replica (every member's, the other member's instance too)
    (D, "POST", "/v1/units/import"): Op("directory:write", (T("import (CSV)", M, b_import),)),
    (D, "GET", "/v1/units/export"): Op(
        "directory:read", (T("export", M, get(D, "/v1/units/export"), shows="{m_unitA}"),)
    ),
    (D, "POST", "/v1/units"): Op("directory:write", (T("create a unit", M, b_create_unit),)),
    (D, "GET", "/v1/units"): Op(
        "directory:read", (T("own units", M, get(D, "/v1/units"), shows="{ua}"),)
    ),
    (D, "GET", "/v1/units/stale"): Op(
        "directory:read", (T("stale units", M, get(D, "/v1/units/stale")),)
    ),
    (D, "GET", "/v1/units/{unit_id}"): Op(
        "directory:read",
        (
            T("unit A", M, get(D, "/v1/units/{ua}"), shows="{ua}"),
            T("the region's unit", N, b_region_unit("GET"), refuse=NOT_FOUND),
        ),
    ),
    (D, "PUT", "/v1/units/{unit_id}"): Op(
        "directory:write",
        (
            T("update unit A", U, b_update_unit, fresh=True, **ADMIN),
            T(
                "the region's unit",
                N,
                b_region_unit("PUT", "", unit_body("Ändrad", ["kontaktbegaran"])),
                refuse=UNIT_TOKEN_REFUSED,
            ),
        ),
    ),
    **{
        (D, "POST", f"/v1/units/{{unit_id}}/{action}"): Op(
            "directory:write",
            (
                T(f"{action} unit A", U, b_unit_action(action, body), fresh=True, **ADMIN),
                T(
                    "the region's unit",
                    N,
                    b_region_unit("POST", f"/{action}", body),
                    refuse=UNIT_TOKEN_REFUSED,
                ),
            ),
        )
        for action, body in (
            ("close", CLOSE),
            ("reopen", None),
            ("deactivate", None),
            ("review", REVIEW),
        )
    },
    (D, "GET", "/v1/replica/units"): Op(
        "directory:read", (T("the replica", F, get(D, "/v1/replica/units"), shows="{ua}"),)
    ),
    (D, "GET", "/v1/replica/units/{unit_id}"): Op(
        "directory:read",
        (T("unit A replicated", F, get(D, "/v1/replica/units/{ua}"), shows="{ua}"),),
    ),
    (D, "GET", "/v1/search"): Op(
        "directory:read", (T("search", F, get(D, "/v1/search?q=Mottagning"), shows="{ua}"),)
    ),
    (D, "POST", "/v1/routing/resolve"): Op(
        "directory:read",
        (T("routing", F, send(D, "POST", "/v1/routing/resolve", ROUTING), shows="{OWNER}"),),
    ),
    (D, "GET", "/v1/overview/{orgnr}"): Op(
        "directory:read",
        (T("the owner's overview", F, get(D, "/v1/overview/{OWNER}"), shows="{m_unitA}"),),
    ),
    (D, "PUT", "/v1/member"): Op(
        "directory:write", (T("the member's record", M, send(D, "PUT", "/v1/member", MEMBER_BODY)),)
    ),
    (D, "GET", "/v1/members"): Op(
        "directory:read", (T("members", F, get(D, "/v1/members"), shows="{OWNER}"),)
    ),
    (D, "GET", "/v1/members/{orgnr}"): Op(
        "directory:read", (T("the owner", F, get(D, "/v1/members/{OWNER}"), shows="{OWNER}"),)
    ),
    # consent: the records are the member's (any unit with the scope); a recording unit
    # named in a body must be the caller's own, unless the token names none (a system)
    (C, "POST", "/v1/decisions"): Op(
        "consent:read",
        (
            T(
                "unit A as sender (in the body)",
                M,
                send(C, "POST", "/v1/decisions", QUESTION),
                shows="{consent_a}",
            ),
            T(
                "between two other members",
                N,
                send(C, "POST", "/v1/decisions", QUESTION_OF_OTHERS),
                refuse=RULE,
            ),
        ),
    ),
    (C, "GET", "/v1/legal-bases"): Op(
        "consent:read", (T("legal bases", M, get(C, "/v1/legal-bases")),)
    ),
    (C, "POST", "/v1/consents"): Op(
        "consent:write",
        (
            T("as the caller's unit", M, b_record("consents", recorded_by_unit=False), fresh=True),
            T(
                "as unit A (in the body)",
                U,
                b_record("consents", recorded_by_unit=True),
                fresh=True,
                **ADMIN,
            ),
            T("between two other members", N, b_consent_of_others, refuse=RULE),
        ),
    ),
    (C, "GET", "/v1/consents/{consent_id}"): Op(
        "consent:read",
        (
            T("the owner's consent", M, get(C, "/v1/consents/{consent_a}"), shows="{m_consentA}"),
            T("the region's consent", N, get(C, "/v1/consents/{copy_r}"), refuse=NOT_FOUND),
        ),
    ),
    (C, "POST", "/v1/consents/{consent_id}/withdraw"): Op(
        "consent:write",
        (
            T(
                "the owner's consent",
                M,
                b_on_record("consents", "withdraw", withdrawal),
                fresh=True,
            ),
            T(
                "the region's consent",
                N,
                send(C, "POST", "/v1/consents/{copy_r}/withdraw", withdrawal()),
                refuse=NOT_FOUND,
            ),
        ),
    ),
    (C, "GET", "/v1/consent-copies/{consent_id}"): Op(
        "consent:read",
        (T("the owner's copy", M, get(C, "/v1/consent-copies/{copy_r}"), shows="{copy_r}"),),
    ),
    (C, "POST", "/v1/refusals"): Op(
        "consent:write",
        (
            T("as the caller's unit", M, b_record("refusals", recorded_by_unit=False), fresh=True),
            T(
                "as unit A (in the body)",
                U,
                b_record("refusals", recorded_by_unit=True),
                fresh=True,
                **ADMIN,
            ),
        ),
    ),
    (C, "GET", "/v1/refusals/{refusal_id}"): Op(
        "consent:read",
        (T("the owner's refusal", M, get(C, "/v1/refusals/{refusal_a}"), shows="{m_refusalA}"),),
    ),
    (C, "POST", "/v1/refusals/{refusal_id}/revoke"): Op(
        "consent:write",
        (
            T(
                "the owner's refusal",
                M,
                b_on_record("refusals", "revoke", lambda: {"reason": "Ändrat sig."}),
                fresh=True,
            ),
        ),
    ),
    (C, "POST", "/v1/blocks"): Op(
        "consent:write",
        (
            T("as the caller's unit", M, b_record("blocks", recorded_by_unit=False), fresh=True),
            T(
                "as unit A (in the body)",
                U,
                b_record("blocks", recorded_by_unit=True),
                fresh=True,
                **ADMIN,
            ),
        ),
    ),
    (C, "GET", "/v1/blocks/{block_id}"): Op(
        "consent:read",
        (T("the owner's block", M, get(C, "/v1/blocks/{block_a}"), shows="{m_blockA}"),),
    ),
    (C, "POST", "/v1/blocks/{block_id}/lifts"): Op(
        "consent:write",
        (T("the owner's block", M, b_on_record("blocks", "lifts", lift), fresh=True),),
    ),
    (C, "POST", "/v1/blocks/{block_id}/remove"): Op(
        "consent:write", (T("the owner's block", M, b_on_record("blocks", "remove"), fresh=True),)
    ),
    (C, "POST", "/v1/persons/search"): Op(
        "consent:person",
        (
            T(
                "the owner's person",
                M,
                send(C, "POST", "/v1/persons/search", {"personnummer": "{p1}"}),
                shows="{consent_a}",
            ),
        ),
    ),
    (C, "POST", "/v1/persons/audit-extract"): Op(
        "consent:person",
        (
            T(
                "the owner's person",
                M,
                send(
                    C,
                    "POST",
                    "/v1/persons/audit-extract",
                    {"personnummer": "{p1}", "format": "json"},
                ),
                shows="{consent_a}",
            ),
        ),
    ),
    # referral: what a unit sent and received, its meetings and plans are the unit's; a
    # person with protected identity needs the role; a person search is member-wide
    (RF, "POST", "/v1/referrals"): Op(
        "referral:write",
        (
            T("within the member", M, b_send_within, fresh=True, **UNIT_REF),
            T(
                "to the region (the consent service decides)",
                M,
                b_send_across,
                fresh=True,
                **UNIT_REF,
            ),
        ),
    ),
    (RF, "GET", "/v1/referrals/{referral_id}"): Op(
        "referral:read",
        (
            T("sent by unit A", U, get(RF, "/v1/referrals/{ref_a}"), shows="{m_outA}", **UNIT_REF),
            T(
                "sent by unit A to the region",
                U,
                get(RF, "/v1/referrals/{ref_x}"),
                shows="{m_outX}",
                **UNIT_REF,
            ),
        ),
    ),
    # A document: an upload is the caller's unit's own; a referral's and a task's are the
    # sending and the receiving unit's (before the seeded referral's task is withdrawn).
    (RF, "POST", "/v1/attachments"): Op(
        "referral:write", (T("a document of the caller's unit", M, b_upload, **UNIT_REF),)
    ),
    (RF, "GET", "/v1/attachments"): Op(
        "referral:read",
        (
            T(
                "unit A's uploads",
                U,
                get(RF, "/v1/attachments?limit=200"),
                filters=True,
                shows="{att_listed}",
                **UNIT_REF,
            ),
        ),
    ),
    (RF, "DELETE", "/v1/attachments/{attachment_id}"): Op(
        "referral:write",
        (T("an upload of unit A's", U, b_delete_draft, fresh=True, **UNIT_REF),),
    ),
    (RF, "POST", "/v1/referrals/{referral_id}/attachments"): Op(
        "referral:write", (T("unit A's referral", U, b_attach, fresh=True, **UNIT_REF),)
    ),
    (RF, "GET", "/v1/referrals/{referral_id}/attachments/{attachment_id}"): Op(
        "referral:read",
        (
            T(
                "of unit A's referral",
                U,
                get(RF, "/v1/referrals/{ref_a}/attachments/{att_out}"),
                shows="{m_attOut}",
                **UNIT_REF,
            ),
        ),
    ),
    (RF, "GET", "/v1/incoming/{task_id}/attachments/{attachment_id}"): Op(
        "referral:read",
        (
            T(
                "in unit A's inbox",
                U,
                get(RF, "/v1/incoming/{inc_a}/attachments/{att_in}"),
                shows="{m_attIn}",
                **UNIT_REF,
            ),
            T(
                "in unit A's inbox, protected",
                U,
                get(RF, "/v1/incoming/{inc_p}/attachments/{att_p}"),
                shows="{m_attP}",
                **UNIT_REF,
                **PROT,
            ),
        ),
    ),
    (RF, "GET", "/v1/outgoing"): Op(
        "referral:read",
        (
            T(
                "unit A's sent",
                U,
                get(RF, "/v1/outgoing?limit=200"),
                filters=True,
                shows="{m_outA}",
                **UNIT_REF,
            ),
        ),
    ),
    (RF, "POST", "/v1/referrals/{referral_id}/discharge"): Op(
        "referral:write",
        (T("unit A's discharge planning", U, b_discharge, fresh=True, **UNIT_REF),),
    ),
    (RF, "POST", "/v1/referrals/{task_id}/withdraw"): Op(
        "referral:write", (T("unit A's referral", U, b_withdraw, fresh=True, **UNIT_REF),)
    ),
    (RF, "POST", "/v1/referrals/{referral_id}/recipients/{task_id}/information"): Op(
        "referral:write",
        (
            T(
                "unit A's referral, asked about",
                U,
                b_information,
                fresh=True,
                shows="{m_question}",
                **UNIT_REF,
            ),
        ),
    ),
    (RF, "GET", "/v1/incoming"): Op(
        "referral:read",
        (
            T(
                "unit A's inbox",
                U,
                get(RF, "/v1/incoming?limit=200"),
                filters=True,
                shows="{m_inA}",
                **UNIT_REF,
            ),
            T(
                "unit A's inbox, protected",
                U,
                get(RF, "/v1/incoming?limit=200"),
                filters=True,
                shows="{m_inP}",
                **UNIT_REF,
                **PROT,
            ),
        ),
    ),
    (RF, "GET", "/v1/incoming/{task_id}"): Op(
        "referral:read",
        (
            T("in unit A's inbox", U, get(RF, "/v1/incoming/{inc_a}"), shows="{m_inA}", **UNIT_REF),
            T(
                "in unit A's inbox, protected",
                U,
                get(RF, "/v1/incoming/{inc_p}"),
                shows="{m_inP}",
                **UNIT_REF,
                **PROT,
            ),
        ),
    ),
    (RF, "POST", "/v1/incoming/{task_id}/transitions"): Op(
        "referral:write", (T("in unit A's inbox", U, b_transition, fresh=True, **UNIT_REF),)
    ),
    (RF, "GET", "/v1/tasks/{task_id}/history"): Op(
        "referral:read",
        (
            T(
                "received by unit A",
                U,
                get(RF, "/v1/tasks/{inc_a}/history"),
                shows="to_status",
                **UNIT_REF,
            ),
            T(
                "sent by unit A",
                U,
                get(RF, "/v1/tasks/{ref_a_task}/history"),
                shows="to_status",
                **UNIT_REF,
            ),
            T(
                "sent by unit A to the region",
                U,
                get(RF, "/v1/tasks/{ref_x_task}/history"),
                shows="to_status",
                **UNIT_REF,
            ),
            T(
                "received by unit A, protected",
                U,
                get(RF, "/v1/tasks/{inc_p}/history"),
                shows="to_status",
                **UNIT_REF,
                **PROT,
            ),
        ),
    ),
    (RF, "POST", "/v1/person-search"): Op(
        "referral:person",
        (
            T(
                "the owner's person",
                M,
                send(RF, "POST", "/v1/person-search", {"personnummer": "{p1}"}),
                shows="{m_outA}",
            ),
            T(
                "protected identity",
                M,
                send(RF, "POST", "/v1/person-search", {"personnummer": "{p2}"}),
                filters=True,
                shows="{m_inP}",
                **PROT,
            ),
        ),
    ),
    (RF, "GET", "/v1/indicators"): Op(
        "referral:read",
        (
            T(
                "unit A's (aggregates, no person)",
                M,
                get(RF, "/v1/indicators?unit_id={ua}"),
                shows="outgoing",
            ),
        ),
    ),
    (RF, "GET", "/v1/deadlines/count"): Op(
        "referral:read",
        (
            T(
                "a count (no data of any unit or person)",
                M,
                get(RF, "/v1/deadlines/count?from=2026-12-23T10:00:00Z&working_days=2"),
                shows="skipped",
            ),
        ),
    ),
    (RF, "POST", "/v1/meetings"): Op(
        "referral:write",
        (
            T("a SIP", M, b_convene, fresh=True, **UNIT_REF),
            T("from unit A's referral (in the body)", U, b_remissmote, refuse=IN_BODY, **UNIT_REF),
            T(
                "after unit A's meeting (in the body)",
                U,
                b_follow_up,
                fresh=True,
                refuse=IN_BODY,
                **UNIT_REF,
            ),
        ),
    ),
    (RF, "GET", "/v1/meetings/{meeting_id}"): Op(
        "referral:read",
        (T("unit A's meeting", U, get(RF, "/v1/meetings/{meeting_a}"), shows="{p1}", **UNIT_REF),),
    ),
    (RF, "PUT", "/v1/meetings/{meeting_id}/plan"): Op(
        "referral:write", (T("unit A's meeting", U, b_plan, shows="{p1}", **UNIT_REF),)
    ),
    (RF, "GET", "/v1/plans/{plan_id}"): Op(
        "referral:read",
        (T("unit A's plan", U, get(RF, "/v1/plans/{meeting_a}"), shows="{p1}", **UNIT_REF),),
    ),
    (RF, "GET", "/v1/plans/{plan_id}/min-plan"): Op(
        "referral:read",
        (T("unit A's plan, printed", U, get(RF, "/v1/plans/{meeting_a}/min-plan"), **UNIT_REF),),
    ),
    (RF, "PUT", "/v1/plans/{plan_id}"): Op(
        "referral:write", (T("unit A's plan", U, b_revise_plan, fresh=True, **UNIT_REF),)
    ),
    (RF, "POST", "/v1/plans/{plan_id}/actions/{action_id}/transitions"): Op(
        "referral:write", (T("unit A's action", U, b_step_action, fresh=True, **UNIT_REF),)
    ),
    (RF, "GET", "/v1/plan-actions"): Op(
        "referral:read",
        (
            T(
                "unit A's actions",
                U,
                get(RF, "/v1/plan-actions"),
                filters=True,
                shows="{action_a}",
                **UNIT_REF,
            ),
        ),
    ),
    (RF, "GET", "/v1/coordination"): Op(
        "referral:read",
        (
            T(
                "unit A's coordination",
                U,
                get(RF, "/v1/coordination"),
                filters=True,
                shows="{meeting_a}",
                **UNIT_REF,
            ),
        ),
    ),
    # notify: a unit's inbox, notifications and hooks are the unit's and member_admin's; a
    # role's inbox its holders'; the dead-letter list and mailboxes member_admin's
    (NT, "GET", "/v1/units/{unit_id}/notifications"): Op(
        "notify:read",
        (
            T(
                "unit A's inbox",
                U,
                get(NT, "/v1/units/{ua}/notifications"),
                shows="{notif_a}",
                **ADMIN,
            ),
        ),
    ),
    (NT, "GET", "/v1/roles/{role}/notifications"): Op(
        "notify:read",
        (
            T(
                "the lead's inbox",
                R,
                get(NT, "/v1/roles/{LEAD}/notifications"),
                role=LEAD_ROLE,
                shows="{notif_lead}",
            ),
        ),
    ),
    (NT, "GET", "/v1/units/{unit_id}/notifications/stream"): Op(
        "notify:read",
        (T("unit A's live inbox", U, b_stream, shows="event: notification", **ADMIN),),
    ),
    (NT, "GET", "/v1/notifications/{notification_id}"): Op(
        "notify:read",
        (
            T(
                "in unit A's inbox",
                U,
                get(NT, "/v1/notifications/{notif_a}"),
                shows="{notif_a}",
                **ADMIN,
            ),
            T(
                "in the lead's inbox",
                R,
                get(NT, "/v1/notifications/{notif_lead}"),
                role=LEAD_ROLE,
                shows="{notif_lead}",
            ),
        ),
    ),
    (NT, "POST", "/v1/notifications/{notification_id}/read"): Op(
        "notify:write",
        (
            T(
                "in unit A's inbox",
                U,
                send(NT, "POST", "/v1/notifications/{notif_a}/read"),
                shows="{notif_a}",
                **ADMIN,
            ),
        ),
    ),
    (NT, "POST", "/v1/notifications/{notification_id}/acknowledge"): Op(
        "notify:write",
        (
            T(
                "in unit A's inbox",
                U,
                send(NT, "POST", "/v1/notifications/{notif_a}/acknowledge"),
                shows="{notif_a}",
                **ADMIN,
            ),
        ),
    ),
    (NT, "GET", "/v1/notifications/{notification_id}/deliveries"): Op(
        "notify:read",
        (
            T(
                "of unit A's notification",
                U,
                get(NT, "/v1/notifications/{notif_a}/deliveries"),
                shows="{notif_a}",
                **ADMIN,
            ),
        ),
    ),
    (NT, "POST", "/v1/webhook-subscriptions"): Op(
        "notify:write",
        (
            T("for unit A (in the body)", U, b_subscribe(unit=True), **ADMIN),
            T("member-wide", R, b_subscribe(unit=False), role=ADMIN_ROLE),
        ),
    ),
    (NT, "GET", "/v1/webhook-subscriptions"): Op(
        "notify:read",
        (
            T(
                "unit A's (in the query)",
                U,
                get(NT, "/v1/webhook-subscriptions?unit_id={ua}"),
                shows="{sub_a}",
                **ADMIN,
            ),
            T(
                "the caller's",
                U,
                get(NT, "/v1/webhook-subscriptions"),
                filters=True,
                shows="{sub_a}",
                **ADMIN,
            ),
        ),
    ),
    (NT, "GET", "/v1/webhook-subscriptions/{subscription_id}"): Op(
        "notify:read", (T("unit A's hook", U, get(NT, HOOK), shows="{sub_a}", **ADMIN),)
    ),
    (NT, "PATCH", "/v1/webhook-subscriptions/{subscription_id}"): Op(
        "notify:write",
        (
            T(
                "unit A's hook",
                U,
                send(NT, "PATCH", HOOK, {"enabled": True}),
                shows="{sub_a}",
                **ADMIN,
            ),
        ),
    ),
    (NT, "POST", "/v1/webhook-subscriptions/{subscription_id}/rotate-secret"): Op(
        "notify:write",
        (
            T(
                "unit A's hook",
                U,
                send(NT, "POST", HOOK + "/rotate-secret", {}),
                shows="{sub_a}",
                **ADMIN,
            ),
        ),
    ),
    (NT, "GET", "/v1/deliveries"): Op(
        "notify:read",
        (
            T(
                "dead letters",
                R,
                get(NT, "/v1/deliveries?status=dead"),
                role=ADMIN_ROLE,
                shows="{delivery0}",
            ),
        ),
    ),
    (NT, "POST", "/v1/deliveries/{delivery_id}/redeliver"): Op(
        "notify:write", (T("a dead delivery", R, b_redeliver, role=ADMIN_ROLE, fresh=True),)
    ),
    (NT, "GET", "/v1/units/{unit_id}/channels"): Op(
        "notify:read",
        (T("unit A's", U, get(NT, "/v1/units/{ua}/channels"), shows="{ua}", **ADMIN),),
    ),
    (NT, "PUT", "/v1/units/{unit_id}/channels"): Op(
        "notify:write",
        (
            T(
                "unit A's mailbox",
                R,
                send(
                    NT,
                    "PUT",
                    "/v1/units/{ua}/channels",
                    {"email": "a@vaxjo.example", "email_enabled": False},
                ),
                role=ADMIN_ROLE,
                shows="{ua}",
            ),
        ),
    ),
    (NT, "GET", "/v1/rules"): Op(
        "notify:read", (T("the rules", M, get(NT, "/v1/rules"), shows="referral-received"),)
    ),
    # last: the seeded hook goes (the dead deliveries above are its)
    (NT, "DELETE", "/v1/webhook-subscriptions/{subscription_id}"): Op(
        "notify:write", (T("unit A's hook", U, b_delete_subscription, fresh=True, **ADMIN),)
    ),
}


# --- OpenAPI ---------------------------------------------------------------------------

SCOPE_IN_DESCRIPTION = re.compile(r"scope `([a-z]+:[a-z]+)`", re.IGNORECASE)
"""How an operation's description names the scope it needs."""


def openapi_operations(tmp: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every operation of every service's OpenAPI, by (service, METHOD, path)."""
    ops: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name in SERVICES:
        url = f"sqlite+aiosqlite:///{tmp / f'{name}.db'}"  # never connected
        app = create_app(SPECS[name], settings_for(name, OWNER, url, "127.0.0.1:9"))
        for path, item in app.openapi()["paths"].items():
            for method, op in item.items():
                ops[(name, method.upper(), path)] = op
    return ops
