"""Tables of the consent service (its domain tables arrive with its issue)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import make_metadata
from shared.infra import define_infra_tables


class Base(DeclarativeBase):
    metadata = make_metadata()


infra = define_infra_tables(Base.metadata)
