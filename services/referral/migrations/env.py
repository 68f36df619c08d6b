"""Alembic environment of the referral service."""

from services.referral.models import Base
from shared.data.migrations import run_env

run_env(Base.metadata)
