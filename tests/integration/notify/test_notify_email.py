"""E-mail to the unit's functional mailbox, against a real SMTP server (aiosmtpd): plain and
STARTTLS with certificate checks, retries on SMTP errors, one e-mail per event, no personal
data, and the mailbox taken from the member's own directory entries (ADR 0012)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from sqlalchemy import select

from services.notify.channels import apply_units_changed
from services.notify.dispatch import Dispatcher
from services.notify.fanout import coordinator_units
from services.notify.models import Delivery
from shared.config import Settings
from shared.data.db import Database, new_id, utcnow
from shared.messaging.events.payloads import UnitChangedV1
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.integration.notify.conftest import (
    ADMIN,
    COORDINATOR,
    INTAKE,
    MAILBOX,
    auth,
    handle,
    notify_settings,
    received,
    set_mailbox,
    work_of,
)
from tests.integration.notify.servers import SmtpServer, self_signed_cert


async def email_deliveries(db: Database) -> list[Delivery]:
    async with db.sessionmaker() as session:
        rows = await session.execute(select(Delivery).where(Delivery.channel == "email"))
        return list(rows.scalars())


async def until_sent(dispatcher: Dispatcher, db: Database, status: str = "delivered") -> Delivery:
    found: list[Delivery] = []

    async def check() -> bool:
        await dispatcher.dispatch_batch()
        found[:] = await email_deliveries(db)
        return len(found) == 1 and found[0].status == status

    await eventually(check, within=30, what=f"the e-mail delivery {status}")
    return found[0]


def smtp_settings(db_url: str, server: SmtpServer, **smtp: object) -> Settings:
    values = {"host": "127.0.0.1", "port": server.port, "tls": "none", **smtp}
    return notify_settings(db_url, smtp=values)


def unit_changed(
    unit_id: str, *, email: str | None, kind: str = "socialtjanstens_mottagning", version: int = 1
) -> UnitChangedV1:
    paths: list[dict[str, object]] = [{"reason": "Ansökan", "channel": "inbox"}]
    if email:
        paths.append({"reason": "Frågor", "channel": "functional_email", "email": email})
    return UnitChangedV1(
        unit_id=unit_id,
        owner_orgnr=ORG_VAXJO,
        name="Socialtjänstens mottagning vuxna",
        kind=kind,
        contact_paths=paths,
        status="active",
        version=version,
        changed_at=utcnow(),
    )


class TestEmailToTheFunctionalMailbox:
    async def test_one_email_per_event_saying_what_where_and_by_when_with_a_link(
        self, db_url: str, db: Database, smtp: SmtpServer, client: httpx.AsyncClient
    ) -> None:
        settings = smtp_settings(db_url, smtp)
        await set_mailbox(client, INTAKE, MAILBOX)
        event, event_id = received(), new_id()
        [nid] = await handle(db, settings, event, event_id=event_id)
        await handle(db, settings, event, event_id=event_id)  # redelivered
        dispatcher = Dispatcher(settings, db)
        try:
            delivery = await until_sent(dispatcher, db)
            await dispatcher.dispatch_batch()
        finally:
            await dispatcher.close()

        [message] = smtp.to(MAILBOX)
        assert len(smtp.messages) == 1
        assert message["Message-ID"] == f"<{delivery.id}@vardkedja.notify>"
        assert message["From"] == settings.notify.smtp.sender
        assert message["Subject"] == "vårdkedja: Ny Kontaktbegäran i inkorgen"
        text = message.get_content()
        assert f"https://notify.vaxjo.example/v1/notifications/{nid}" in text
        assert "Inkorg: vaxjo-soc-mottagning" in text
        assert "Senast: " in text
        assert "Brådskande: ja" in text
        assert event[1].referral_id not in text  # type: ignore[attr-defined]

    async def test_starttls_with_the_relays_certificate_checked(
        self, db_url: str, db: Database, client: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        cert, key = self_signed_cert(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server = SmtpServer(tls_context=context).start()
        try:
            settings = smtp_settings(db_url, server, tls="starttls", cafile=str(cert))
            await set_mailbox(client, INTAKE, MAILBOX)
            await handle(db, settings, received())
            dispatcher = Dispatcher(settings, db)
            try:
                await until_sent(dispatcher, db)
            finally:
                await dispatcher.close()
            assert len(server.to(MAILBOX)) == 1
        finally:
            server.stop()

    async def test_an_unverifiable_certificate_fails_and_is_retried_not_sent(
        self, db_url: str, db: Database, client: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        cert, key = self_signed_cert(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server = SmtpServer(tls_context=context).start()
        try:
            settings = smtp_settings(db_url, server, tls="starttls")  # no cafile: untrusted
            await set_mailbox(client, INTAKE, MAILBOX)
            await handle(db, settings, received())
            dispatcher = Dispatcher(settings, db)
            try:
                dead = await until_sent(dispatcher, db, "dead")
            finally:
                await dispatcher.close()
            assert dead.last_outcome == "smtp_error"
            assert server.messages == []
        finally:
            server.stop()

    async def test_a_temporary_smtp_error_is_retried(
        self, db_url: str, db: Database, smtp: SmtpServer, client: httpx.AsyncClient
    ) -> None:
        settings = smtp_settings(db_url, smtp)
        smtp.fail.append(451)
        await set_mailbox(client, INTAKE, MAILBOX)
        [nid] = await handle(db, settings, received())
        dispatcher = Dispatcher(settings, db)
        try:
            delivered = await until_sent(dispatcher, db)
        finally:
            await dispatcher.close()
        assert delivered.attempts == 2
        assert len(smtp.to(MAILBOX)) == 1
        log = (await client.get(f"/v1/notifications/{nid}/deliveries", headers=auth())).json()
        [email] = [d for d in log if d["channel"] == "email"]
        assert [(a["outcome"], a["status_code"]) for a in email["log"]] == [
            ("smtp_error", 451),
            ("ok", None),
        ]

    async def test_a_unit_without_a_mailbox_is_logged_not_dropped(
        self, db_url: str, db: Database, smtp: SmtpServer
    ) -> None:
        settings = smtp_settings(db_url, smtp)
        await handle(db, settings, received())
        [skipped] = await email_deliveries(db)
        assert (skipped.status, skipped.last_outcome) == ("skipped", "no_mailbox")


class TestMailboxesFromTheDirectory:
    async def test_own_units_mailbox_and_kind_come_from_the_directory_and_the_admin_overrides(
        self, db: Database, client: httpx.AsyncClient
    ) -> None:
        async with db.transaction() as session:
            applied = await apply_units_changed(
                work_of(session, notify_settings(db.url)),
                [
                    unit_changed(INTAKE, email="mottagning@vaxjo.example"),
                    unit_changed(COORDINATOR, email=None, kind="vardkedjekoordinator"),
                    unit_changed("region-unit", email="x@region.example").model_copy(
                        update={"owner_orgnr": ORG_REGION}
                    ),
                ],
            )
        assert applied == 2
        r = await client.get(f"/v1/units/{INTAKE}/channels", headers=auth())
        assert r.json()["mailbox"] == "mottagning@vaxjo.example"
        assert r.json()["kind"] == "socialtjanstens_mottagning"
        r = await client.get("/v1/units/region-unit/channels", headers=auth(**ADMIN))
        assert r.json()["mailbox"] is None
        async with db.sessionmaker() as session:
            coordinators = await coordinator_units(work_of(session, notify_settings(db.url)))
        assert coordinators == [COORDINATOR]

        await set_mailbox(client, INTAKE, "Intag@VAXJO.example")
        r = await client.get(f"/v1/units/{INTAKE}/channels", headers=auth())
        assert r.json()["mailbox"] == "Intag@vaxjo.example"
        # An older directory event changes nothing; a newer one keeps the override.
        async with db.transaction() as session:
            assert (
                await apply_units_changed(
                    work_of(session, notify_settings(db.url)),
                    [unit_changed(INTAKE, email="old@vaxjo.example", version=1)],
                )
                == 0
            )
            await apply_units_changed(
                work_of(session, notify_settings(db.url)),
                [unit_changed(INTAKE, email="ny@vaxjo.example", version=2)],
            )
        r = await client.get(f"/v1/units/{INTAKE}/channels", headers=auth())
        assert (r.json()["directory_email"], r.json()["mailbox"]) == (
            "ny@vaxjo.example",
            "Intag@vaxjo.example",
        )
        r = await client.put(
            f"/v1/units/{INTAKE}/channels",
            json={"email": None, "email_enabled": False},
            headers=auth(**ADMIN),
        )
        assert r.json()["mailbox"] is None

    async def test_only_the_members_admin_sets_mailboxes_and_a_bad_address_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        r = await client.put(
            f"/v1/units/{INTAKE}/channels", json={"email": MAILBOX}, headers=auth()
        )
        assert r.status_code == 403
        r = await client.put(
            f"/v1/units/{INTAKE}/channels", json={"email": "not-an-address"}, headers=auth(**ADMIN)
        )
        assert r.status_code == 422
        [error] = r.json()["errors"]
        assert error["field"] == "email"
        assert "not-an-address" not in r.text
