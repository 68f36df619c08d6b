"""Bearer-token authentication: the token contract, key sources and the FastAPI guards."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI, Request

from shared.config import AuthSettings, ProductionConfigError, Settings, check_production
from shared.identity.auth import (
    REQUIRED_CLAIMS,
    Caller,
    Signer,
    TokenVerifier,
    dev_private_key_pem,
    dev_public_key_pem,
    ensure_member,
    ensure_unit,
    is_dev_public_key,
    jwk_thumbprint,
    load_private_key,
    mint_token,
    public_jwk,
    require_scopes,
)
from shared.identity.auth.keys import dev_public_key_path
from shared.web.errors import (
    PROBLEM_BASE,
    PROBLEM_JSON,
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
    install_problem_handlers,
)

KRONOBERG = "232100-0065"
VAXJO = "212000-0647"
ALVESTA = "212000-0613"
ALL_SCOPES = ["directory:read", "directory:write", "consent:read"]
PATH = "/v1/things"


# --- helpers ------------------------------------------------------------------------------


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


DEV_KID = jwk_thumbprint(load_private_key(dev_private_key_pem()))


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid claim set for Växjö's instance; ``name=None`` drops a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "vardkedja-dev",
        "aud": "vardkedja",
        "sub": "user-42",
        "org": VAXJO,
        "scope": "directory:read directory:write",
        "iat": now,
        "exp": now + 600,
        "jti": "t-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    payload: dict[str, Any],
    *,
    key: str | None = None,
    alg: str = "RS256",
    kid: str | None = DEV_KID,
) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key or dev_private_key_pem(), algorithm=alg, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{head}.{body}.{b64url(signature)}"


def vaxjo_settings(**auth: Any) -> Settings:
    return Settings(
        env="development",
        member={"orgnr": VAXJO, "name": "Växjö kommun", "kind": "kommun"},
        auth=AuthSettings(**auth),
    )


def build_app(settings: Settings, verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    app.state.token_verifier = verifier
    install_problem_handlers(app)

    @app.get(PATH)
    async def things(
        request: Request,
        caller: Annotated[Caller, Depends(require_scopes("directory:write"))],
    ) -> dict[str, Any]:
        return {
            "caller": caller.model_dump(mode="json"),
            "stored": request.state.caller == caller,
        }

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(
    response: httpx.Response, status: int, detail: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    slug = {401: "unauthorized", 403: "forbidden", 503: "unavailable"}[status]
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["instance"] == PATH
    if detail is not None:
        assert detail in body["detail"]
    return body


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    return vaxjo_settings()


@pytest.fixture
def verifier(settings: Settings) -> TokenVerifier:
    return TokenVerifier(settings.auth)


@pytest.fixture
async def client(settings: Settings, verifier: TokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings, verifier)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


class JwksServer:
    """A real HTTP server on 127.0.0.1 serving a mutable JWKS document."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.hits = 0
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                body = json.dumps(server.document).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"

    def serve(self, *keys: tuple[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]) -> None:
        entries = []
        for kid, key in keys:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))  # type: ignore[arg-type]
            jwk.update(kid=kid, use="sig", alg="RS256")
            entries.append(jwk)
        self.document = {"keys": entries}


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)


# --- the guarded endpoint -----------------------------------------------------------------


