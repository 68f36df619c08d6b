"""The unit of work of one handled request or event.

What a step of a service needs besides its own arguments travels together instead of being
passed by hand through every call: the transaction (``session``), where it publishes
(``outbox``, written in that same transaction), who this instance is (``settings``, whose
``member`` it serves), who asked (``caller``: the verified token of a request; None for an
event from the bus or a timer) and when (``now``, read once so that every row and event of
the step carries the same instant).

A router or an inbound handler makes one per request or event; the domain
functions take it as their first argument. The step's changes and the events it publishes
commit together or not at all (ADR 0004): :meth:`Work.publish` only adds to the outbox.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pydantic import BaseModel

from shared.data.db import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.config import Settings
    from shared.identity.auth.tokens import Caller
    from shared.messaging.events import CloudEvent
    from shared.messaging.outbox import Outbox


@dataclass(frozen=True)
class Work:
    """One request's or one event's session, outbox, member, caller and clock."""

    session: AsyncSession
    outbox: Outbox
    settings: Settings
    caller: Caller | None = None
    now: dt.datetime = field(default_factory=utcnow)

    @property
    def member(self) -> str:
        """This instance's member (its organisationsnummer with the hyphen)."""
        return self.settings.member.orgnr

    def as_caller(self, caller: Caller | None) -> Work:
        """The same step on behalf of another caller (None: the member itself)."""
        return replace(self, caller=caller)

    async def publish(
        self,
        topic: str,
        type_: str,
        payload: BaseModel,
        *,
        subject: str | None = None,
        key: str | None = None,
        aggversion: int | None = None,
    ) -> CloudEvent:
        """Adds an event to the outbox in this step's transaction; returns it."""
        return await self.outbox.publish(
            self.session, topic, type_, payload, subject=subject, key=key, aggversion=aggversion
        )

    async def add(self, topic: str, event: CloudEvent) -> None:
        """Adds an event built elsewhere to the outbox in this step's transaction."""
        await self.outbox.add(self.session, topic, event)
