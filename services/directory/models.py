"""Tables of the directory service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import IdMixin, TimestampMixin, UTCDateTime, make_metadata, utcnow
from shared.infra import define_infra_tables


class Base(DeclarativeBase):
    metadata = make_metadata()


infra = define_infra_tables(Base.metadata)


class Unit(IdMixin, TimestampMixin, Base):
    """A unit or function owned by this member (the source of truth)."""

    __tablename__ = "unit"

    owner_orgnr: Mapped[str] = mapped_column(String(11), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    kommunkoder: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(32), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's API


class ReplicaUnit(Base):
    """A unit of any member as last seen on ``vardkedja.directory`` (the read replica)."""

    __tablename__ = "replica_unit"

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(11), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    kommunkoder: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source_event_id: Mapped[str] = mapped_column(String(64))