async def test_valid_token_gives_the_caller(client: httpx.AsyncClient) -> None:
    token = mint_token(
        sub="user-42", org=VAXJO, scopes=ALL_SCOPES, unit="unit-7", roles=["handläggare"]
    )
    response = await client.get(PATH, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    caller = body["caller"]
    assert caller["sub"] == "user-42"
    assert caller["org"] == VAXJO
    assert caller["unit"] == "unit-7"
    assert sorted(caller["scopes"]) == sorted(ALL_SCOPES)
    assert caller["roles"] == ["handläggare"]
    assert caller["token_id"]
    assert body["stored"] is True


async def test_org_without_hyphen_is_normalised(client: httpx.AsyncClient) -> None:
    token = mint_token(sub="user-42", org="2120000647", scopes=["directory:write"])
    response = await client.get(PATH, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["caller"]["org"] == VAXJO


async def test_no_token_is_401_with_www_authenticate(client: httpx.AsyncClient) -> None:
    response = await client.get(PATH)
    assert_problem(response, 401, "missing bearer token")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_other_scheme_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(PATH, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_problem(response, 401, "missing bearer token")


async def test_token_of_another_member_is_403(client: httpx.AsyncClient) -> None:
    token = mint_token(sub="user-42", org=KRONOBERG, scopes=ALL_SCOPES)
    response = await client.get(PATH, headers=bearer(token))
    assert_problem(response, 403, "the token belongs to another member")


async def test_expired_token_is_401(client: httpx.AsyncClient) -> None:
    token = mint_token(
        sub="user-42",
        org=VAXJO,
        scopes=ALL_SCOPES,
        ttl_seconds=600,
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    response = await client.get(PATH, headers=bearer(token))
    body = assert_problem(response, 401, "token expired")
    assert token not in json.dumps(body)


async def test_expiry_within_leeway_is_accepted(client: httpx.AsyncClient) -> None:
    now = int(time.time())
    token = sign(claims(iat=now - 100, exp=now - 10))
    response = await client.get(PATH, headers=bearer(token))
    assert response.status_code == 200


async def test_token_issued_in_the_future_is_not_yet_valid(client: httpx.AsyncClient) -> None:
    token = mint_token(
        sub="user-42", org=VAXJO, scopes=ALL_SCOPES, now=datetime.now(UTC) + timedelta(hours=1)
    )
    response = await client.get(PATH, headers=bearer(token))
    assert_problem(response, 401, "token not yet valid")


async def test_nbf_in_the_future_is_not_yet_valid(client: httpx.AsyncClient) -> None:
    token = sign(claims(nbf=int(time.time()) + 3600))
    response = await client.get(PATH, headers=bearer(token))
    assert_problem(response, 401, "token not yet valid")


async def test_signature_of_another_key_is_401(client: httpx.AsyncClient) -> None:
    other = private_pem(rsa_key())
    # Claims the development key's kid, but is signed by another key.
    token = sign(claims(), key=other, kid=DEV_KID)
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "bad signature")
    # Without kid every configured key is tried; none matches.
    token = sign(claims(), key=other, kid=None)
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "bad signature")
    # With its own kid (the default) the key is simply unknown.
    token = mint_token(
        sub="user-42", org=VAXJO, scopes=ALL_SCOPES, signer=Signer(private_key_pem=other)
    )
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "unknown key")


async def test_tampered_payload_is_401(client: httpx.AsyncClient) -> None:
    token = mint_token(sub="user-42", org=VAXJO, scopes=["directory:read"])
    head, _, sig = token.split(".")
    forged = b64url(json.dumps(claims(scope="directory:write")).encode())
    response = await client.get(PATH, headers=bearer(f"{head}.{forged}.{sig}"))
    assert_problem(response, 401, "bad signature")


async def test_wrong_audience_is_401(client: httpx.AsyncClient) -> None:
    token = mint_token(
        sub="user-42", org=VAXJO, scopes=ALL_SCOPES, signer=Signer(audience="someone-else")
    )
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "wrong audience")


async def test_audience_list_containing_ours_is_accepted(client: httpx.AsyncClient) -> None:
    token = sign(claims(aud=["other", "vardkedja"]))
    assert (await client.get(PATH, headers=bearer(token))).status_code == 200


async def test_wrong_issuer_is_401(client: httpx.AsyncClient) -> None:
    token = mint_token(
        sub="user-42", org=VAXJO, scopes=ALL_SCOPES, signer=Signer(issuer="evil-idp")
    )
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "wrong issuer")


