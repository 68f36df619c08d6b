"""Alembic environment of the consent service."""

from services.consent.models import Base
from shared.data.migrations import run_env

run_env(Base.metadata)
