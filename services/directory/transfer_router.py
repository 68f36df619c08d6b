"""HTTP API for bulk import/export of the member's own units and the printable overview.

Thin: media types, size limit, auth, then :mod:`services.directory.transfer` (import),
:mod:`services.directory.transfer_export` and :mod:`services.directory.overview` (built,
then printed by :mod:`services.directory.overview_render`).

``GET /v1/units/export`` shares its path prefix with ``GET /v1/units/{unit_id}`` of
:data:`services.directory.router.router`: include :data:`transfer_router` *before* that
router, or ``export`` is taken for a unit id (and answers 404).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Final

import yaml
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from services.directory import members, overview, overview_render, transfer, transfer_export
from services.directory.router import Reader, ReaderWork, WriterWork
from services.directory.schemas import UnitCreate
from services.directory.transfer import MAX_EXTERNAL_ID, ImportFormat, ImportInvalid, ImportReport
from services.directory.transfer_read import MAX_ROWS, YamlLoader
from shared.domain.calendar import to_local
from shared.identity.identifiers import Organisationsnummer
from shared.web.app import DbSession
from shared.web.errors import AppError, Forbidden, InvalidInput, NotFound, problem_responses
from shared.web.fields import QueryBool
from shared.web.nul import NUL, NUL_MESSAGE, NUL_RULE

transfer_router = APIRouter(prefix="/v1", tags=["import and export"])
overview_router = APIRouter(prefix="/v1", tags=["overview"])


MAX_IMPORT_BYTES: Final = 5 * 1024 * 1024
_CSV_TYPES: Final = frozenset({"text/csv"})
_YAML_TYPES: Final = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})
_CSV_MEDIA: Final = "text/csv; charset=utf-8"
_YAML_MEDIA: Final = "application/yaml; charset=utf-8"


class PayloadTooLarge(AppError):
    status = 413
    slug = "payload-too-large"
    title = "The file is too large"


class UnsupportedMediaType(AppError):
    status = 415
    slug = "unsupported-media-type"
    title = "Send the file as text/csv or application/yaml"


MemberNotInReplica = NotFound.kind(
    "member-not-in-replica", "This member has no units in this member's replica"
)


_CSV_EXAMPLE: Final = (
    "name,kind,kommunkoder,interventions,referral_kinds,contact_paths,opening_hours,external_id\n"
    "Socialtjänstens mottagning vuxna,socialtjanstens_mottagning,0780,"
    "utredning_sol;boendestod,kontaktbegaran;sip_kallelse,"
    '"Ansökan om boendestöd|inbox|;;Rådgivning till professionella|phone|0470-41 00 00",'
    "mon-fri 08:00-16:30,VX-17\n"
    "Boendestödet,boendestod,0780;0764,boendestod,,"
    '"Handlingar per post|postal_address|Box 1222, 351 12 Växjö",'
    '"mon-thu 08:00-16:30; fri 08:00-15:00; 2026-12-23 08:00-12:00",VX-18\n'
)
_YAML_EXAMPLE: Final = """\
- name: Socialtjänstens mottagning vuxna
  kind: socialtjanstens_mottagning
  external_id: VX-17
  kommunkoder: ["0780"]
  interventions: [utredning_sol, boendestod]
  referral_kinds: [kontaktbegaran, sip_kallelse]
  target_groups:
    - description: Vuxna med skadligt bruk eller beroende
      age_min: 18
  contact_paths:
    - reason: Ansökan om boendestöd
      channel: inbox
    - reason: Rådgivning till professionella
      channel: phone
      phone: 0470-41 00 00
  opening_hours:
    weekly:
      - {day: mon, opens: "08:00", closes: "16:30"}
      - {day: tue, opens: "08:00", closes: "16:30"}
