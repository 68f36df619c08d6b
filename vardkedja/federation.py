"""The embedded demo federation: every service of every member as its own process.

``vardkedja run`` starts the broker (the embedded Tansu, or Apache Kafka with
``--broker kafka``), migrates every member's databases, starts an API
and a worker process per service and member (3 members x 4 services x 2 = 24 processes),
waits until all are ready, seeds the demo units (``services/directory/demo``), prints the
docs URLs and development tokens, and on Ctrl-C stops everything in order. Tests use the
same class with fewer members.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.directory.demo import load_demo_members, load_demo_units
from shared.config import SERVICES
from shared.messaging.broker import (
    Broker,
    Engine,
    client_env,
    new_broker,
)
from shared.messaging.processes import (
    die_with_parent,
    port_open,
)

FACADE = "fhir"
"""Each member's FHIR facade (ADR 0029): an API process only, on the port after the four."""
SERVICE_OFFSET = {name: i for i, name in enumerate((*SERVICES, FACADE))}
PORTS_PER_MEMBER = len(SERVICE_OFFSET)
ALL_SCOPES = (
    "directory:read directory:write consent:read consent:write consent:person referral:read "
    "referral:write referral:person notify:read notify:write audit:read"
)


@dataclass(frozen=True)
class Member:
    """One huvudman of the federation and the ports of its four APIs and its facade."""

    orgnr: str
    name: str
    kind: str
    port_base: int

    @property
    def digits(self) -> str:
        return self.orgnr.replace("-", "")

    def port(self, service: str) -> int:
        return self.port_base + SERVICE_OFFSET[service]


DEMO_MEMBERS: tuple[Member, ...] = (
    Member("232100-0065", "Region Kronoberg", "region", 8010),
    Member("212000-0647", "Växjö kommun", "kommun", 8020),
    Member("212000-0613", "Alvesta kommun", "kommun", 8030),
)


@dataclass
class Proc:
    member: Member
    service: str
    role: str  # serve | worker
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def name(self) -> str:
        return f"{self.member.digits}-{self.service}-{self.role}"


