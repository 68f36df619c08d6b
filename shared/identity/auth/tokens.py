"""Bearer tokens: the contract every integration signs to, minting (dev) and verification.

Token format
============

Every request to a vardkedja service carries ``Authorization: Bearer <token>`` (OAuth 2.0
bearer token, RFC 6750). The token is a JWS-signed JWT (RFC 7519) in compact serialisation.

Header

``alg``
    ``RS256`` or ``ES256`` by default; exactly the algorithms listed in
    ``VK_AUTH__ALGORITHMS``, which may only name asymmetric algorithms (RS*, PS*, ES*).
    ``none`` and the HMAC algorithms (HS*) are always refused.
``kid``
    The id of the signing key. With a JWKS (``VK_AUTH__JWKS_URL``) it is the ``kid`` of a
    key in the set. Keys configured as PEM (``VK_AUTH__PUBLIC_KEYS``) and the development
    key are known by their RFC 7638 JWK thumbprint (SHA-256). Recommended; a token without
    ``kid`` is checked against every configured key. ``jku``, ``x5u``, ``jwk`` and other
    key-carrying headers are ignored: keys only ever come from the configuration.

Claims (required: ``iss``, ``aud``, ``sub``, ``org``, ``scope``, ``exp``, ``iat``)

``iss`` (string)
    Must equal ``VK_AUTH__ISSUER`` (development: ``vardkedja-dev``).
``aud`` (string or list of strings)
    Must be, or contain, ``VK_AUTH__AUDIENCE`` (default ``vardkedja``).
``sub`` (string)
    The user or system id: opaque and stable, written to the audit log. It must not be a
    personnummer or samordningsnummer; such tokens are refused.
``org`` (string)
    The organisationsnummer of the member (huvudman) the caller acts for, ``NNNNNN-NNNN``
    (the digits without hyphen are accepted and normalised). It must be a valid
    organisationsnummer and must equal the organisationsnummer of the member whose instance
    is called: an instance serves only its own member (403 otherwise).
``unit`` (string, optional)
    The id of the caller's unit (enhet) within the member; unit-scoped data is limited to it
    unless the caller has the role ``member_admin``. It may instead be the unit's HSA-id
    (``SE2321000065-E000000000101``): the service resolves it to the unit's id through its
    copy of this member's directory and refuses (403 ``unknown-hsa-id``) an HSA-id no unit
    of this member has (ADR 0006, amendment; ADR 0028).
``scope`` (string)
    Space-separated scopes: ``directory:read directory:write consent:read consent:write
    referral:read referral:write notify:read notify:write audit:read``. Unknown scopes are
    ignored; an operation names the scope it needs and answers 403 without it.
``roles`` (list of strings, optional)
    Roles, e.g. ``member_admin``.
``exp``, ``iat``, ``nbf`` (optional) (NumericDate, integer seconds)
    Validity. ``VK_AUTH__LEEWAY_SECONDS`` (default 30) of clock skew is tolerated; a token
    whose ``iat`` or ``nbf`` is in the future is not yet valid.
``jti`` (string, optional)
    The token id; kept on the caller for the audit log.

Failures answer ``401`` (problem+json, ``WWW-Authenticate: Bearer``) with a short reason —
``token expired``, ``token not yet valid``, ``bad signature``, ``wrong audience``,
``wrong issuer``, ``malformed token``, ``algorithm not allowed``, ``unknown key``,
``missing claim 'x'``, ``invalid claim 'x'`` — never with the token's text. When the keys
of a JWKS cannot be fetched at all the answer is ``503``.

Key sources of :class:`TokenVerifier`: ``VK_AUTH__PUBLIC_KEYS`` (inline PEM or file paths),
``VK_AUTH__JWKS_URL`` (cached for 10 minutes; a token with an unknown ``kid`` triggers a
re-fetch, at most one fetch per 30 seconds) and, only while ``VK_AUTH__ALLOW_DEV_KEY`` is
true, the bundled development key (see ``shared/identity/auth/dev/README.md``). With
``allow_dev_key`` false the development key is refused wherever it appears.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.types import Options
from pydantic import BaseModel, Field

from shared.identity.auth.keys import (
    PublicKey,
    algorithm_for_key,
    dev_private_key_pem,
    dev_public_key_pem,
    is_dev_key,
    jwk_thumbprint,
    key_fits_algorithm,
    load_private_key,
    load_public_key,
)
from shared.web.errors import ServiceUnavailable, Unauthorized

if TYPE_CHECKING:
    from shared.identity.auth.settings import AuthSettings

log = logging.getLogger("vardkedja.auth")

REQUIRED_CLAIMS: tuple[str, ...] = ("iss", "aud", "sub", "org", "scope", "exp", "iat")
"""Claims every token must carry."""

ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
"""The only algorithms ``VK_AUTH__ALGORITHMS`` may list."""

MAX_TOKEN_LENGTH = 16 * 1024
"""Longer bearer values are refused before any parsing."""

TOKEN_CACHE_SIZE = 4096
"""Verified tokens kept per verifier (oldest dropped first)."""
TOKEN_CACHE_TTL_SECONDS = 60.0
"""A verified token is re-verified at least this often, whatever its ``exp``."""


class Caller(BaseModel, frozen=True):
    """The authenticated caller of a request, built from a verified token."""

    sub: str = Field(description="user or system id (opaque)")
    org: str = Field(description="the caller's member organisationsnummer, NNNNNN-NNNN")
    unit: str | None = Field(default=None, description="the caller's unit id, if any")
    unit_hsa_id: str | None = Field(
        default=None, description="the HSA-id the token named the unit by, if it did"
    )
    scopes: frozenset[str] = Field(default_factory=frozenset)
    roles: frozenset[str] = Field(default_factory=frozenset)
    token_id: str | None = Field(default=None, description="the token's jti")

    def has_scope(self, scope: str) -> bool:
        """Whether the token granted ``scope``."""
        return scope in self.scopes

    def has_role(self, role: str) -> bool:
        """Whether the caller has ``role``."""
        return role in self.roles


# --- minting (development, tests, the ``vardkedja token`` command) -----------------------


@dataclass(frozen=True)
class Signer:
    """Who signs a minted token, and for whom: the private key (inline PEM or a file path;
    None: the bundled development key), the ``kid`` (None: the key's RFC 7638 thumbprint),
    the issuer and the audience."""

    private_key_pem: str | None = None
    kid: str | None = None
    issuer: str = "vardkedja-dev"
    audience: str = "vardkedja"


DEV_SIGNER = Signer()


def mint_token(
    *,
    sub: str,
    org: str,
    scopes: Iterable[str],
    unit: str | None = None,
    roles: Iterable[str] = (),
    ttl_seconds: int = 3600,
    signer: Signer = DEV_SIGNER,
    now: datetime | None = None,
) -> str:
    """Sign a token in the format of this module (RS256 for RSA keys, ES* for EC keys).

    Signs with the bundled development key unless ``signer`` names another
    (:class:`Signer`). ``now`` (default: the current time; naive means UTC) sets ``iat``,
    and ``exp`` is ``now + ttl_seconds``. The claims are not validated here (the verifier
    does that), so tests can mint bad tokens.
    """
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    key = load_private_key(signer.private_key_pem or dev_private_key_pem())
    issued = now or datetime.now(UTC)
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=UTC)
    iat = int(issued.timestamp())
    scope_list = scopes.split() if isinstance(scopes, str) else list(scopes)
    role_list = [roles] if isinstance(roles, str) else list(roles)
    payload: dict[str, Any] = {
        "iss": signer.issuer,
        "aud": signer.audience,
        "sub": sub,
        "org": org,
        "scope": " ".join(dict.fromkeys(scope_list)),
        "iat": iat,
        "exp": iat + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if unit is not None:
        payload["unit"] = unit
    if role_list:
        payload["roles"] = list(dict.fromkeys(role_list))
    return jwt.encode(
        payload,
        key,
        algorithm=algorithm_for_key(key),
        headers={"kid": signer.kid or jwk_thumbprint(key), "typ": "JWT"},
    )


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    kid: str | None
    key: PublicKey
    alg: str | None  # a JWK's "alg" restricts the key to that algorithm
    source: str  # "configured" | "dev" | "jwks"

    def fits(self, alg: str) -> bool:
        return (self.alg is None or self.alg == alg) and key_fits_algorithm(self.key, alg)


class _NoKeyVerifiedError(Exception):
    """No candidate key verified the signature."""


def _is_personnummer(value: str) -> bool:
    """Whether ``value`` is a valid personnummer or samordningsnummer (in any accepted form)."""
    from shared.identity.identifiers import normalise_personnummer

    try:
        normalise_personnummer(value)
    except ValueError:
        return False
    return True


def _reason(exc: jwt.PyJWTError) -> str:
    """A short, token-free reason for a PyJWT failure."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token not yet valid"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim '{exc.claim}'"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "invalid claim 'iat'"
    if isinstance(exc, jwt.exceptions.InvalidSubjectError):
        return "invalid claim 'sub'"
    if isinstance(exc, jwt.exceptions.InvalidJTIError):
        return "invalid claim 'jti'"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.DecodeError):
        return "malformed token"
    if isinstance(exc, jwt.InvalidKeyError):
        return "unusable key"
    return "invalid token"