"""


class UnitImportItem(UnitCreate):
    """One unit of a YAML import: the body of ``POST /v1/units``, with an optional
    ``external_id`` (your own system's id of the unit, reported back per line)."""

    external_id: str | None = Field(None, max_length=MAX_EXTERNAL_ID)


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` written out in place (it stands alone in the document)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[ref.removeprefix("#/$defs/")]), **resolve(rest)}
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _yaml_body() -> dict[str, Any]:
    """The YAML document as JSON Schema: a list of units (as YAML 1.2 reads it)."""
    item = _inline(UnitImportItem.model_json_schema(mode="validation"))
    item.pop("examples", None)
    # The limit of rows is told, not set as maxItems: a boundary case of 10,000 units would
    # cost every contract test run seconds for what the 422 too_many_rows already shows.
    return {
        "type": "array",
        "items": item,
        "description": "A YAML list of units, each shaped like the body of `POST /v1/units` "
        f"(plus an optional `external_id`), at most {MAX_ROWS:,} units and 5 MB. Anchors and "
        "aliases are refused; plain scalars follow YAML 1.2, so `0764` and `16:30` stay text.",
    }


_YAML_CONTENT: Final[dict[str, Any]] = {
    "schema": _yaml_body(),
    "examples": {"one unit": {"value": yaml.load(_YAML_EXAMPLE, Loader=YamlLoader)}},  # noqa: S506
}
_IMPORT_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": "The file: CSV (one unit per row, header first) or YAML (a list of "
        "units shaped like the body of `POST /v1/units`). UTF-8, at most 5 MB.",
        "content": {
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "CSV with a header row naming the columns (see the "
                    "operation's description), then one unit per row; `,` or `;` separated.",
                },
                "examples": {"two units": {"value": _CSV_EXAMPLE}},
            },
            "application/yaml": _YAML_CONTENT,
            "application/x-yaml": _YAML_CONTENT,
        },
    }
}


def _import_format(request: Request) -> ImportFormat:
    media_type, _, params = request.headers.get("content-type", "").partition(";")
    media_type = media_type.strip().lower()
    charset = next(
        (
            v.strip().strip('"').lower()
            for k, _, v in (p.partition("=") for p in params.split(";"))
            if k.strip().lower() == "charset"
        ),
        "utf-8",
    )
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("the file must be UTF-8")
    if media_type in _CSV_TYPES:
        return ImportFormat.CSV
    if media_type in _YAML_TYPES:
        return ImportFormat.YAML
    raise UnsupportedMediaType("send Content-Type text/csv, application/yaml or application/x-yaml")


async def _read_text(request: Request) -> str:
    too_large = PayloadTooLarge(f"at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB per file")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_IMPORT_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_IMPORT_BYTES:
            raise too_large
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput.field(
            "body", "encoding", 'the file is not UTF-8 (in Excel: save as "CSV UTF-8")'
        ) from exc
    if NUL in text:
        raise InvalidInput.field("body", NUL_RULE, NUL_MESSAGE)
    return text


@transfer_router.post(
    "/units/import",
    response_model=ImportReport,
    summary="Import units of your own member from CSV or YAML",
    description=(
        "Creates or updates many of your member's units at once, **all or nothing**: every "
        "row is checked with the rules of `POST /v1/units`, and if any row is bad nothing is "
        "stored and the 422 problem lists every bad field as `line <n>: <field>` (CSV: the "
        "row, the header being line 1; YAML: the item, the first being 1).\n\n"
        "Choose the format with `Content-Type`: `text/csv` or `application/yaml` "
        "(`application/x-yaml`). At most 5 MB, UTF-8.\n\n"
        "A row updates your unit with exactly the same `name` and `kind`; otherwise it "
        "creates one. A row that changes nothing leaves the unit (and its version) alone, so "
        "re-importing a file or an export is harmless. Every change is broadcast on "
        "`vardkedja.directory`. `?dry_run=true` checks the file and reports what would "
        "happen without storing anything.\n\n"
        "CSV columns: `name`, `kind`, `kommunkoder` (required), `mission`, `interventions`, "
        "`referral_kinds`, `contact_paths`, `opening_hours`, `valid_from`, `valid_to`, "
        "`external_id`. Lists are separated by `;`. Contact paths: "
        "`reason|channel|value` entries separated by `;;` (e.g. "
        "`Ansökan om boendestöd|inbox|;;Rådgivning|phone|0470-41 00 00`; a postal address "
        "as `street, postcode city`; `\\` escapes `|`, `;` and `\\`). Opening hours: entries "
        "separated by `;`, e.g. `mon-fri 08:00-16:30; closed_on_eves=false; "
        "2026-12-23 08:00-12:00; 2026-09-04 closed note=Personaldag`, or `always_open`. "
        "An optional column left out of the header keeps the unit's value on update; an "
        "empty cell clears it. Target groups, parent and capacity are YAML only (a CSV "
        "update keeps them).\n\n"
        "Scope `directory:write`."
    ),
    responses=problem_responses(Forbidden, ImportInvalid, PayloadTooLarge, UnsupportedMediaType),
    openapi_extra=_IMPORT_BODY,
)
async def import_units(
    request: Request,
    work: WriterWork,
    dry_run: Annotated[
        QueryBool, Query(description="check and report only; nothing is stored")
    ] = False,
) -> ImportReport:
    fmt = _import_format(request)
    text = await _read_text(request)
    return await transfer.import_units(work, text, fmt, dry_run=dry_run)


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