async def test_alg_none_is_401(client: httpx.AsyncClient) -> None:
    token = unsigned_token({"alg": "none", "typ": "JWT"}, claims(), b"")
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "algorithm not allowed")


async def test_hs256_is_401(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(), "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256")
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "algorithm not allowed")


async def test_hs256_keyed_with_the_public_key_is_401(client: httpx.AsyncClient) -> None:
    # The classic algorithm-confusion attack: HMAC with the public key as the secret.
    header = {"alg": "HS256", "typ": "JWT", "kid": DEV_KID}
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims()).encode())
    mac = hmac.new(dev_public_key_pem().encode(), f"{head}.{body}".encode(), hashlib.sha256)
    token = f"{head}.{body}.{b64url(mac.digest())}"
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "algorithm not allowed")


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "e30.e30.", "x" * 20_000])
async def test_malformed_token_is_401(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get(PATH, headers=bearer(token))
    body = assert_problem(response, 401)
    assert body["detail"] in ("malformed token", "algorithm not allowed")
    assert token not in json.dumps(body)


async def test_missing_scope_is_403_naming_it(client: httpx.AsyncClient) -> None:
    token = mint_token(sub="user-42", org=VAXJO, scopes=["directory:read", "consent:write"])
    response = await client.get(PATH, headers=bearer(token))
    body = assert_problem(response, 403, "directory:write")
    assert body["detail"] == "missing scope: directory:write"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
async def test_missing_required_claim_is_401(client: httpx.AsyncClient, claim: str) -> None:
    token = sign(claims(**{claim: None}))
    response = await client.get(PATH, headers=bearer(token))
    assert_problem(response, 401, f"missing claim '{claim}'")


@pytest.mark.parametrize("org", ["123456-7890", "212000-0648", "not-an-orgnr", 2120000647])
async def test_invalid_org_claim_is_401(client: httpx.AsyncClient, org: object) -> None:
    token = sign(claims(org=org))
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "invalid claim 'org'")


async def test_personnummer_as_sub_is_refused(client: httpx.AsyncClient) -> None:
    token = sign(claims(sub="19121212-1212"))
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, "invalid claim 'sub'")


@pytest.mark.parametrize(
    ("claim", "value"),
    [("unit", 7), ("unit", ""), ("roles", "member_admin"), ("roles", [1]), ("scope", ["a"])],
)
async def test_badly_typed_optional_claims_are_401(
    client: httpx.AsyncClient, claim: str, value: object
) -> None:
    token = sign(claims(**{claim: value}))
    assert_problem(await client.get(PATH, headers=bearer(token)), 401, f"invalid claim '{claim}'")


def test_openapi_documents_the_bearer_scheme(settings: Settings, verifier: TokenVerifier) -> None:
    schema = build_app(settings, verifier).openapi()
    schemes = schema["components"]["securitySchemes"]
    (scheme,) = schemes.values()
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert scheme["bearerFormat"] == "JWT"
    assert schema["paths"][PATH]["get"]["security"]


# --- unit and member checks ---------------------------------------------------------------


def make_caller(unit: str | None = "unit-1", roles: tuple[str, ...] = ()) -> Caller:
    return Caller(
        sub="user-42",
        org=VAXJO,
        unit=unit,
        scopes=frozenset({"directory:read"}),
        roles=frozenset(roles),
        token_id=None,
    )


def test_caller_has_scope() -> None:
    caller = make_caller()
    assert caller.has_scope("directory:read")
    assert not caller.has_scope("directory:write")


def test_ensure_unit_same_unit_is_allowed() -> None:
    ensure_unit(make_caller(unit="unit-1"), "unit-1")


def test_ensure_unit_other_unit_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        ensure_unit(make_caller(unit="unit-1"), "unit-2")
    with pytest.raises(Forbidden):
        ensure_unit(make_caller(unit=None), "unit-2")