@dataclass
class Federation:
    """Starts and stops the processes of a federation on loopback."""

    members: Sequence[Member] = DEMO_MEMBERS
    services: Sequence[str] = SERVICES
    data_dir: Path = Path("var")
    bootstrap: str | None = None  # an external broker; else one of ``engine`` is started
    broker_port: int = 9092
    engine: Engine = "tansu"
    fetch_max_wait_ms: int = 100  # Tansu's; Apache Kafka's clients get the broker's own
    database_url_for: dict[tuple[str, str], str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    # What clients of an external broker need (``Broker.client_settings`` as VK_KAFKA__*).
    broker_env: dict[str, str] = field(default_factory=dict)
    # Each member's FHIR facade too (``vardkedja serve fhir`` on ``Member.port("fhir")``).
    facade: bool = False
    procs: list[Proc] = field(default_factory=list)
    broker: Broker | None = None
    # The members' key files and the trust list (ADR 0020); default: the folder VK_TRUST__DIR
    # names (the test suites' keys), else <data_dir>/keys, created on the demo's first start
    # and kept with its data.
    trust_dir: Path | None = None
    # The demo's mail catcher (vardkedja/catcher.py): every notify service sends its e-mail
    # there and may post webhooks to loopback (only loopback).
    mail_relay_port: int | None = None

    @property
    def keys_dir(self) -> Path:
        if self.trust_dir is not None:
            return self.trust_dir
        configured = os.environ.get("VK_TRUST__DIR")
        return Path(configured) if configured else self.data_dir / "keys"

    def ensure_keys(self) -> None:
        """Keys for every member that has none yet, and the trust list naming them all."""
        from shared.messaging.trust_keys import ensure_members

        ensure_members(self.keys_dir, [(m.orgnr, m.name) for m in self.members])

    @property
    def bootstrap_servers(self) -> str:
        if self.bootstrap:
            return self.bootstrap
        return f"127.0.0.1:{self.broker_port}"

    def env(self, member: Member, service: str) -> dict[str, str]:
        """The environment of one process of ``member``'s ``service``."""
        env = {
            **os.environ,
            "VK_ENV": "development",
            "VK_SERVICE": service,
            "VK_MEMBER__ORGNR": member.orgnr,
            "VK_MEMBER__NAME": member.name,
            "VK_MEMBER__KIND": member.kind,
            "VK_DATA_DIR": str(self.data_dir),
            "VK_AUTO_MIGRATE": "false",
            "VK_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "VK_KAFKA__FETCH_MAX_WAIT_MS": str(self.fetch_max_wait_ms),
            "VK_HTTP__HOST": "127.0.0.1",
            "VK_HTTP__PORT": str(member.port(service)),
            "VK_TRUST__DIR": str(self.keys_dir.resolve()),
            "VK_FEDERATION_MEMBERS": "[" + ",".join(f'"{m.orgnr}"' for m in self.members) + "]",
            # The referral service asks its own member's consent and directory services.
            "VK_REFERRAL__CONSENT_URL": f"http://127.0.0.1:{member.port('consent')}",
            "VK_REFERRAL__DIRECTORY_URL": f"http://127.0.0.1:{member.port('directory')}",
            # A notification's link leads to the member's own notify service.
            "VK_NOTIFY__LINK_BASE_URL": f"http://127.0.0.1:{member.port('notify')}",
            **self.relay_env(),
            **self.broker_env,
            **self.extra_env,
        }
        url = self.database_url_for.get((member.orgnr, service))
        if url:
            env["VK_DATABASE_URL"] = url
        if service == FACADE:  # no service of its own: it calls the member's four
            del env["VK_SERVICE"]
            for name in SERVICES:
                env[f"VK_FHIR__{name.upper()}_URL"] = f"http://127.0.0.1:{member.port(name)}"
        return env

    def relay_env(self) -> dict[str, str]:
        """Notify's settings for the demo's mail catcher and webhook receiver (if any)."""
        if self.mail_relay_port is None:
            return {}
        return {
            "VK_NOTIFY__SMTP__HOST": "127.0.0.1",
            "VK_NOTIFY__SMTP__PORT": str(self.mail_relay_port),
            "VK_NOTIFY__SMTP__TLS": "none",
            "VK_NOTIFY__SMTP__SENDER": "vardkedja-demo@example.invalid",
            "VK_NOTIFY__WEBHOOK_ALLOW_LOOPBACK": "true",
        }

    def start_broker(self) -> None:
        """Start the federation's own broker (unless it was given one): Apache Kafka keeps
        its log under ``data_dir/kafka``, so a restarted demo finds its events again."""
        if self.bootstrap:
            return
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        ports = (self.broker_port, self.broker_port + 1) if self.engine == "kafka" else ()
        for port in ports or (self.broker_port,):
            if port_open("127.0.0.1", port):
                raise RuntimeError(
                    f"port {port} is taken: stop the other broker or pass --broker-port"
                )
        self.broker = new_broker(
            self.engine,
            (self.data_dir / "kafka").resolve(),
            port=self.broker_port,
            log_path=self.data_dir / "logs" / "broker.log",
        )
        self.broker.start()
        self.broker_env = client_env(self.broker)

    def migrate(self) -> None:
        """Apply every service's migrations for every member (before the processes start)."""
        from shared.config import Settings
        from shared.data.migrations import upgrade_sync
        from shared.service import load_spec

        for member in self.members:
            for service in self.services:
                env = self.env(member, service)
                settings = Settings(
                    service=service,
                    member={"orgnr": member.orgnr, "name": member.name, "kind": member.kind},
                    data_dir=self.data_dir,
                    database_url=env.get("VK_DATABASE_URL"),
                )
                upgrade_sync(load_spec(service).migrations_dir, settings.db_url)

    def spawn(self, member: Member, service: str, role: str) -> Proc:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{member.digits}-{service}-{role}.log"
        out = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            [sys.executable, "-m", "vardkedja.cli", role, service],
            env=self.env(member, service),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops us in order
            preexec_fn=die_with_parent,
        )
        out.close()
        proc = Proc(member, service, role, process, log_path)
        self.procs.append(proc)
        return proc

    def start(
        self,
        *,
        roles: Iterable[str] = ("serve", "worker"),
        only: Iterable[tuple[str, str, str]] | None = None,
    ) -> None:
        """Start the broker, migrate, and spawn the processes (all, or ``only`` these
        (orgnr, service, role) triples)."""
        self.start_broker()
        self.ensure_keys()
        self.migrate()
        wanted = set(only) if only is not None else None
        for member in self.members:
            for service in self.services:
                for role in roles:
                    if wanted is None or (member.orgnr, service, role) in wanted:
                        self.spawn(member, service, role)
            facade = (member.orgnr, FACADE, "serve")
            if self.facade and "serve" in roles and (wanted is None or facade in wanted):
                self.spawn(member, FACADE, "serve")

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every API answers /readyz with 200 (and no process has died)."""
        deadline = time.monotonic() + timeout
        apis = [p for p in self.procs if p.role == "serve"]
        pending = {p.name: p for p in apis}
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending:
                for proc in self.procs:
                    if proc.process.poll() is not None:
                        raise RuntimeError(
                            f"{proc.name} exited with {proc.process.returncode}; "
                            f"see {proc.log_path}; its last lines:\n{_tail(proc.log_path)}"
                        )
                for name, proc in list(pending.items()):
                    url = f"http://127.0.0.1:{proc.member.port(proc.service)}/readyz"
                    try:
                        if (await client.get(url)).status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"not ready: {', '.join(sorted(pending))}")
                if pending:
                    await asyncio.sleep(0.25)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every process, wait, then SIGKILL what is left; stop the broker last."""
        for proc in self.procs:
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                proc.process.wait(remaining)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()
        self.procs.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def member(self, orgnr: str) -> Member:
        """The member of ``orgnr``."""
        return next(m for m in self.members if m.orgnr == orgnr)

    def find(self, orgnr: str, service: str, role: str) -> Proc:
        for proc in self.procs:
            if (proc.member.orgnr, proc.service, proc.role) == (orgnr, service, role):
                return proc
        raise KeyError((orgnr, service, role))


