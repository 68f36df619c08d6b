"""Tables of the directory service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.data.db import IdMixin, TimestampMixin, UTCDateTime, make_metadata, utcnow
from shared.data.infra import define_infra_tables


class Base(DeclarativeBase):
    metadata = make_metadata()


infra = define_infra_tables(Base.metadata)


class UnitPublicFields:
    """Everything about a unit that every member may see (organisational data only).

    Shared by the owner's table and the replica so the two cannot drift apart; the
    broadcast event carries exactly these fields.
    """

    owner_orgnr: Mapped[str] = mapped_column(String(11), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64), index=True)
    mission: Mapped[str] = mapped_column(Text, default="")
    target_groups: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    interventions: Mapped[list[str]] = mapped_column(JSON, default=list)
    kommunkoder: Mapped[list[str]] = mapped_column(JSON, default=list)
    contact_paths: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    referral_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(32), default="active", index=True)
    status_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    parent_unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    valid_from: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    valid_to: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    capacity: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The unit's HSA-id (Katalogtjänst HSA), if it has one: searchable, and a token's
    # ``unit`` claim may name the unit by it (ADR 0028).
    hsa_id: Mapped[str | None] = mapped_column(String(31), nullable=True, index=True)


class Unit(IdMixin, TimestampMixin, UnitPublicFields, Base):
    """A unit or function owned by this member (the source of truth)."""

    __tablename__ = "unit"

    version: Mapped[int] = mapped_column(Integer, default=1)
    # One unit per HSA-id in the member's own directory.
    hsa_id: Mapped[str | None] = mapped_column(String(31), nullable=True, unique=True)
    # The due date a review-due event was last sent for (one event per unit and due date).
    review_due_sent_for: Mapped[dt.date | None] = mapped_column(Date, nullable=True)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's API


class ReplicaUnit(UnitPublicFields, Base):
    """A unit of any member as last seen on ``vardkedja.directory`` (the read replica)."""

    __tablename__ = "replica_unit"

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source_event_id: Mapped[str] = mapped_column(String(64))
    # Grows with every change applied (one writer: the member's replica consumer), so API
    # processes refresh their search index with the rows changed since they last looked.
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0, index=True)


class MemberRecord(Base):
    """A member (huvudman) of the federation as it describes itself: this member's own
    record (written through its API) and every other member's (from the directory topic)."""

    __tablename__ = "member_record"

    orgnr: Mapped[str] = mapped_column(String(11), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    county_code: Mapped[str] = mapped_column(String(2))
    kommunkoder: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
