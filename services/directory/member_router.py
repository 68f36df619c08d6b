"""HTTP API of the member records: this member describes itself; every member is listed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.directory import members
from services.directory.members import MemberNotFound, MemberVersionMismatch
from services.directory.models import MemberRecord
from services.directory.repository import MemberRepository
from services.directory.router import IfMatchOptional, Reader, WriterWork
from services.directory.schemas import MemberIn, MemberOut
from shared.identity.identifiers import Organisationsnummer
from shared.identity.identifiers.kommun import counties
from shared.web.app import DbSession
from shared.web.errors import Forbidden, InvalidInput, problem_responses
from shared.web.etag import etag, if_match_version

member_router = APIRouter(prefix="/v1", tags=["members"])


def _out(record: MemberRecord) -> MemberOut:
    names = {c.code: c.name for c in counties()}
    return MemberOut(
        orgnr=record.orgnr,
        name=record.name,
        kind=record.kind,
        county_code=record.county_code,
        county_name=names.get(record.county_code, record.county_code),
        kommunkoder=list(record.kommunkoder),
        version=record.version,
        changed_at=record.changed_at,
    )


@member_router.put(
    "/member",
    response_model=MemberOut,
    summary="Describe your own member (name, kind, county, kommuner served)",
    description=(
        "Sets the record of the caller's member and publishes it on `vardkedja.directory`, "
        "so every member shows your name in overviews and routes referrals about a person "
        "living in a kommun you serve to your intake when none of your units names that "
        "kommun. Every kommunkod must lie in the county; a region may leave `kommunkoder` "
        "empty to serve every kommun of its county. Sending the same record again changes "
        "nothing (same version, no event). `If-Match` with the record's `ETag` guards "
        "against overwriting a change you have not seen. Scope `directory:write`."
    ),
    responses=problem_responses(Forbidden, MemberVersionMismatch),
)
async def put_own_member(
    body: MemberIn, work: WriterWork, response: Response, if_match: IfMatchOptional = None
) -> MemberOut:
    if work.caller is None or work.caller.org != work.member:
        raise Forbidden("only this instance's own member can describe itself here")
    record = await members.set_own_member(work, body, expected_version=if_match_version(if_match))
    response.headers["ETag"] = etag(record.version)
    return _out(record)


@member_router.get(
    "/members",
    response_model=list[MemberOut],
    summary="List the members of the federation",
    description=(
        "Every member whose record has reached this directory (yours included), by name: "
        "who they are, their county and the kommuner they serve. Scope `directory:read`."
    ),
    responses=problem_responses(Forbidden),
)
async def list_members(caller: Reader, session: DbSession) -> list[MemberOut]:
    return [_out(r) for r in await MemberRepository(session).all()]


@member_router.get(
    "/members/{orgnr}",
    response_model=MemberOut,
    summary="Get one member's record",
    description="The record of one member, by organisationsnummer. Scope `directory:read`.",
    responses=problem_responses(Forbidden, MemberNotFound, InvalidInput),
)
async def get_member(
    orgnr: Annotated[Organisationsnummer, Path(description="the member's organisationsnummer")],
    caller: Reader,
    session: DbSession,
    response: Response,
) -> MemberOut:
    record = await MemberRepository(session).get(orgnr)
    if record is None:
        raise MemberNotFound("no record of this member has reached the directory")
    response.headers["ETag"] = etag(record.version)
    return _out(record)
