"""What makes a service: its spec (tables, routers, consumers) and its runtime context.

Every service package exposes ``SPEC: ServiceSpec`` in ``services/<name>/spec.py``. The API
process (:func:`shared.web.app.create_app`) and the worker process
(:mod:`shared.messaging.worker`) are built from it the same way for all four services.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings
from shared.data.db import Database
from shared.data.infra import InfraTables
from shared.identity.audit import Auditor
from shared.messaging.inbox import ConsumerSpec
from shared.messaging.outbox import Outbox, OutboxRelay
from shared.messaging.periodic import PeriodicJob


@dataclass
class ServiceContext:
    """The live parts of one service process, shared by requests and handlers."""

    settings: Settings
    spec: ServiceSpec
    db: Database
    outbox: Outbox
    auditor: Auditor
    relay: OutboxRelay | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServiceSpec:
    """The static description of one service."""

    name: str
    title: str
    description: str
    metadata: MetaData
    infra: InfraTables
    # Its own Alembic history; default services/<name>/migrations.
    migrations: Path | None = None
    routers: Sequence[APIRouter] = ()
    openapi_tags: list[dict[str, str]] = field(default_factory=list)
    consumers: Callable[[ServiceContext], list[ConsumerSpec]] = lambda ctx: []
    # Periodic jobs the worker runs besides housekeeping (e.g. the review-due check).
    periodic: Callable[[ServiceContext], list[PeriodicJob]] = lambda ctx: []
    # Called in the worker once the relay exists (e.g. to register broker-loss hooks).
    on_worker_start: Callable[[ServiceContext], Awaitable[None]] | None = None
    # Called in the worker once its consumers and jobs have stopped, before the database
    # closes (e.g. to record work still in memory).
    on_worker_stop: Callable[[ServiceContext], Awaitable[None]] | None = None
    # Started in the background when the API starts (e.g. to build an in-memory index);
    # cancelled at shutdown. Readiness does not wait for it.
    on_api_start: Callable[[ServiceContext], Awaitable[None]] | None = None
    # Request body limits of its own operations that follow its settings ("METHOD /path":
    # bytes, e.g. an upload's limit from the largest document taken); VK_HTTP__BODY_LIMITS
    # names win.
    body_limits: Callable[[Settings], dict[str, int]] = lambda settings: {}
    # This member's unit with an HSA-id (session, member orgnr, HSA-id -> unit id or None),
    # read from the service's own copy of the directory: a token's ``unit`` claim may name
    # the unit by its HSA-id (ADR 0006, amendment). None: such a token is refused.
    unit_by_hsa_id: Callable[[AsyncSession, str, str], Awaitable[str | None]] | None = None
    version: str = "1.0.0"

    def body_limits_of(self, settings: Settings) -> dict[str, int]:
        """Every named operation's body limit for this service under ``settings``."""
        return {**self.body_limits(settings), **settings.http.body_limits}

    @property
    def migrations_dir(self) -> Path:
        """The service's own Alembic history (``services/<name>/migrations``)."""
        if self.migrations is not None:
            return self.migrations
        package = importlib.util.find_spec(f"services.{self.name}")
        if package is None or package.origin is None:
            raise LookupError(f"no package services.{self.name}")
        return Path(package.origin).parent / "migrations"


def load_spec(name: str) -> ServiceSpec:
    """The spec of service ``name`` (imports ``services.<name>.spec``)."""
    module = importlib.import_module(f"services.{name}.spec")
    spec: ServiceSpec = module.SPEC
    return spec


def build_context(spec: ServiceSpec, settings: Settings) -> ServiceContext:
    db = Database(settings.db_url, background_checkpoints=True)
    outbox = Outbox(settings, spec.infra)
    return ServiceContext(
        settings=settings,
        spec=spec,
        db=db,
        outbox=outbox,
        auditor=Auditor(spec.name, spec.infra, outbox=outbox, orgnr=settings.member.orgnr),
    )


def freeze_startup_objects() -> None:
    """Moves everything allocated at start (modules, models, the app) out of the garbage
    collector's sight: a full collection then scans only what requests and events create
    (full collections of the start-up heap took ~55 ms and showed in p99 latency)."""
    gc.collect()
    gc.freeze()
