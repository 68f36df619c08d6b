"""Alembic environment of the notify service."""

from services.notify.models import Base
from shared.data.migrations import run_env

run_env(Base.metadata)
