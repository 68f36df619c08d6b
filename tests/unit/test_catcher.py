"""The demo's mail catcher and webhook receiver (vardkedja/catcher.py), over real SMTP and
real HTTP on loopback: what notify sends shows on its page, newest first, and a webhook is
verified only with the subscription's secret."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from services.notify.subscriptions import check_webhook_url, generate_secret
from shared.config import NotifySettings, Settings
from shared.messaging.processes import free_port
from shared.web.errors import InvalidInput
from tests.helpers.harness import eventually
from vardkedja.catcher import Catcher


@pytest.fixture
def catcher() -> Iterator[Catcher]:
    c = Catcher(smtp_port=free_port(), http_port=free_port()).start()
    try:
        yield c
    finally:
        c.stop()


def _send(catcher: Catcher, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = "vardkedja-demo@example.invalid"
    message["To"] = "mottagning.vuxna@vaxjo.example"
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", catcher.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)


def _signed(secret: str, body: bytes, msg_id: str = "msg_1") -> dict[str, str]:
    at = dt.datetime.now(dt.UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
        "content-type": "application/json",
    }


async def _caught(catcher: Catcher) -> dict[str, list[dict[str, object]]]:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(f"{catcher.page_url}caught.json")
    assert r.status_code == 200
    result: dict[str, list[dict[str, object]]] = r.json()
    return result


class TestMailCatcher:
    async def test_an_email_sent_over_smtp_shows_on_the_page_newest_first(
        self, catcher: Catcher
    ) -> None:
        await asyncio.to_thread(_send, catcher, "Ny remiss", "Öppna: http://127.0.0.1:8023/x")
        await asyncio.to_thread(_send, catcher, "Påminnelse", "<script>alert(1)</script>")

        async def two() -> bool:
            return len((await _caught(catcher))["mails"]) == 2

        await eventually(two, within=10, what="both e-mails caught")
        mails = (await _caught(catcher))["mails"]
        assert [m["subject"] for m in mails] == ["Påminnelse", "Ny remiss"]
        first = mails[1]
        assert first["sender"] == "vardkedja-demo@example.invalid"
        assert first["to"] == ["mottagning.vuxna@vaxjo.example"]
        assert "http://127.0.0.1:8023/x" in str(first["body"])
        async with httpx.AsyncClient(timeout=10) as client:
            page = await client.get(catcher.page_url)
        assert page.status_code == 200
        assert "Ny remiss" in page.text
        assert page.text.index("Påminnelse") < page.text.index("Ny remiss")
        assert "<script>alert" not in page.text  # escaped: the page shows, never runs


class TestWebhookReceiver:
    async def test_a_webhook_signed_with_the_subscriptions_secret_is_verified(
        self, catcher: Catcher
    ) -> None:
        secret = generate_secret()
        catcher.trust(secret)
        body = json.dumps({"kind": "referral.received", "title": "Ny remiss"}).encode()
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.post(catcher.webhook_url, content=body, headers=_signed(secret, body))
            assert r.status_code == 204
            page = await client.get(catcher.page_url)
        hooks = (await _caught(catcher))["webhooks"]
        assert len(hooks) == 1
        assert hooks[0]["verified"] is True
        assert json.loads(str(hooks[0]["body"]))["kind"] == "referral.received"
        assert "NOT verified" not in page.text

    async def test_a_bad_signature_is_shown_unverified(self, catcher: Catcher) -> None:
        catcher.trust(generate_secret())
        body = b'{"kind": "referral.received"}'
        forged = _signed(generate_secret(), body)  # another secret than the subscription's
        tampered = _signed(catcher.secrets[0], b'{"kind": "x"}')  # signed another body
        async with httpx.AsyncClient(timeout=10) as client:
            for headers in (forged, tampered, {}):
                r = await client.post(catcher.webhook_url, content=body, headers=headers)
                assert r.status_code == 204  # a receiver answers; the page says what it saw
            page = await client.get(catcher.page_url)
        hooks = (await _caught(catcher))["webhooks"]
        assert [h["verified"] for h in hooks] == [False, False, False]
        assert page.text.count("NOT verified") == 3

    async def test_only_webhook_posts_are_taken(self, catcher: Catcher) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.post(f"{catcher.page_url}elsewhere", content=b"{}")
            assert r.status_code == 404
            assert (await client.get(f"{catcher.page_url}nothing")).status_code == 404
        assert (await _caught(catcher))["webhooks"] == []


class TestTheDemoSettingAllowsLoopbackOnly:
    """``VK_NOTIFY__WEBHOOK_ALLOW_LOOPBACK`` (the demo's receiver): loopback, and nothing
    else private; off by default and refused in production."""

    @staticmethod
    async def _rule(url: str, *, loopback: bool) -> str | None:
        settings = Settings(notify=NotifySettings(webhook_allow_loopback=loopback))
        try:
            await check_webhook_url(url=url, settings=settings)
        except InvalidInput as exc:
            return exc.errors[0].rule if exc.errors else "?"
        return None

    async def test_loopback_is_allowed_and_other_private_addresses_are_not(self) -> None:
        assert await self._rule("http://127.0.0.1:8040/webhook", loopback=True) is None
        assert await self._rule("http://[::1]:8040/webhook", loopback=True) is None
        for private in ("http://10.0.0.5/hook", "http://192.168.1.9/hook", "http://169.254.1.1/"):
            assert await self._rule(private, loopback=True) == "private_address"

    async def test_off_by_default(self) -> None:
        assert NotifySettings().webhook_allow_loopback is False
        assert await self._rule("http://127.0.0.1:8040/webhook", loopback=False) == (
            "private_address"
        )

    def test_refused_in_production(self) -> None:
        settings = Settings(env="production", notify=NotifySettings(webhook_allow_loopback=True))
        assert "VK_NOTIFY__WEBHOOK_ALLOW_LOOPBACK is for the demo only" in (
            settings.production_problems()
        )
