"""HTTP API of the follow-up indicators (aggregates, no personal data)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.referral import indicators
from services.referral.api import Reader
from shared.data.db import utcnow
from shared.domain.calendar import to_local
from shared.web.app import Ctx, DbSession
from shared.web.errors import Forbidden, InvalidInput, problem_responses
from shared.web.fields import IsoDate

indicators_router = APIRouter(prefix="/v1", tags=["referrals"])


@indicators_router.get(
    "/indicators",
    summary="Follow-up indicators (aggregates, no personal data)",
    description=(
        "Per kind, outgoing and incoming: counts, acknowledged and acknowledged in time, "
        "hours to acknowledgement (median, p90), final statuses and rounds of "
        "komplettering (`komplettering_rounds`, `with_komplettering`); days from a "
        "vårdkedjeremiss to its first meeting; discharge plannings with a SIP before the "
        "discharge date; plan actions started on time, late or not at all, ended, and "
        "ended without every party told; follow-ups held on time; days from a remissmöte "
        "to the first action started; late actions escalated to the plans' coordinating "
        "units (`escalations`, by the member owning the action); outcomes of "
        "kontaktbegäran and their receivers' decisions (`kontaktbegaran_decisions`); HVB "
        "notifications with a SIP convened (in time, held by the placement) and placements "
        "per person-year (`hvb`); discharges recorded, unplanned and with the recipients' "
        "actions started by the day (`discharges`). For the whole member or one `unit_id`, "
        "over the days `from` to `to` (default: the last 30 days). `format=csv` for a "
        "spreadsheet. Scope `referral:read`."
    ),
    responses={
        200: {
            "content": {
                "application/json": {"example": {"outgoing": {}, "incoming": {}}},
                "text/csv": {"example": "indicator,direction,kind,value\r\n"},
            }
        },
        **problem_responses(Forbidden),
    },
)
async def get_indicators(
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    from_: Annotated[IsoDate | None, Query(alias="from", description="first day")] = None,
    to: Annotated[IsoDate | None, Query(description="last day")] = None,
    unit_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] = None,
    format: Annotated[str, Query(pattern=r"^(json|csv)$")] = "json",
) -> Response:
    until = to or to_local(utcnow()).date()
    since = from_ or until - dt.timedelta(days=29)
    if since > until:
        raise InvalidInput.field("from", "period_order", "from is after to")
    data = await indicators.compute(
        session=session,
        member=ctx.settings.member.orgnr,
        unit_id=unit_id,
        since=since,
        until=until,
        sip_working_days=ctx.settings.referral.sip_working_days,
    )
    if format == "csv":
        return Response(
            indicators.as_csv(data).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="indikatorer.csv"'},
        )
    return Response(json.dumps(data).encode(), media_type="application/json")