class TokenVerifier:
    """Verifies bearer tokens against the configured keys and turns them into a :class:`Caller`.

    One instance per process (``app.state.token_verifier``); it is safe to share between
    concurrent requests. PEM keys are loaded at construction, so a wrong key path or an
    unsupported algorithm in the settings fails at start (:class:`ValueError`).
    """

    JWKS_TTL_SECONDS: float = 600.0
    """How long a fetched JWKS is used before it is fetched again."""
    JWKS_MIN_INTERVAL_SECONDS: float = 30.0
    """At most one JWKS fetch per this interval (unknown ``kid``, expiry, failures)."""
    JWKS_TIMEOUT_SECONDS: float = 5.0

    def __init__(
        self, settings: AuthSettings, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        """Load the configured keys. ``http_client`` is used for the JWKS when given."""
        not_allowed = [a for a in settings.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if not_allowed or not settings.algorithms:
            raise ValueError(
                "VK_AUTH__ALGORITHMS may only list asymmetric algorithms "
                f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); got {not_allowed or 'none'}"
            )
        self._settings = settings
        self._algorithms = frozenset(settings.algorithms)
        self._http_client = http_client
        self._clock: Callable[[], float] = time.monotonic
        self._wall: Callable[[], float] = time.time  # for exp/nbf of cached tokens
        self._static: list[_Key] = []
        for i, value in enumerate(settings.public_keys):
            try:
                key = load_public_key(value)
            except ValueError as exc:
                raise ValueError(f"VK_AUTH__PUBLIC_KEYS[{i}]: {exc}") from None
            if is_dev_key(key) and not settings.allow_dev_key:
                log.warning("ignoring the development key in VK_AUTH__PUBLIC_KEYS[%d]", i)
                continue
            self._static.append(_Key(jwk_thumbprint(key), key, None, "configured"))
        if settings.allow_dev_key:
            dev = load_public_key(dev_public_key_pem())
            self._static.append(_Key(jwk_thumbprint(dev), dev, None, "dev"))
        self._jwks_url = settings.jwks_url
        self._jwks: list[_Key] = []
        self._jwks_loaded_at: float | None = None
        self._jwks_attempt_at: float | None = None
        self._lock = asyncio.Lock()
        # Verified tokens by their exact text: (caller, valid from, valid until) in wall-
        # clock seconds, the leeway applied as jwt.decode applies it. A client sends the
        # same token on every request, and verifying a signature costs more than the rest
        # of a small request. Emptied whenever the JWKS keys are reloaded.
        self._verified: dict[str, tuple[Caller, float, float]] = {}

    # -- public ---------------------------------------------------------------------------

    async def verify(self, token: str) -> Caller:
        """Verify a bearer token and return its caller.

        Raises :class:`~shared.web.errors.Unauthorized` with a short reason when the token is
        not acceptable, and :class:`~shared.web.errors.ServiceUnavailable` when the token's key
        could only come from a JWKS that has never been fetched successfully.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized("malformed token")
        if self._jwks_url and self._jwks_expired():
            await self._fetch_jwks()
        cached = self._verified.get(token)
        if cached is not None:
            caller, valid_from, valid_until = cached
            if valid_from <= self._wall() < valid_until:
                return caller
            del self._verified[token]  # verified again below, for the exact reason
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError):
            raise Unauthorized("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise Unauthorized("algorithm not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("malformed token")

        candidates = await self._candidates(kid, alg)
        try:
            claims = self._decode(token, alg, candidates)
        except _NoKeyVerifiedError:
            if self._jwks_url and self._jwks_loaded_at is None:
                raise ServiceUnavailable("the token signing keys cannot be fetched") from None
            raise Unauthorized("unknown key" if not candidates else "bad signature") from None
        caller = self._caller(claims)
        self._remember(token, caller, claims)
        return caller

    async def refresh(self) -> bool:
        """Fetch the JWKS now (e.g. at start); True if usable keys were loaded."""
        if not self._jwks_url:
            return False
        return await self._fetch_jwks(force=True)

    def _remember(self, token: str, caller: Caller, claims: dict[str, Any]) -> None:
        """Keeps a verified token until its ``exp`` (or the cache's TTL, if sooner)."""
        leeway = self._settings.leeway_seconds
        try:
            starts = max(float(claims["iat"]), float(claims.get("nbf", claims["iat"])))
            ends = float(claims["exp"])
        except (TypeError, ValueError):
            return
        until = min(ends + leeway, self._wall() + TOKEN_CACHE_TTL_SECONDS)
        while len(self._verified) >= TOKEN_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (caller, starts - leeway, until)

    # -- keys -----------------------------------------------------------------------------

    def _find(self, kid: str) -> _Key | None:
        for key in (*self._static, *self._jwks):
            if key.kid == kid:
                return key
        return None

    async def _candidates(self, kid: str | None, alg: str) -> list[_Key]:
        if self._jwks_url and self._jwks_expired():
            await self._fetch_jwks()
        if kid is None:
            return [k for k in (*self._static, *self._jwks) if k.fits(alg)]
        found = self._find(kid)
        if found is None and self._jwks_url:
            # Perhaps the issuer rotated its keys: fetch again (rate-limited).
            await self._fetch_jwks()
            found = self._find(kid)
        if found is None:
            log.info("token refused: unknown kid", extra={"kid": kid[:100]})
            return []
        if not found.fits(alg):
            raise Unauthorized("algorithm not allowed")
        return [found]

    def _jwks_expired(self) -> bool:
        loaded = self._jwks_loaded_at
        return loaded is None or self._clock() - loaded >= self.JWKS_TTL_SECONDS

    async def _fetch_jwks(self, *, force: bool = False) -> bool:
        """Fetch and parse the JWKS unless one was attempted within the minimum interval."""
        url = self._jwks_url
        assert url is not None
        async with self._lock:
            now = self._clock()
            last = self._jwks_attempt_at
            if not force and last is not None and now - last < self.JWKS_MIN_INTERVAL_SECONDS:
                return False
            self._jwks_attempt_at = now
            try:
                data = await self._get_json(url)
                keys = self._parse_jwks(data)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning(
                    "cannot fetch the JWKS; keeping %d cached keys",
                    len(self._jwks),
                    extra={"error_type": type(exc).__name__},
                )
                return False
            self._jwks = keys
            self._jwks_loaded_at = self._clock()
            self._verified.clear()  # a key may be gone: verify every token again
            log.info("loaded %d signing keys from the JWKS", len(keys))
            return True

    async def _get_json(self, url: str) -> Any:
        headers = {"Accept": "application/json, application/jwk-set+json"}
        if self._http_client is not None:
            response = await self._http_client.get(
                url, headers=headers, timeout=self.JWKS_TIMEOUT_SECONDS
            )
        else:
            async with httpx.AsyncClient(timeout=self.JWKS_TIMEOUT_SECONDS) as client:
                response = await client.get(url, headers=headers)
        response.raise_for_status()
        return response.json()

    def _parse_jwks(self, data: Any) -> list[_Key]:
        """The usable public signing keys of a JWKS document (others are skipped)."""
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError("the JWKS has no 'keys' list")
        keys: list[_Key] = []
        for jwk in data["keys"]:
            if not isinstance(jwk, dict):
                continue
            kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
            if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("RSA", "EC"):
                continue
            if "d" in jwk:  # a private key published by mistake: never use it
                log.warning("skipping a JWKS entry that contains private key material")
                continue
            try:
                key = jwt.PyJWK(jwk).key
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                log.warning("skipping an unusable JWKS key", extra={"kid": kid})
                continue
            if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                continue
            if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
                log.warning("skipping a short RSA key in the JWKS", extra={"kid": kid})
                continue
            if not self._settings.allow_dev_key and is_dev_key(key):
                log.warning("ignoring the development key in the JWKS")
                continue
            alg = jwk.get("alg") if isinstance(jwk.get("alg"), str) else None
            keys.append(_Key(kid, key, alg, "jwks"))
        if not keys:
            raise ValueError("the JWKS has no usable signing key")
        return keys

    # -- claims ---------------------------------------------------------------------------

    def _decode(self, token: str, alg: str, candidates: list[_Key]) -> dict[str, Any]:
        options: Options = {
            "require": list(REQUIRED_CLAIMS),
            "enforce_minimum_key_length": True,
        }
        for candidate in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[alg],
                    audience=self._settings.audience,
                    issuer=self._settings.issuer,
                    leeway=self._settings.leeway_seconds,
                    options=options,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise Unauthorized(_reason(exc)) from None
            return claims
        raise _NoKeyVerifiedError

    def _caller(self, claims: dict[str, Any]) -> Caller:
        from shared.identity.identifiers import normalise_orgnr

        sub = claims["sub"]
        if not isinstance(sub, str) or not sub.strip() or _is_personnummer(sub):
            raise Unauthorized("invalid claim 'sub'")
        org = claims["org"]
        if not isinstance(org, str):
            raise Unauthorized("invalid claim 'org'")
        try:
            org = normalise_orgnr(org)
        except (ValueError, TypeError):
            raise Unauthorized("invalid claim 'org'") from None
        scope = claims["scope"]
        if not isinstance(scope, str):
            raise Unauthorized("invalid claim 'scope'")
        unit = claims.get("unit")
        if unit is not None and (not isinstance(unit, str) or not unit):
            raise Unauthorized("invalid claim 'unit'")
        roles = claims.get("roles")
        if roles is None:
            roles = []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized("invalid claim 'roles'")
        jti = claims.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise Unauthorized("invalid claim 'jti'")
        return Caller(
            sub=sub,
            org=org,
            unit=unit,
            scopes=frozenset(scope.split()),
            roles=frozenset(roles),
            token_id=jti,
        )