def test_ensure_unit_cross_unit_role_is_allowed() -> None:
    ensure_unit(make_caller(unit="unit-1", roles=("member_admin",)), "unit-2")
    ensure_unit(make_caller(unit=None, roles=("auditor",)), "unit-2", cross_unit_role="auditor")
    with pytest.raises(Forbidden):
        ensure_unit(
            make_caller(unit="unit-1", roles=("member_admin",)), "unit-2", cross_unit_role="x"
        )


def test_ensure_member() -> None:
    caller = make_caller()
    ensure_member(caller, VAXJO)
    ensure_member(caller, "2120000647")
    for other in (ALVESTA, KRONOBERG, "garbage"):
        with pytest.raises(Forbidden):
            ensure_member(caller, other)


def test_require_scopes_rejects_bad_scope_names() -> None:
    with pytest.raises(ValueError, match="invalid scope name"):
        require_scopes("directory:read directory:write")


# --- keys ---------------------------------------------------------------------------------


async def test_es256_keys(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "idp.pem"
    key_file.write_text(public_pem(key))
    for public in (public_pem(key), str(key_file)):
        verifier = TokenVerifier(AuthSettings(public_keys=[public], allow_dev_key=False))
        token = mint_token(
            sub="system-1",
            org=ALVESTA,
            scopes=["notify:read"],
            signer=Signer(private_key_pem=private_pem(key)),
        )
        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        caller = await verifier.verify(token)
        assert caller.org == ALVESTA
        assert caller.scopes == frozenset({"notify:read"})
        # Without kid the key is found by trying every configured key.
        assert (
            await verifier.verify(sign(claims(), key=private_pem(key), alg="ES256", kid=None))
        ).sub


async def test_ec_curve_outside_the_allowed_algorithms_is_401() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    verifier = TokenVerifier(AuthSettings(public_keys=[public_pem(key)]))
    token = mint_token(
        sub="s", org=VAXJO, scopes=["a"], signer=Signer(private_key_pem=private_pem(key))
    )
    with pytest.raises(Unauthorized, match="algorithm not allowed"):
        await verifier.verify(token)


async def test_rs256_token_with_the_kid_of_an_ec_key_is_401() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    verifier = TokenVerifier(AuthSettings(public_keys=[public_pem(key)]))
    token = sign(claims(), kid=jwk_thumbprint(key))
    with pytest.raises(Unauthorized, match="algorithm not allowed"):
        await verifier.verify(token)


def test_is_dev_public_key() -> None:
    assert is_dev_public_key(dev_public_key_pem())
    assert is_dev_public_key(str(dev_public_key_path()))
    pkcs1 = (
        load_private_key(dev_private_key_pem())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        .decode()
    )
    assert "RSA PUBLIC KEY" in pkcs1
    assert is_dev_public_key(pkcs1)
    assert not is_dev_public_key(public_pem(rsa_key()))
    assert not is_dev_public_key("/no/such/key.pem")
    assert not is_dev_public_key("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----")


async def test_dev_key_refused_when_not_allowed() -> None:
    other = rsa_key()
    token = mint_token(sub="user-42", org=VAXJO, scopes=ALL_SCOPES)
    strict = TokenVerifier(AuthSettings(allow_dev_key=False, public_keys=[public_pem(other)]))
    with pytest.raises(Unauthorized, match="unknown key"):
        await strict.verify(token)
    with pytest.raises(Unauthorized, match="bad signature"):
        await strict.verify(sign(claims(), kid=None))
    # Listing the development key explicitly does not make it trusted either.
    listed = TokenVerifier(AuthSettings(allow_dev_key=False, public_keys=[dev_public_key_pem()]))
    with pytest.raises(Unauthorized, match="unknown key"):
        await listed.verify(token)


def test_verifier_refuses_symmetric_algorithms_and_bad_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        TokenVerifier(AuthSettings(algorithms=["RS256", "HS256"]))
    with pytest.raises(ValueError, match="asymmetric"):
        TokenVerifier(AuthSettings(algorithms=["none"]))
    with pytest.raises(ValueError, match=r"PUBLIC_KEYS\[0\]"):
        TokenVerifier(AuthSettings(public_keys=[str(tmp_path / "missing.pem")]))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)
    with pytest.raises(ValueError, match="2048"):
        TokenVerifier(AuthSettings(public_keys=[public_pem(small)]))


