"""Alembic environment of the directory service."""

from services.directory.models import Base
from shared.data.migrations import run_env

run_env(Base.metadata)
