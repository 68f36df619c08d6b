"""The ``vardkedja`` command: run the demo federation, serve one service, mint tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from shared.config import SERVICES, Settings

app = typer.Typer(
    help="vardkedja: referrals, consent and contact paths between huvudmän.",
    no_args_is_help=True,
    add_completion=False,
)

ServiceArg = Annotated[
    str, typer.Argument(help="directory | consent | referral | notify (serve: also fhir)")
]


def _settings(service: str) -> Settings:
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return Settings(service=service)


@app.command()
def serve(service: ServiceArg) -> None:
    """Run the HTTP API of one service (one process; for containers and the federation)."""
    import uvicorn

    from shared.service import load_spec
    from shared.web.app import create_app
    from shared.web.limits import uvicorn_options
    from shared.web.observability import configure_logging

    if service == "fhir":
        _serve_fhir()
        return
    settings = _settings(service)
    configure_logging(
        service=service,
        member=settings.member.orgnr,
        level=settings.log_level,
        json_lines=settings.log_json,
    )
    application = create_app(load_spec(service), settings)
    uvicorn.run(
        application,
        **uvicorn_options(settings.http),  # address, and the head deadline (shared.web.limits)
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


def _serve_fhir() -> None:
    """The member's FHIR facade (``VK_FHIR__*``: where its services answer)."""
    import uvicorn

    from services.fhir.app import create_fhir_app
    from services.fhir.settings import FhirSettings
    from shared.web.limits import uvicorn_options
    from shared.web.observability import configure_logging

    settings = Settings()
    configure_logging(
        service="fhir",
        member=settings.member.orgnr,
        level=settings.log_level,
        json_lines=settings.log_json,
    )
    application = create_fhir_app(
        member=settings.member.orgnr, settings=FhirSettings(), http=settings.http
    )
    uvicorn.run(
        application,
        **uvicorn_options(settings.http),
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


@app.command()
def worker(service: ServiceArg) -> None:
    """Run the worker of one service: its consumers and its outbox relay."""
    from shared.messaging.worker import run_worker
    from shared.service import load_spec

    settings = _settings(service)  # first: an unknown service is a usage error, not a crash
    run_worker(load_spec(service), settings)


@app.command()
def migrate(
    service: Annotated[str | None, typer.Option(help="one service (default: VK_SERVICE)")] = None,
    all_services: Annotated[
        bool, typer.Option("--all", help="every service of this member")
    ] = False,
) -> None:
    """Apply Alembic migrations to this member's database(s)."""
    from shared.data.migrations import upgrade_sync
    from shared.service import load_spec

    names = list(SERVICES) if all_services else [service or Settings().service]
    for name in names:
        settings = _settings(name)
        if all_services and settings.database_url and len(names) > 1:
            typer.echo("--all needs per-service databases: unset VK_DATABASE_URL", err=True)
            raise typer.Exit(2)
        upgrade_sync(load_spec(name).migrations_dir, settings.db_url)
        typer.echo(f"{name}: migrated")


@app.command()
def token(
    org: Annotated[str, typer.Option(help="the caller's member organisationsnummer")],
    scope: Annotated[
        list[str] | None, typer.Option(help="scopes (repeat, or space-separated)")
    ] = None,
    sub: Annotated[str, typer.Option(help="user or system id, never a personnummer")] = "dev",
    unit: Annotated[
        str | None, typer.Option(help="the caller's unit: its id, or its HSA-id (SE...-...)")
    ] = None,
    role: Annotated[list[str] | None, typer.Option(help="roles (repeat)")] = None,
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 8 * 3600,
) -> None:
    """Mint a development token signed with the bundled development key."""
    from shared.identity.auth import mint_token
    from shared.identity.identifiers import IdentifierError, normalise_hsa_id, normalise_orgnr

    # The services refuse a token whose org is not a valid organisationsnummer: say so now
    # instead of printing a token that can never be used.
    try:
        org = normalise_orgnr(org)
    except IdentifierError as exc:
        raise typer.BadParameter(exc.message, param_hint="--org") from None
    # A unit id is a UUID; "SE" and a digit begin an HSA-id, which the services resolve.
    if unit is not None and unit.strip()[:2] == "SE" and unit.strip()[2:3].isdigit():
        try:
            unit = normalise_hsa_id(unit)
        except IdentifierError as exc:
            raise typer.BadParameter(exc.message, param_hint="--unit") from None
    if scope is None:
        scope = ["directory:read"]
    scopes = [s for item in scope or ["directory:read"] for s in item.split()]
    typer.echo(
        mint_token(sub=sub, org=org, scopes=scopes, unit=unit, roles=role or [], ttl_seconds=ttl)
    )


@app.command()
def broker(
    engine: Annotated[
        str, typer.Option(help="tansu (embedded, memory only) or kafka (Apache Kafka, KRaft)")
    ] = "tansu",
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 9092,
    data_dir: Annotated[
        Path, typer.Option(help="Apache Kafka's log and config (kept between runs)")
    ] = Path("var/kafka"),
) -> None:
    """Run a broker in the foreground: the embedded Tansu (memory only) or Apache Kafka."""
    from shared.messaging.broker import ENGINES, new_broker
    from shared.messaging.kafka_jars import KafkaSetupError

    if engine not in ENGINES:
        raise typer.BadParameter(f"one of {', '.join(ENGINES)}", param_hint="--engine")
    b = new_broker(engine, data_dir.resolve(), port=port, host=host)
    try:
        b.start()
    except (KafkaSetupError, RuntimeError, TimeoutError) as exc:
        typer.echo(f"the broker did not start: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"broker: {b.description}; Ctrl-C stops it")
    try:
        while b.process is not None and b.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()


keys_app = typer.Typer(
    help="A member's signing and encryption keys, and the federation's trust list (ADR 0020).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

KeysDir = Annotated[
    Path,
    typer.Option(help="where <orgnr digits>.keys.json (private, mode 0600) is written"),
]
TrustListOpt = Annotated[
    Path | None,
    typer.Option(help="the trust list to add the public keys to (default: <dir>/trust-list.json)"),
]


@keys_app.command("new")
def keys_new(
    orgnr: Annotated[str, typer.Option(help="the member's organisationsnummer")],
    name: Annotated[str, typer.Option(help="the member's name, as the trust list shows it")],
    dir: KeysDir = Path("var/keys"),
    trust_list: TrustListOpt = None,
    exist_ok: Annotated[
        bool, typer.Option(help="keys that already exist are kept (a job run again)")
    ] = False,
) -> None:
    """Create a member's Ed25519 signing and X25519 encryption key pairs; add their public
    halves to the trust list. Never commit or package the private key file."""
    from shared.messaging.trust_keys import TrustConfigError, create_member, keys_file

    if exist_ok and keys_file(dir, orgnr.replace("-", "")).exists():
        typer.echo(f"private keys: {keys_file(dir, orgnr.replace('-', ''))} (kept)")
        return
    try:
        path = create_member(dir, orgnr, name, trust_list=trust_list)
    except (TrustConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"private keys: {path}")
    typer.echo(f"trust list:   {trust_list or dir / 'trust-list.json'}")


@keys_app.command("rotate")
def keys_rotate(
    orgnr: Annotated[str, typer.Option(help="the member's organisationsnummer")],
    dir: KeysDir = Path("var/keys"),
    trust_list: TrustListOpt = None,
    overlap_days: Annotated[
        int, typer.Option(min=1, max=90, help="how long the current keys stay valid")
    ] = 7,
) -> None:
    """New key pairs, used from now on; the current ones retire after the overlap (events
    signed or sealed with them still verify and open until then). Distribute the updated
    trust list to every member before the overlap ends."""
    from shared.messaging.trust_keys import TrustConfigError, rotate_member

    try:
        path = rotate_member(
            dir, orgnr, overlap=dt.timedelta(days=overlap_days), trust_list=trust_list
        )
    except (TrustConfigError, ValueError, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"rotated: {path}")


@keys_app.command("list")
def keys_list(
    trust_list: Annotated[Path, typer.Argument(help="a trust list")] = Path(
        "var/keys/trust-list.json"
    ),
) -> None:
    """The members and keys of a trust list, with their validity (checked as a member
    checks it at start)."""
    from shared.messaging.trust_keys import TrustConfigError, TrustList

    try:
        listed = TrustList.load(trust_list)
    except (TrustConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for member in listed.members.values():
        typer.echo(f"{member.digits[:6]}-{member.digits[6:]}  {member.name}")
        for k in member.keys:
            until = k.not_after.isoformat() if k.not_after else "-"
            typer.echo(f"    {k.use}  {k.kid}  from {k.not_before.isoformat()}  until {until}")


@app.command()
def events() -> None:
    """Print the event catalogue as an AsyncAPI 3.0 document."""
    from shared.messaging.events import CATALOGUE

    typer.echo(json.dumps(CATALOGUE.asyncapi(), indent=2, ensure_ascii=False))


@app.command("audit-actions")
def audit_actions() -> None:
    """Print the audit action codes, their services and Swedish wording as Markdown
    (docs/audit-actions.md)."""
    from shared.identity.audit_actions import audit_actions_markdown

    typer.echo(audit_actions_markdown(), nl=False)


@app.command()
def kinds() -> None:
    """Print the kinds of referral and the information categories each shares (Markdown,
    docs/kinds.md)."""
    from shared.domain.kinds import kinds_markdown

    typer.echo(kinds_markdown(), nl=False)


@app.command()
def run(
    data_dir: Annotated[Path, typer.Option(help="SQLite files and logs")] = Path("var"),
    broker: Annotated[
        str,
        typer.Option(
            help="tansu: the embedded broker (memory only); kafka: Apache Kafka (needs Java)"
        ),
    ] = "tansu",
    broker_port: Annotated[
        int, typer.Option(help="the broker's port (Kafka: and the next)")
    ] = 9092,
    bootstrap: Annotated[
        str | None, typer.Option(help="use this running Kafka instead of starting a broker")
    ] = None,
    fetch_max_wait_ms: Annotated[int, typer.Option()] = 100,
    seed: Annotated[bool, typer.Option(help="create the demo units")] = True,
    catcher_port: Annotated[
        int,
        typer.Option(help="the page of caught e-mails and webhooks (its SMTP server: the next)"),
    ] = 8040,
) -> None:
    """Run the demo federation (Region Kronoberg, Växjö and Alvesta kommun) on the embedded
    broker, or on Apache Kafka with --broker kafka."""
    from shared.domain.calendar import to_local
    from shared.identity.auth import mint_token
    from shared.messaging.broker import ENGINES
    from shared.messaging.kafka_jars import KafkaSetupError
    from vardkedja import guide
    from vardkedja.catcher import Catcher
    from vardkedja.federation import (
        ALL_SCOPES,
        Federation,
        seed_demo_units,
        subscribe_demo_webhook,
        unit_tokens,
        write_unit_tokens,
    )
    from vardkedja.walkthrough import document, steps

    if broker not in ENGINES:
        raise typer.BadParameter(f"one of {', '.join(ENGINES)}", param_hint="--broker")
    fed = Federation(
        data_dir=data_dir,
        broker_port=broker_port,
        engine=broker,
        bootstrap=bootstrap,
        fetch_max_wait_ms=fetch_max_wait_ms,
        mail_relay_port=catcher_port + 1,
        facade=True,
    )
    try:
        catcher = Catcher(http_port=catcher_port, smtp_port=catcher_port + 1).start()
    except OSError as exc:
        typer.echo(f"the mail catcher did not start (--catcher-port): {exc}", err=True)
        raise typer.Exit(1) from None
    stopping = False

    def _interrupt(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM both stop the federation in order. SIGINT is installed explicitly:
    # a shell that starts a job in the background without job control (a CI script, `cmd &`)
    # hands it SIGINT ignored, and Python then installs no KeyboardInterrupt of its own.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        what = "Apache Kafka" if broker == "kafka" and not bootstrap else "the broker"
        typer.echo(f"starting {what} and migrating 12 databases ...")
        try:
            fed.start()
        except (KafkaSetupError, RuntimeError, TimeoutError) as exc:
            typer.echo(f"the federation did not start: {exc}", err=True)
            raise typer.Exit(1) from None
        n = len(fed.procs)
        typer.echo(f"started {n} processes; waiting until every API is ready ...")
        asyncio.run(fed.wait_ready())
        guides: list[Path] = []
        fhir_guide: Path | None = None
        # The walkthrough's and the guide's dates are days in Sweden, as the services count.
        sweden_today = to_local(dt.datetime.now(dt.UTC)).date()
        subscribed = ""  # the demo unit whose webhooks go to the catcher's receiver
        if seed:
            seeded = asyncio.run(seed_demo_units(fed))
            typer.echo(f"demo units created: {seeded.created}")
            tokens = unit_tokens(fed, seeded.unit_ids)
            tokens_path = data_dir / "demo-tokens.md"
            write_unit_tokens(tokens_path, fed, seeded.unit_ids, tokens)
            guides.append(tokens_path)
            receiver = (steps.VAXJO, steps.SOC)  # the walkthrough's first referral goes there
            if receiver in seeded.unit_ids:
                member = next(m for m in fed.members if m.orgnr == receiver[0])
                unit_id = seeded.unit_ids[receiver]
                url = catcher.webhook_url
                catcher.trust(asyncio.run(subscribe_demo_webhook(member, unit_id, url)))
                subscribed = f"{receiver[1]} ({member.name})"
            if all(actor in tokens for actor in steps.ACTORS):
                ports = {m.orgnr: {s: m.port(s) for s in fed.services} for m in fed.members}
                guides.append(
                    document.write(data_dir, seeded.unit_ids, tokens, ports, sweden_today)
                )
                sides = ((steps.REGION, steps.BEROENDE), (steps.VAXJO, steps.SOC))
                if all(side in seeded.unit_ids for side in sides):
                    region_m, kommun_m = (fed.member(orgnr) for orgnr, _ in sides)
                    values = guide.demo_values(
                        region=(
                            steps.REGION,
                            seeded.unit_ids[sides[0]],
                            region_m.port("fhir"),
                            region_m.port("consent"),
                        ),
                        kommun=(
                            steps.VAXJO,
                            seeded.unit_ids[sides[1]],
                            kommun_m.port("fhir"),
                            kommun_m.port("consent"),
                        ),
                        today=sweden_today,
                    )
                    if (written := guide.write(data_dir, values)) is not None:
                        fhir_guide = written
        typer.echo("")
        on = fed.broker.description if fed.broker else f"the Kafka at {fed.bootstrap_servers}"
        typer.echo(f"vardkedja demo federation is running on {on}.")
        typer.echo(
            f"bootstrap {fed.bootstrap_servers}; every event signed by its member and sealed "
            f"for its recipient (keys and trust list: {fed.keys_dir}/)"
        )
        for m in fed.members:
            typer.echo(f"\n{m.name} ({m.kind}, {m.orgnr})")
            for s in fed.services:
                typer.echo(f"  {s:<10} http://127.0.0.1:{m.port(s)}/docs")
            fhir_base = f"http://127.0.0.1:{m.port('fhir')}"
            typer.echo(f"  {'fhir':<10} {fhir_base}/fhir/R4   (docs: {fhir_base}/docs)")
            tok = mint_token(
                sub="demo-admin",
                org=m.orgnr,
                scopes=ALL_SCOPES.split(),
                roles=["member_admin"],
                ttl_seconds=12 * 3600,
            )
            typer.echo(f"  token      {tok}")
        if guides:
            typer.echo(
                "\nThe member tokens above administer. To act as a unit (send a referral, "
                "work its inbox,\nanswer an invitation), use the unit's own token, listed "
                f"in {guides[0]}"
            )
        if len(guides) > 1:
            typer.echo(
                f"The seed report's processes, step by step from the docs pages: {guides[1]}"
            )
        if fhir_guide is not None:
            typer.echo(
                f"A referral end to end through FHIR alone, every request filled in: {fhir_guide}"
            )
        typer.echo(f"\nE-mail and webhooks the members send: {catcher.page_url}")
        typer.echo(f"  every notify service's SMTP relay: 127.0.0.1:{catcher.smtp_port}")
        if subscribed:
            typer.echo(f"  webhooks of {subscribed}: {catcher.webhook_url} (signature checked)")
        typer.echo(f"\nlogs: {data_dir}/logs/   stop: Ctrl-C")
        while True:
            for proc in fed.procs:
                if proc.process.poll() is not None:
                    typer.echo(
                        f"{proc.name} exited ({proc.process.returncode}); see {proc.log_path}",
                        err=True,
                    )
                    raise typer.Exit(1)
            time.sleep(1)
    except KeyboardInterrupt:
        typer.echo("\nstopping ...")
    finally:
        fed.stop()
        catcher.stop()
        typer.echo("stopped.")
    if not stopping:
        sys.exit(0)


if __name__ == "__main__":
    app()