def test_mint_token_defaults() -> None:
    token = mint_token(
        sub="user-42", org=VAXJO, scopes="directory:read directory:read consent:read"
    )
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == DEV_KID == public_jwk(load_private_key(dev_private_key_pem()))["kid"]
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["scope"] == "directory:read consent:read"
    assert payload["exp"] - payload["iat"] == 3600
    assert set(REQUIRED_CLAIMS) <= set(payload)
    assert "unit" not in payload
    assert "roles" not in payload


# --- JWKS over a real HTTP server ---------------------------------------------------------


async def test_jwks_keys_are_fetched_and_cached(jwks_server: JwksServer) -> None:
    key = rsa_key()
    jwks_server.serve(("k1", key))
    verifier = TokenVerifier(AuthSettings(jwks_url=jwks_server.url, allow_dev_key=False))
    token = mint_token(
        sub="u", org=VAXJO, scopes=["a"], signer=Signer(private_key_pem=private_pem(key), kid="k1")
    )
    assert (await verifier.verify(token)).sub == "u"
    assert (await verifier.verify(token)).sub == "u"
    assert jwks_server.hits == 1
    # Without kid, JWKS keys are tried too.
    assert (await verifier.verify(sign(claims(), key=private_pem(key), kid=None))).org == VAXJO
    assert jwks_server.hits == 1


async def test_jwks_key_rotation_refetches_on_unknown_kid(jwks_server: JwksServer) -> None:
    old, new = rsa_key(), rsa_key()
    jwks_server.serve(("old", old))
    verifier = TokenVerifier(AuthSettings(jwks_url=jwks_server.url, allow_dev_key=False))
    clock = FakeClock()
    verifier._clock = clock
    old_token = mint_token(
        sub="u", org=VAXJO, scopes=["a"], signer=Signer(private_key_pem=private_pem(old), kid="old")
    )
    new_token = mint_token(
        sub="u", org=VAXJO, scopes=["a"], signer=Signer(private_key_pem=private_pem(new), kid="new")
    )
    await verifier.verify(old_token)
    assert jwks_server.hits == 1

    # The issuer rotates; a token with the new kid arrives 40 s later: one re-fetch.
    jwks_server.serve(("new", new))
    clock.advance(40)
    assert (await verifier.verify(new_token)).sub == "u"
    assert jwks_server.hits == 2
    # The old key is gone from the set.
    with pytest.raises(Unauthorized, match="unknown key"):
        await verifier.verify(old_token)
    assert jwks_server.hits == 2  # at most one fetch per 30 s

    # A flood of unknown kids within 30 s does not hammer the JWKS endpoint.
    clock.advance(31)
    bogus = [
        mint_token(
            sub="u",
            org=VAXJO,
            scopes=["a"],
            signer=Signer(private_key_pem=private_pem(new), kid=f"x{i}"),
        )
        for i in range(5)
    ]
    results = await asyncio.gather(*(verifier.verify(t) for t in bogus), return_exceptions=True)
    assert all(isinstance(r, Unauthorized) for r in results)
    assert jwks_server.hits == 3