# The Kronoberg demo directory (services/directory/demo/kronoberg.yaml), by owner orgnr.
DEMO_UNITS: dict[str, list[dict[str, Any]]] = load_demo_units()
# Each demo member's own record (name, county, kommuner served), by orgnr.
DEMO_MEMBERS_RECORDS: dict[str, dict[str, Any]] = load_demo_members()


def _seed_key(member: Member, index: int, unit: dict[str, Any]) -> str:
    """The Idempotency-Key of one demo unit: stable for the same content.

    The content's digest is part of the key, so a re-run against an existing ``var/`` after
    the demo file changed creates the changed unit instead of being refused for reusing a
    key with another body.
    """
    canonical = json.dumps(unit, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return f"demo-seed-{member.digits}-{index:03d}-{digest}"


@dataclass(frozen=True)
class Seeded:
    """What seeding the demo did: units created now, and every demo unit's id by
    ``(orgnr, name)``."""

    created: int
    unit_ids: dict[tuple[str, str], str]


async def seed_demo_units(fed: Federation) -> Seeded:
    """Create the demo units and member records through each member's own directory API
    (idempotently)."""
    from shared.identity.auth import mint_token

    created = 0
    ids: dict[tuple[str, str], str] = {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        for member in fed.members:
            token = mint_token(
                sub="demo-seed", org=member.orgnr, scopes=["directory:write"], ttl_seconds=300
            )
            for i, unit in enumerate(DEMO_UNITS.get(member.orgnr, [])):
                r = await client.post(
                    f"http://127.0.0.1:{member.port('directory')}/v1/units",
                    json=unit,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Idempotency-Key": _seed_key(member, i, unit),
                    },
                )
                r.raise_for_status()
                created += r.headers.get("Idempotent-Replayed") != "true"
                ids[(member.orgnr, unit["name"])] = r.json()["id"]
            record = DEMO_MEMBERS_RECORDS.get(member.orgnr)
            if record is not None:  # an unchanged record is a no-op: safe on every start
                r = await client.put(
                    f"http://127.0.0.1:{member.port('directory')}/v1/member",
                    json={**record, "kind": member.kind},
                    headers={"Authorization": f"Bearer {token}"},
                )
                r.raise_for_status()
    return Seeded(created, ids)


async def subscribe_demo_webhook(member: Member, unit_id: str, url: str) -> str:
    """Subscribes ``unit_id`` of ``member`` to every notification kind at ``url``; returns
    the signing secret (a new one on every start: an existing subscription to ``url`` has
    its secret rotated, so restarting the demo on the same ``var/`` adds none)."""
    from services.notify.content import KINDS
    from services.notify.subscriptions import generate_secret
    from shared.identity.auth import mint_token

    secret = generate_secret()
    token = mint_token(
        sub="demo-seed",
        org=member.orgnr,
        scopes=["notify:read", "notify:write"],
        roles=["member_admin"],
        ttl_seconds=300,
    )
    base = f"http://127.0.0.1:{member.port('notify')}/v1/webhook-subscriptions"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10.0, headers=headers) as client:
        r = await client.get(base, params={"unit_id": unit_id, "limit": 100})
        r.raise_for_status()
        existing = [s["id"] for s in r.json()["items"] if s["url"] == url]
        if existing:
            r = await client.post(f"{base}/{existing[0]}/rotate-secret", json={"secret": secret})
        else:
            body = {"unit_id": unit_id, "url": url, "event_types": list(KINDS), "secret": secret}
            r = await client.post(base, json=body)
        r.raise_for_status()
    return secret


