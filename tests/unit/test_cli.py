"""The ``vardkedja`` command line and the production configuration guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from shared.config import (
    AuthSettings,
    KafkaSettings,
    ProductionConfigError,
    Settings,
    TrustSettings,
    check_production,
)
from shared.identity.auth import TokenVerifier, dev_public_key_pem
from shared.web.errors import Unauthorized
from vardkedja.cli import app

runner = CliRunner()


class TestTokenCommand:
    async def test_prints_a_token_the_verifier_accepts(self) -> None:
        result = runner.invoke(
            app, ["token", "--org", "212000-0647", "--scope", "directory:read directory:write"]
        )
        assert result.exit_code == 0, result.output
        token = result.stdout.strip()
        assert token.count(".") == 2
        assert "\n" not in token

        caller = await TokenVerifier(AuthSettings()).verify(token)
        assert caller.org == "212000-0647"
        assert caller.scopes == frozenset({"directory:read", "directory:write"})
        assert caller.sub == "dev"
        assert caller.unit is None

    async def test_repeated_options_sub_unit_and_roles(self) -> None:
        result = runner.invoke(
            app,
            [
                "token",
                "--org",
                "2321000065",
                "--scope",
                "consent:read",
                "--scope",
                "referral:read referral:write",
                "--sub",
                "integration-7",
                "--unit",
                "u-1",
                "--role",
                "member_admin",
            ],
        )
        assert result.exit_code == 0, result.output
        caller = await TokenVerifier(AuthSettings()).verify(result.stdout.strip())
        assert caller.org == "232100-0065"  # normalised
        assert caller.scopes == frozenset({"consent:read", "referral:read", "referral:write"})
        assert caller.sub == "integration-7"
        assert caller.unit == "u-1"
        assert caller.roles == frozenset({"member_admin"})

    async def test_default_scope_is_directory_read(self) -> None:
        result = runner.invoke(app, ["token", "--org", "212000-0613"])
        assert result.exit_code == 0, result.output
        caller = await TokenVerifier(AuthSettings()).verify(result.stdout.strip())
        assert caller.scopes == frozenset({"directory:read"})

    async def test_unit_by_hsa_id(self) -> None:
        hsa = "SE2321000065-E000000000101"
        result = runner.invoke(app, ["token", "--org", "232100-0065", "--unit", hsa])
        assert result.exit_code == 0, result.output
        assert (await TokenVerifier(AuthSettings()).verify(result.stdout.strip())).unit == hsa

    def test_invalid_hsa_id_refused(self) -> None:
        result = runner.invoke(app, ["token", "--org", "232100-0065", "--unit", "SE2321000066-E1"])
        assert result.exit_code == 2
        assert "--unit" in result.output

    @pytest.mark.parametrize("org", ["212000-0648", "19121212-1212", "abc", "2120000"])
    def test_invalid_org_refused(self, org: str) -> None:
        result = runner.invoke(app, ["token", "--org", org, "--scope", "directory:read"])
        assert result.exit_code == 2
        assert "--org" in result.stderr
        assert result.stdout == ""

    async def test_verifier_would_refuse_such_a_token(self) -> None:
        # Why the command refuses: a token with an invalid org can never be used.
        from shared.identity.auth import mint_token

        token = mint_token(sub="dev", org="212000-0648", scopes=["directory:read"])
        with pytest.raises(Unauthorized, match="invalid claim 'org'"):
            await TokenVerifier(AuthSettings()).verify(token)

    def test_org_is_required(self) -> None:
        result = runner.invoke(app, ["token"])
        assert result.exit_code == 2
        assert "--org" in result.stderr


class TestOtherCommands:
    def test_events_prints_asyncapi(self) -> None:
        result = runner.invoke(app, ["events"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["asyncapi"] == "3.0.0"
        assert "se_vardkedja_unit_changed_v1" in doc["components"]["messages"]

    def test_serve_unknown_service(self) -> None:
        result = runner.invoke(app, ["serve", "nosuch"])
        assert result.exit_code == 2
        assert "unknown service" in result.stderr

    def test_worker_unknown_service(self) -> None:
        result = runner.invoke(app, ["worker", "nosuch"])
        assert result.exit_code == 2
        assert "unknown service" in result.stderr

    def test_no_arguments_shows_help(self) -> None:
        result = runner.invoke(app, [])
        assert result.exit_code != 0
        for command in ("serve", "worker", "migrate", "token", "events", "run"):
            assert command in result.output


def _other_public_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


PRODUCTION_TRUST = TrustSettings(
    list_path=Path("/run/vardkedja/trust-list.json"),
    keys_path=Path("/run/vardkedja/member.keys.json"),
)


class TestCheckProduction:
    def test_refuses_development_defaults_and_lists_each_problem(self) -> None:
        settings = Settings(env="production")
        problems = settings.production_problems()
        # The development key is off by itself: VK_ENV does not say development.
        assert not settings.auth.allow_dev_key
        assert problems == [
            "set VK_AUTH__JWKS_URL or VK_AUTH__PUBLIC_KEYS",
            "VK_DATABASE_URL must point at PostgreSQL",
            "VK_KAFKA__SECURITY_PROTOCOL must be SSL (mTLS)",
            "VK_FEDERATION_MEMBERS must list the federation's members",
            "set VK_TRUST__LIST_PATH and VK_TRUST__KEYS_PATH (ADR 0020)",
        ]
        with pytest.raises(ProductionConfigError) as info:
            check_production(settings)
        for problem in problems:
            assert problem in str(info.value)

    def test_refuses_dev_key_and_plain_http_jwks(self) -> None:
        settings = Settings(
            env="production",
            auth=AuthSettings(
                allow_dev_key=False,
                jwks_url="http://idp.example/jwks",
                public_keys=[dev_public_key_pem()],
            ),
            database_url="postgresql+asyncpg://vk@db/vk",
            kafka=KafkaSettings(
                security_protocol="SSL",
                ssl_certfile="/run/member.crt",
                ssl_keyfile="/run/member.key",
            ),
            federation_members=["232100-0065"],
            trust=PRODUCTION_TRUST,
        )
        assert settings.production_problems() == [
            "VK_AUTH__JWKS_URL must use https",
            "VK_AUTH__PUBLIC_KEYS contains the development key",
        ]
        with pytest.raises(ProductionConfigError, match="must use https"):
            check_production(settings)

    def test_accepts_a_production_configuration(self) -> None:
        settings = Settings(
            env="production",
            auth=AuthSettings(allow_dev_key=False, public_keys=[_other_public_key_pem()]),
            database_url="postgresql+asyncpg://vk@db/vk",
            kafka=KafkaSettings(
                security_protocol="SSL",
                ssl_certfile="/run/member.crt",
                ssl_keyfile="/run/member.key",
            ),
            federation_members=["232100-0065", "212000-0647"],
            trust=PRODUCTION_TRUST,
        )
        assert settings.production_problems() == []
        check_production(settings)

    def test_refuses_ssl_without_a_client_certificate(self) -> None:
        settings = Settings(
            env="production",
            auth=AuthSettings(allow_dev_key=False, public_keys=[_other_public_key_pem()]),
            database_url="postgresql+asyncpg://vk@db/vk",
            kafka=KafkaSettings(security_protocol="SSL"),
            federation_members=["232100-0065"],
            trust=PRODUCTION_TRUST,
        )
        assert settings.production_problems() == [
            "mTLS needs VK_KAFKA__SSL_CERTFILE and VK_KAFKA__SSL_KEYFILE"
        ]

    def test_development_is_not_checked(self) -> None:
        check_production(Settings(env="development"))
        check_production(Settings(env="test"))


class TestKafkaTimeouts:
    """A real group coordinator (Apache Kafka) holds a JoinGroup up to the rebalance
    timeout: it must stay below the request timeout, or the client gives up on a join that
    would have succeeded."""

    def test_the_rebalance_timeout_defaults_to_the_request_timeout_less_two_seconds(
        self,
    ) -> None:
        assert KafkaSettings().rebalance_timeout_ms == 8_000
        assert KafkaSettings(request_timeout_ms=5_000).rebalance_timeout_ms == 3_000

    def test_a_rebalance_timeout_not_below_the_request_timeout_is_refused(self) -> None:
        with pytest.raises(ValueError, match="rebalance_timeout_ms must be below"):
            KafkaSettings(request_timeout_ms=10_000, rebalance_timeout_ms=10_000)
        ok = KafkaSettings(request_timeout_ms=10_000, rebalance_timeout_ms=9_000)
        assert ok.rebalance_timeout_ms == 9_000