async def test_jwks_cache_expires(jwks_server: JwksServer) -> None:
    key = rsa_key()
    jwks_server.serve(("k1", key))
    verifier = TokenVerifier(AuthSettings(jwks_url=jwks_server.url, allow_dev_key=False))
    clock = FakeClock()
    verifier._clock = clock
    token = mint_token(
        sub="u", org=VAXJO, scopes=["a"], signer=Signer(private_key_pem=private_pem(key), kid="k1")
    )
    await verifier.verify(token)
    clock.advance(599)
    await verifier.verify(token)
    assert jwks_server.hits == 1
    clock.advance(2)
    await verifier.verify(token)
    assert jwks_server.hits == 2
    # When the endpoint fails the cached keys stay in use.
    jwks_server.status = 500
    clock.advance(601)
    assert (await verifier.verify(token)).sub == "u"
    assert jwks_server.hits == 3


async def test_jwks_skips_unusable_entries(jwks_server: JwksServer) -> None:
    key = rsa_key()
    jwks_server.serve(("k1", key))
    private_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key()))
    private_jwk.update(kid="leaked")
    secret = {"kty": "oct", "kid": "hmac", "k": b64url(b"secret" * 8)}
    jwks_server.document["keys"] += [private_jwk, secret, {"kty": "RSA", "kid": "broken"}]
    verifier = TokenVerifier(AuthSettings(jwks_url=jwks_server.url, allow_dev_key=False))
    assert await verifier.refresh()
    token = sign(claims(), key=private_pem(key), kid="k1")
    assert (await verifier.verify(token)).sub == "user-42"
    with pytest.raises(Unauthorized, match="algorithm not allowed"):
        await verifier.verify(jwt.encode(claims(), b"secret" * 8, "HS256", headers={"kid": "hmac"}))


async def test_dev_key_in_jwks_is_refused_when_not_allowed(jwks_server: JwksServer) -> None:
    jwks_server.serve(("dev", load_private_key(dev_private_key_pem())), ("k2", rsa_key()))
    verifier = TokenVerifier(AuthSettings(jwks_url=jwks_server.url, allow_dev_key=False))
    token = mint_token(sub="u", org=VAXJO, scopes=["a"], signer=Signer(kid="dev"))
    with pytest.raises(Unauthorized, match="unknown key"):
        await verifier.verify(token)


async def test_unreachable_jwks_is_503(jwks_server: JwksServer, settings: Settings) -> None:
    url = jwks_server.url
    jwks_server.httpd.shutdown()
    jwks_server.httpd.server_close()
    verifier = TokenVerifier(AuthSettings(jwks_url=url, allow_dev_key=False))
    key = rsa_key()
    token = mint_token(
        sub="u", org=VAXJO, scopes=["a"], signer=Signer(private_key_pem=private_pem(key), kid="k1")
    )
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(token)


async def test_jwks_with_a_given_http_client(jwks_server: JwksServer) -> None:
    key = rsa_key()
    jwks_server.serve(("k1", key))
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(
            AuthSettings(jwks_url=jwks_server.url, allow_dev_key=False), http_client=http
        )
        token = mint_token(
            sub="u",
            org=VAXJO,
            scopes=["a"],
            signer=Signer(private_key_pem=private_pem(key), kid="k1"),
        )
        assert (await verifier.verify(token)).sub == "u"


# --- production refuses the development key ----------------------------------------------


def test_production_refuses_the_dev_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("VK_"):
            monkeypatch.delenv(name)
    # Asked for in production, the development key is switched off all the same.
    settings = Settings(env="production", auth=AuthSettings(allow_dev_key=True))
    assert not settings.auth.allow_dev_key
    with pytest.raises(ProductionConfigError):
        check_production(settings)

    listed = Settings(
        env="production",
        auth=AuthSettings(allow_dev_key=False, public_keys=[str(dev_public_key_path())]),
    )
    assert "VK_AUTH__PUBLIC_KEYS contains the development key" in listed.production_problems()

    clean = Settings(
        env="production",
        auth=AuthSettings(allow_dev_key=False, public_keys=[public_pem(rsa_key())]),
    )
    assert not any("development key" in p or "DEV_KEY" in p for p in clean.production_problems())
