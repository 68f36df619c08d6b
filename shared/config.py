"""Settings of one service process of one member, read from ``VK_*`` environment variables.

Nested groups use ``__`` (``VK_KAFKA__BOOTSTRAP_SERVERS``). Every variable is listed in
``docs/configuration.md``. Development defaults are safe on a laptop; ``VK_ENV=production``
refuses to start with development keys, SQLite or a plaintext broker (see
:func:`Settings.production_problems`).
"""

from __future__ import annotations

import enum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.codes import LegalBasis
from shared.domain.kinds import KINDS, URGENCIES, legal_basis_purposes
from shared.identity.auth.keys import is_dev_public_key
from shared.identity.auth.settings import AuthSettings as AuthSettings

SERVICES: tuple[str, ...] = ("directory", "consent", "referral", "notify")
ServiceName = Literal["directory", "consent", "referral", "notify"]


class MemberKind(enum.StrEnum):
    """The kind of huvudman."""

    KOMMUN = "kommun"
    REGION = "region"


class MemberSettings(BaseModel):
    """Identity of the huvudman this instance belongs to."""

    orgnr: str = Field("232100-0065", description="organisationsnummer, NNNNNN-NNNN")
    name: str = "Region Kronoberg"
    kind: MemberKind = MemberKind.REGION

    @field_validator("orgnr")
    @classmethod
    def _valid_orgnr(cls, value: str) -> str:
        from shared.identity.identifiers import normalise_orgnr

        return normalise_orgnr(value)

    @property
    def digits(self) -> str:
        """The organisationsnummer without its hyphen, as used in topic and database names."""
        return self.orgnr.replace("-", "")