@transfer_router.get(
    "/units/export",
    response_class=Response,
    summary="Export your member's own units as CSV or YAML",
    description=(
        "Every unit of your member, in the import formats (CSV with a byte order mark for "
        "Excel). Importing the export again changes nothing. The CSV has no columns for "
        "target groups, parent and capacity; the YAML has every field. Scope "
        "`directory:read`."
    ),
    responses={
        200: {
            "description": "the units as a file",
            "content": {"text/csv": {}, "application/yaml": {}},
        },
        **problem_responses(Forbidden),
    },
)
async def export_units(
    caller: Reader,
    session: DbSession,
    format: Annotated[ImportFormat, Query(description="csv or yaml")] = ImportFormat.CSV,
) -> Response:
    text = await transfer_export.export_units(session, caller.org, format)
    media = _CSV_MEDIA if format is ImportFormat.CSV else _YAML_MEDIA
    return Response(
        text.encode("utf-8"),
        media_type=media,
        headers=_attachment(f"enheter-{caller.org}.{format.value}"),
    )


class OverviewFormat(enum.StrEnum):
    """The forms of the printable overview."""

    HTML = "html"
    PDF = "pdf"
    CSV = "csv"


@overview_router.get(
    "/overview/{orgnr}",
    response_class=Response,
    summary="Print a member's contact paths (Kontaktvägar)",
    description=(
        "The printable overview of one member's contact paths, like the Kronobarnsmodellen "
        "document: its active and temporarily closed units grouped by kontaktorsak (in "
        "Swedish order), each with the channel to use, kind, kommuner, opening hours and "
        "mission; entries not reviewed within the review period "
        "(`VK_DIRECTORY__REVIEW_AFTER_DAYS`, about 6 months) are marked. Built from this "
        "member's replica, so any member's overview can be printed. `format=html` (default) "
        "for the "
        "browser, `pdf` (A4) or `csv` (Excel, one row per kontaktorsak, unit and channel) "
        "as a download. Other members are shown by their organisationsnummer. "
        "Scope `directory:read`."
    ),
    responses={
        200: {
            "description": "the overview",
            "content": {
                "text/html": {},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {},
            },
        },
        **problem_responses(Forbidden, MemberNotInReplica),
    },
)
async def get_overview(
    orgnr: Annotated[Organisationsnummer, Path(description="the member's organisationsnummer")],
    work: ReaderWork,
    format: Annotated[OverviewFormat, Query(description="html, pdf or csv")] = OverviewFormat.HTML,
) -> Response:
    rows = await overview.load_member_units(session=work.session, member_orgnr=orgnr)
    if not rows:
        raise MemberNotInReplica("no units of this member have reached the replica")
    me = work.settings.member
    names = {me.orgnr: me.name, **await members.member_names(session=work.session)}
    name = overview.member_name(orgnr, names)
    built = overview.build_overview(
        rows,
        orgnr,
        name,
        to_local(work.now).date(),
        review_after_days=work.settings.directory.review_after_days,
    )
    if format is OverviewFormat.PDF:
        pdf = await run_in_threadpool(overview_render.render_pdf, built)  # CPU-bound
        return Response(
            pdf, media_type="application/pdf", headers=_attachment(f"kontaktvagar-{orgnr}.pdf")
        )
    if format is OverviewFormat.CSV:
        return Response(
            overview_render.render_csv(built).encode("utf-8"),
            media_type=_CSV_MEDIA,
            headers=_attachment(f"kontaktvagar-{orgnr}.csv"),
        )
    return Response(overview_render.render_html(built), media_type="text/html; charset=utf-8")
