"""Alembic environment of the referral service."""

from services.referral.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