def unit_tokens(
    fed: Federation, unit_ids: dict[tuple[str, str], str]
) -> dict[tuple[str, str], str]:
    """A development token per demo unit: a user at that unit with every scope, for the
    operations a unit does (send, receive, answer) from the docs pages."""
    from shared.identity.auth import mint_token

    names = {m.orgnr: m for m in fed.members}
    return {
        (orgnr, name): mint_token(
            sub=f"demo-{uid[:8]}",
            org=orgnr,
            unit=uid,
            scopes=ALL_SCOPES.split(),
            ttl_seconds=12 * 3600,
        )
        for (orgnr, name), uid in unit_ids.items()
        if orgnr in names
    }


def write_unit_tokens(
    path: Path,
    fed: Federation,
    unit_ids: dict[tuple[str, str], str],
    tokens: dict[tuple[str, str], str],
) -> None:
    """``var/demo-tokens.md``: every demo unit, its id and its token."""
    lines = [
        "# The demo units' tokens",
        "",
        "Paste a unit's token into *Authorize* on its member's docs pages to act as that unit "
        "(send a referral, work its inbox, answer an invitation). Valid for 12 hours; "
        "`make run` writes new ones on every start.",
    ]
    for member in fed.members:
        lines += ["", f"## {member.name} ({member.orgnr})", "", "| unit | unit id | token |"]
        lines.append("|---|---|---|")
        for (orgnr, name), token in tokens.items():
            if orgnr == member.orgnr:
                lines.append(f"| {name} | `{unit_ids[(orgnr, name)]}` | `{token}` |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _tail(path: Path, lines: int = 30) -> str:
    """The last lines of a process log (for the error when a process died at start)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])