class KafkaSettings(BaseModel):
    """How to reach the Kafka cluster (Apache Kafka in production, the embedded broker in dev)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id_prefix: str = "vardkedja"
    security_protocol: Literal["PLAINTEXT", "SSL"] = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # The embedded Tansu broker answers a fetch only when this expires: keep it low there.
    fetch_max_wait_ms: int = Field(50, ge=1, le=10_000)
    # Apache Kafka supports the idempotent producer; the embedded broker does not.
    idempotent_producer: bool = False
    partitions: int = Field(3, ge=1, le=1000)
    replication_factor: int = Field(1, ge=1, le=10)
    # Services create the topics they use at start (development). In production the
    # deploy scripts create topics and ACLs and services only check that they exist.
    create_topics: bool = True
    # Tansu keeps its log in memory: after a broker restart the relay re-publishes
    # recently sent events (consumers are idempotent). Harmless on durable Kafka.
    replay_on_broker_loss: bool = True
    replay_window_hours: int = Field(72, ge=0)
    dead_letter_after: int = Field(5, ge=1, le=100, description="failed attempts before DLT")
    # The inbox must remember an event at least as long as it can be delivered again: longer
    # than the topics' retention (7 days for per-member topics) and the replay window.
    inbox_retention_days: int = Field(30, ge=1)
    idempotency_retention_hours: int = Field(72, ge=1)
    # The embedded broker holds a JoinGroup for about half the session timeout, so joins
    # take ~3 s with the default; tests use less. Apache Kafka requires >= 6000 by default.
    session_timeout_ms: int = Field(6_000, ge=1_000, le=300_000)
    request_timeout_ms: int = Field(10_000, ge=100)
    # How long a group's coordinator holds a join while it waits for the other members to
    # rejoin. A real coordinator (Apache Kafka) holds a JoinGroup up to this long, so it
    # must stay below the request timeout, or the client gives up on a join that would
    # have succeeded; aiokafka's default is max_poll_interval_ms (5 minutes). Unset: the
    # request timeout less 2 s (8 s by default).
    rebalance_timeout_ms: int | None = Field(None, ge=1_000)
    # The relay's longest wait between attempts while the broker is away: also how late,
    # at most, it notices that the broker is back.
    relay_max_backoff_s: float = Field(5.0, gt=0, le=300)

    @model_validator(mode="after")
    def _inbox_outlasts_replay(self) -> KafkaSettings:
        if self.inbox_retention_days * 24 <= self.replay_window_hours:
            raise ValueError("inbox_retention_days must exceed replay_window_hours")
        return self

    @model_validator(mode="after")
    def _request_outlasts_join(self) -> KafkaSettings:
        if self.request_timeout_ms <= self.session_timeout_ms // 2 + 500:
            raise ValueError(
                "request_timeout_ms must exceed half of session_timeout_ms (a join waits that long)"
            )
        if self.rebalance_timeout_ms is None:
            self.rebalance_timeout_ms = max(1_000, self.request_timeout_ms - 2_000)
        if self.rebalance_timeout_ms >= self.request_timeout_ms:
            raise ValueError(
                "rebalance_timeout_ms must be below request_timeout_ms (a coordinator holds a "
                "join that long)"
            )
        return self


class DirectorySettings(BaseModel):
    """Settings of the directory service."""

    review_after_days: int = Field(
        182, ge=1, le=3650, description="an entry not reviewed for this long is stale"
    )
    stale_check_interval_s: int = Field(3600, ge=1, description="how often the worker looks")


def _default_legal_basis_purposes() -> dict[str, list[str]]:
    """Which purposes each legal basis may cover (the consent service's default table,
    derived from the kinds registry: ``shared/domain/kinds.py``)."""
    return legal_basis_purposes(tuple(LegalBasis))


class ConsentSettings(BaseModel):
    """Settings of the consent service."""

    # Development only: production must set a secret of its own (the service refuses the
    # development value when VK_ENV=production).
    person_key_secret: str = Field(
        "vardkedja-development-person-key",
        min_length=16,
        description="per-member HMAC secret of the person key used for lookups",
    )
    max_validity_days: int = Field(365, ge=1, le=3650, description="longest consent validity")
    block_lift_max_days: int = Field(7, ge=1, le=30, description="longest temporary lift")
    legal_basis_purposes: dict[str, list[str]] = Field(
        default_factory=_default_legal_basis_purposes,
        description="legal basis -> the purposes it may cover",
    )
    block_overridden_by: list[str] = Field(
        default_factory=lambda: ["lvm_anmalan", "orosanmalan", "nodsituation"],
        description="legal bases that apply even where the person has blocked the recipient",
    )
    expiry_check_interval_s: int = Field(300, ge=1, description="how often expiry is checked")


class NotifyRule(BaseModel):
    """One row of the rules table: which event goes to which recipients on which channels."""

    id: str = Field(pattern=r"^[a-z0-9_.-]{1,64}$")
    event: str = Field(
        max_length=255, description="an event type, or timer:remind|overdue|escalate"
    )
    recipients: list[str] = Field(
        min_length=1, description="unit | coordinator | unit:<id> | role:<role>"
    )
    channels: list[Literal["inbox", "webhook", "email"]] = Field(min_length=1)

    @field_validator("recipients")
    @classmethod
    def _known_recipients(cls, value: list[str]) -> list[str]:
        for r in value:
            if r not in ("unit", "coordinator") and not r.startswith(("unit:", "role:")):
                raise ValueError(f"unknown recipient {r!r}")
        return value

    @field_validator("channels")
    @classmethod
    def _inbox_always(cls, value: list[str]) -> list[str]:
        # Nothing silently dropped: every notification lands in an inbox.
        if "inbox" not in value:
            raise ValueError("channels must include inbox")
        return value


def _default_notify_rules() -> list[NotifyRule]:
    """The demo rules table (docs/configuration.md lists it)."""
    all_ = ["inbox", "webhook", "email"]
    rows = [
        ("referral-received", "se.vardkedja.referral.received.v1", ["unit"], all_),
        (
            "referral-status",
            "se.vardkedja.referral.status_changed.v1",
            ["unit"],
            ["inbox", "webhook"],
        ),
        ("referral-deadline", "se.vardkedja.referral.deadline.v1", ["unit"], all_),
        ("referral-discharged", "se.vardkedja.referral.discharged.v1", ["unit"], all_),
        (
            "referral-document",
            "se.vardkedja.referral.document_added.v1",
            ["unit"],
            ["inbox", "webhook"],
        ),
        ("plan-action", "se.vardkedja.plan.action_changed.v1", ["unit"], all_),
        ("consent-ended", "se.vardkedja.consent.ended.v1", ["unit"], ["inbox", "webhook"]),
        (
            "consent-narrowed",
            "se.vardkedja.referral.basis_narrowed.v1",
            ["unit"],
            ["inbox", "webhook"],
        ),
        (
            "unit-review-due",
            "se.vardkedja.unit.review_due.v1",
            ["unit", "coordinator"],
            ["inbox", "email"],
        ),
        ("reminder", "timer:remind", ["unit"], all_),
        ("overdue", "timer:overdue", ["unit"], all_),
        ("escalation", "timer:escalate", ["coordinator"], all_),
    ]
    return [NotifyRule(id=i, event=e, recipients=r, channels=c) for i, e, r, c in rows]


class SmtpSettings(BaseModel):
    """The member's SMTP relay for functional-mailbox e-mail (no host = e-mail off)."""

    host: str | None = None
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["none", "starttls", "tls"] = "starttls"
    validate_certs: bool = True
    cafile: str | None = None
    username: str | None = None
    password: str | None = None
    sender: str = "vardkedja-noreply@example.invalid"
    timeout_s: float = Field(10.0, gt=0, le=120)


