"""HTTP API of how a deadline is counted (no personal data, nothing of any unit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.referral import deadline_count
from services.referral.api import Reader
from services.referral.codes import Urgency
from services.referral.schemas import DeadlineCountOut, SkippedDayOut
from shared.domain.kinds import ReferralKind
from shared.web.app import Ctx
from shared.web.errors import Forbidden, InvalidInput, problem_responses
from shared.web.fields import IsoAwareDatetime

deadlines_router = APIRouter(prefix="/v1", tags=["referrals"])

MAX_WORKING_DAYS = 60
MAX_HOURS = 24 * 14

_ONE_WAY = "count by exactly one of `working_days`, `hours` or `kind`"


@deadlines_router.get(
    "/deadlines/count",
    summary="Count a deadline as the referral service does",
    description=(
        "When a deadline counted from `from` is due, and which days the count skipped and "
        "why. Counted by `working_days` (Swedish working days after the day of `from` in "
        "Sweden, 0: that day itself; Saturdays, Sundays, public holidays — with their Swedish "
        "names, `Juldagen` — and the eves midsommarafton, julafton and nyårsafton are not "
        "counted; due at 23:59 Swedish time on the last day), by `hours` (day and night, "
        "nothing skipped), or by `kind` and `urgency`: the acknowledgement deadline "
        "(`acknowledge_by`, `acknowledge_due_at`) a referral of that kind sent at `from` gets "
        "from this member — its working-day table (`VK_REFERRAL__ACKNOWLEDGE_WORKING_DAYS`), "
        "or the kind's hours (an orosanmälan: 24/4/1 hours by urgency). The same code sets "
        "the deadlines of referrals sent. Exactly one of `working_days`, `hours` and `kind` "
        "(`one_of`). No personal data. Scope `referral:read` (the least of the service: any "
        "user of it may count)."
    ),
    response_model=DeadlineCountOut,
    responses={
        **problem_responses(Forbidden),
    },
)
async def count_deadline(
    caller: Reader,
    ctx: Ctx,
    from_: Annotated[
        IsoAwareDatetime,
        Query(
            alias="from",
            description="the instant counted from, with its UTC offset (`+01:00`, `Z`)",
            examples=["2026-12-23T10:00:00+01:00"],
        ),
    ],
    working_days: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_WORKING_DAYS,
            description=f"Swedish working days to count (0–{MAX_WORKING_DAYS})",
            examples=[2],
        ),
    ] = None,
    hours: Annotated[
        int | None,
        Query(ge=0, le=MAX_HOURS, description=f"hours to count (0–{MAX_HOURS})", examples=[4]),
    ] = None,
    kind: Annotated[
        ReferralKind | None,
        Query(description="the kind whose acknowledgement deadline to count"),
    ] = None,
    urgency: Annotated[
        Urgency, Query(description="the urgency of `kind` (only with `kind`)")
    ] = Urgency.NORMAL,
) -> DeadlineCountOut:
    given = [name for name, v in (("working_days", working_days), ("hours", hours),
                                  ("kind", kind)) if v is not None]  # fmt: skip
    if len(given) != 1:
        raise InvalidInput.field(given[1] if given else "working_days", "one_of", _ONE_WAY)
    if kind is not None:
        counted = deadline_count.count_for_kind(ctx.settings, kind, urgency, from_)
    elif hours is not None:
        counted = deadline_count.count_hours(from_, hours)
    else:
        assert working_days is not None
        counted = deadline_count.count_working_days(from_, working_days)
    return DeadlineCountOut(
        from_=counted.start,
        kind=kind,
        urgency=urgency if kind is not None else None,
        working_days=counted.working_days,
        hours=counted.hours,
        due_on=counted.due_on,
        due_at=counted.due_at,
        skipped=[SkippedDayOut(date=s.day, reason=s.reason, name=s.name) for s in counted.skipped],
    )
