"""FastAPI dependencies: who is calling, and may they do this?

The app factory puts ``app.state.settings`` (:class:`shared.config.Settings`) and
``app.state.token_verifier`` (:class:`~shared.identity.auth.tokens.TokenVerifier`) on the app.
Every guarded operation depends on :func:`current_caller` (directly, through
:data:`CurrentCaller` or through :func:`require_scopes`), which also enforces tenant
isolation: an instance serves only the member it belongs to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.identity.auth.tokens import Caller
from shared.identity.identifiers.hsa import is_hsa_id
from shared.web.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from shared.identity.auth.tokens import TokenVerifier


class _Member(Protocol):
    orgnr: str


class _MemberSettings(Protocol):
    """What this module reads of :class:`shared.config.Settings` (never imported here)."""

    member: _Member


UnitResolver = Callable[[str], Awaitable[str | None]]
"""This member's unit id for an HSA-id, or None (``app.state.unit_resolver``)."""

UnknownHsaId = Forbidden.kind(
    "unknown-hsa-id", "The token's unit claim is an HSA-id that no unit of this member has"
)


async def _unit_of(request: Request, caller: Caller) -> Caller:
    """The caller with its ``unit`` claim as a unit id: an HSA-id there is resolved through
    the service's copy of this member's units (``app.state.unit_resolver``) and kept as
    ``unit_hsa_id``. A unit id never has an HSA-id's shape (``SE`` + ten digits + ``-``),
    so the two cannot be mistaken. An HSA-id no unit of this member has (another member's
    included), or one a service cannot resolve, is refused (403 ``unknown-hsa-id``)."""
    if caller.unit is None or not is_hsa_id(caller.unit):
        return caller
    resolver: UnitResolver | None = getattr(request.app.state, "unit_resolver", None)
    if resolver is None:
        raise UnknownHsaId("this service keeps no copy of the directory to resolve it")
    unit_id = await resolver(caller.unit)
    if unit_id is None:
        raise UnknownHsaId("no unit of this member has the HSA-id")
    return caller.model_copy(update={"unit": unit_id, "unit_hsa_id": caller.unit})


bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description=(
        "An OAuth 2.0 bearer JWT (RS256/ES256) issued by the member's identity provider, "
        "with the claims iss, aud, sub, org (the member's organisationsnummer), scope, exp "
        "and iat, optionally unit (a unit id or the unit's HSA-id) and roles. Development: "
        "`vardkedja token --org ... --scope ...` mints one with the bundled development key."
    ),
)
"""The OpenAPI security scheme (the docs' Authorize button); yields None without a token."""


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    """The verified caller of this request, also stored on ``request.state.caller``.

    No or an invalid bearer token: :class:`~shared.web.errors.Unauthorized`. A token of another
    member (its ``org`` is not this instance's member): :class:`~shared.web.errors.Forbidden`.
    A ``unit`` claim holding an HSA-id is resolved to the unit's id (:func:`_unit_of`).
    ``request.state.caller`` is set only once both checks have passed, so a refused unit
    claim of a caller of this member is audited as a refusal (ADR 0010).
    """
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing bearer token")
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    settings: _MemberSettings | None = getattr(request.app.state, "settings", None)
    if verifier is None or settings is None:
        raise RuntimeError("app.state.token_verifier and app.state.settings must be set")
    caller = await verifier.verify(credentials.credentials)
    if caller.org != settings.member.orgnr:
        raise Forbidden("the token belongs to another member")
    request.state.caller = caller
    caller = request.state.caller = await _unit_of(request, caller)
    return caller


CurrentCaller = Annotated[Caller, Depends(current_caller)]
"""Annotate an endpoint parameter with this to receive the verified caller."""


def require_scopes(*scopes: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency that returns the caller if the token grants every one of ``scopes``.

    Use as ``caller: Annotated[Caller, Depends(require_scopes("directory:write"))]`` or in
    ``dependencies=[Depends(require_scopes(...))]``. A missing scope answers 403 naming it.
    """
    for scope in scopes:
        if not scope or scope != scope.strip() or " " in scope:
            raise ValueError(f"invalid scope name {scope!r}")
    needed = tuple(dict.fromkeys(scopes))

    async def _require_scopes(caller: CurrentCaller) -> Caller:
        missing = [s for s in needed if not caller.has_scope(s)]
        if missing:
            raise Forbidden(
                f"missing scope: {' '.join(missing)}",
                headers={
                    "WWW-Authenticate": (
                        f'Bearer realm="vardkedja", error="insufficient_scope", '
                        f'scope="{" ".join(needed)}"'
                    )
                },
            )
        return caller

    _require_scopes.__name__ = "require_scopes_" + "_".join(s.replace(":", "_") for s in needed)
    return _require_scopes


def ensure_unit(caller: Caller, unit_id: str, *, cross_unit_role: str = "member_admin") -> None:
    """Allow unit-scoped data only to the caller's own unit or to holders of ``cross_unit_role``.

    Raises :class:`~shared.web.errors.Forbidden` otherwise.
    """
    if caller.unit is not None and caller.unit == unit_id:
        return
    if caller.has_role(cross_unit_role):
        return
    raise Forbidden("the data belongs to another unit")


def ensure_member(caller: Caller, orgnr: str) -> None:
    """Raise :class:`~shared.web.errors.Forbidden` unless the caller acts for member ``orgnr``.

    ``orgnr`` is normalised first, so ``2120000647`` and ``212000-0647`` are the same member.
    """
    from shared.identity.identifiers import normalise_orgnr

    try:
        wanted = normalise_orgnr(orgnr)
    except (ValueError, TypeError):
        raise Forbidden("the data belongs to another member") from None
    if caller.org != wanted:
        raise Forbidden("the data belongs to another member")