class NotifySettings(BaseModel):
    """Settings of the notify service."""

    rules: list[NotifyRule] = Field(default_factory=_default_notify_rules)
    remind_before_s: int = Field(86_400, ge=0, description="reminder this long before a deadline")
    escalate_after_s: int = Field(86_400, ge=0, description="escalate this long after it passed")
    coordinator_unit_ids: list[str] = Field(default_factory=list)
    link_base_url: str = "http://127.0.0.1:8003"
    webhook_allow_private: bool = False
    # The demo's own webhook receiver listens on loopback (``vardkedja run``): this allows
    # loopback addresses only, never other private ones; refused in production.
    webhook_allow_loopback: bool = False
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_backoff_base_s: float = Field(5.0, gt=0)
    webhook_backoff_max_s: float = Field(3600.0, gt=0)
    webhook_secret_min_bytes: int = Field(24, ge=16, le=64)
    secret_rotation_grace_s: int = Field(86_400, ge=0)
    email_max_attempts: int = Field(5, ge=1, le=50)
    send_concurrency: int = Field(32, ge=1, le=1000, description="webhooks and e-mails at once")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    dispatch_poll_interval_s: float = Field(1.0, gt=0, le=60)
    timer_poll_interval_s: float = Field(15.0, gt=0, le=3600)
    sse_poll_interval_s: float = Field(0.5, gt=0, le=60)
    retention_days: int = Field(400, ge=30, le=3650, description="how long notifications stay")


INFORMATION_WORKING_DAYS = {"normal": 10, "urgent": 3, "acute": 1}
"""The default days to answer a komplettering, by urgency (``information_working_days``)."""


class ReferralSettings(BaseModel):
    """Settings of the referral service."""

    # This member's own consent and directory services (asked before sending and on receipt).
    consent_url: str = "http://127.0.0.1:8001"
    directory_url: str = "http://127.0.0.1:8000"
    # Working days to acknowledge an incoming referral, by kind and urgency (0 = the same
    # day): the kinds registry's table unless a member sets its own. Notify's reminders
    # follow the same deadline (one policy: KindSpec.acknowledge_by).
    acknowledge_working_days: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {
            k.value: dict(s.acknowledge_working_days) for k, s in KINDS.items()
        }
    )
    # Working days to accept or decline (answer an invitation) once acknowledged, the same
    # way (KindSpec.answer_by); a SIP invitation's own ``answer_by`` wins.
    answer_working_days: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {k.value: dict(s.answer_working_days) for k, s in KINDS.items()}
    )
    # Working days the sending unit has to answer a holder's request for more information
    # (komplettering), by urgency, from the day the holder asked (this member's policy for
    # its own units: the alert and reminders of deadline ``information``).
    information_working_days: dict[str, int] = Field(
        default_factory=lambda: dict(INFORMATION_WORKING_DAYS)
    )
    # Working days the sending member has to convene the SIP a kind calls for (an HVB
    # notification: KindSpec.sip_working_days), by kind; a kind left out owes none.
    sip_working_days: dict[str, Annotated[int, Field(ge=0, le=60)]] = Field(
        default_factory=lambda: {
            k.value: s.sip_working_days for k, s in KINDS.items() if s.sip_working_days is not None
        }
    )
    # Service-to-service calls: the token the referral service presents to this member's
    # consent and directory services. Signed with this key (PEM or a file path); empty in
    # development and tests: the bundled development key.
    service_private_key: str = ""
    service_token_ttl_seconds: int = Field(300, ge=30, le=3600)
    # Discharge dates, plan follow-ups and answers: "near" this many working days before.
    near_working_days: int = Field(2, ge=0, le=30)
    deadline_check_interval_s: int = Field(300, ge=1)
    call_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # Documents attached to a referral (ADR 0023): the largest document, the most of them
    # together on one referral (or one task at the receiver), how many, the chunk they
    # travel in, how long an upload waits to be attached, how long they are kept once the
    # task is final, and how often the worker prunes them.
    attachment_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    attachment_max_referral_bytes: int = Field(25 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    attachment_max_count: int = Field(10, ge=1, le=50)
    attachment_chunk_bytes: int = Field(256 * 1024, ge=16 * 1024, le=512 * 1024)
    attachment_draft_hours: int = Field(24, ge=1, le=24 * 14)
    attachment_retention_days: int = Field(90, ge=1, le=3650)
    attachment_prune_interval_s: int = Field(3600, ge=1)

    @field_validator("information_working_days")
    @classmethod
    def _days_by_urgency(cls, days: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(days) - set(URGENCIES))
        if unknown:
            raise ValueError(f"not an urgency: {', '.join(unknown)}")
        if any(not 0 <= n <= 60 for n in days.values()):
            raise ValueError("working days are 0 to 60")
        return {**INFORMATION_WORKING_DAYS, **days}

    @model_validator(mode="after")
    def _one_document_fits_a_referral(self) -> ReferralSettings:
        if self.attachment_max_bytes > self.attachment_max_referral_bytes:
            raise ValueError("attachment_max_bytes is over attachment_max_referral_bytes")
        return self


class TrustSettings(BaseModel):
    """The federation's trust list and this member's private keys (ADR 0020)."""

    dir: Path | None = Field(
        None,
        description="a folder holding trust-list.json and <orgnr digits>.keys.json "
        "(development and tests; production names the two files)",
    )
    list_path: Path | None = Field(None, description="the federation's trust list (public keys)")
    keys_path: Path | None = Field(None, description="this member's private key file")


def _default_body_limits() -> dict[str, int]:
    return {"POST /v1/units/import": 5 * 1024 * 1024}  # the directory's CSV/YAML import


class HttpSettings(BaseModel):
    """How ``vardkedja serve`` listens, and what a client may make it hold (shared.web.limits)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Request bodies over these are answered 413 before they are read.
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="every operation's limit")
    body_limits: dict[str, int] = Field(
        default_factory=_default_body_limits,
        description='larger (or smaller) limits of named operations, "METHOD /path": bytes',
    )
    body_idle_timeout_s: float = Field(30.0, gt=0, le=600)
    # A request head must arrive whole within this of the connection's start (or of the
    # previous answer); slower clients are disconnected (slow-loris).
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    max_header_bytes: int = Field(64 * 1024, ge=4096, le=1024 * 1024)
    keep_alive_timeout_s: float = Field(5.0, gt=0, le=300)


class Settings(BaseSettings):
    """Everything one process needs. One instance per process, built from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="VK_", env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    env: Literal["development", "test", "production"] = "development"
    service: ServiceName = "directory"
    member: MemberSettings = Field(default_factory=MemberSettings)
    database_url: str | None = None
    data_dir: Path = Path("var")
    auto_migrate: bool = True
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    trust: TrustSettings = Field(default_factory=TrustSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    consent: ConsentSettings = Field(default_factory=ConsentSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    referral: ReferralSettings = Field(default_factory=ReferralSettings)
    log_level: str = "INFO"
    log_json: bool = True
    # Members this instance accepts events from; empty = any member with a valid orgnr
    # (development). Production lists the federation explicitly.
    federation_members: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _dev_key_only_where_declared(self) -> Settings:
        """Fail closed: the development token key is trusted only by a process whose
        ``VK_ENV`` says ``development`` (or ``test``) explicitly, never by default."""
        declared = "env" in self.model_fields_set and self.env in ("development", "test")
        if self.auth.allow_dev_key and not declared:
            self.auth = self.auth.model_copy(update={"allow_dev_key": False})
        return self

    @field_validator("federation_members")
    @classmethod
    def _valid_members(cls, value: list[str]) -> list[str]:
        from shared.identity.identifiers import normalise_orgnr

        return [normalise_orgnr(v) for v in value]

    @property
    def db_url(self) -> str:
        """The database URL: explicit, or a SQLite file per member and service under data_dir."""
        if self.database_url:
            return self.database_url
        path = self.data_dir / self.member.digits / f"{self.service}.db"
        return f"sqlite+aiosqlite:///{path}"

    @property
    def source(self) -> str:
        """CloudEvents ``source`` of events this process emits."""
        return f"urn:vardkedja:{self.member.digits}:{self.service}"

    def production_problems(self) -> list[str]:
        """Reasons this configuration must not run in production (empty when it may)."""
        problems: list[str] = []
        if self.auth.allow_dev_key:
            problems.append("VK_AUTH__ALLOW_DEV_KEY must be false")
        if not self.auth.jwks_url and not self.auth.public_keys:
            problems.append("set VK_AUTH__JWKS_URL or VK_AUTH__PUBLIC_KEYS")
        if self.auth.jwks_url and not self.auth.jwks_url.startswith("https://"):
            problems.append("VK_AUTH__JWKS_URL must use https")
        if any(is_dev_public_key(k) for k in self.auth.public_keys):
            problems.append("VK_AUTH__PUBLIC_KEYS contains the development key")
        if self.db_url.startswith("sqlite"):
            problems.append("VK_DATABASE_URL must point at PostgreSQL")
        if self.kafka.security_protocol == "PLAINTEXT":
            problems.append("VK_KAFKA__SECURITY_PROTOCOL must be SSL (mTLS)")
        elif not (self.kafka.ssl_certfile and self.kafka.ssl_keyfile):
            problems.append("mTLS needs VK_KAFKA__SSL_CERTFILE and VK_KAFKA__SSL_KEYFILE")
        if not self.federation_members:
            problems.append("VK_FEDERATION_MEMBERS must list the federation's members")
        if not (self.trust.list_path and self.trust.keys_path):
            problems.append("set VK_TRUST__LIST_PATH and VK_TRUST__KEYS_PATH (ADR 0020)")
        if self.notify.webhook_allow_loopback:
            problems.append("VK_NOTIFY__WEBHOOK_ALLOW_LOOPBACK is for the demo only")
        if self.service == "referral" and not self.referral.service_private_key:
            problems.append("VK_REFERRAL__SERVICE_PRIVATE_KEY must be set")
        return problems


class ProductionConfigError(RuntimeError):
    """Raised when production mode is asked for with development defaults."""


CONTAINER_MARKERS = (Path("/.dockerenv"), Path("/run/.containerenv"))


def in_container() -> bool:
    """Whether this process runs in a container (Docker, Podman, Kubernetes)."""
    import os

    # Podman and systemd-nspawn set ``container`` (lower case, by convention).
    if os.environ.get("container") or os.environ.get("KUBERNETES_SERVICE_HOST"):  # noqa: SIM112
        return True
    return any(marker.exists() for marker in CONTAINER_MARKERS)


def check_production(settings: Settings) -> None:
    """Refuse to start in production mode with development keys or plaintext defaults, and
    in a container whose ``VK_ENV`` is not set (an image never runs on defaults)."""
    if "env" not in settings.model_fields_set and in_container():
        raise ProductionConfigError(
            "refusing to start: VK_ENV is not set in a container (set production, or "
            "development for a local stack)"
        )
    if settings.env != "production":
        return
    problems = settings.production_problems()
    if problems:
        raise ProductionConfigError("refusing to start in production mode: " + "; ".join(problems))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
