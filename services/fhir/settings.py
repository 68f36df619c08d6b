"""The facade's settings: where this member's own services answer (``VK_FHIR__*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FhirSettings(BaseSettings):
    """Settings of the FHIR facade: ``VK_FHIR__REFERRAL_URL`` and so on. The member, the
    HTTP listener and logging are the common settings (``VK_MEMBER__ORGNR``, ``VK_HTTP__*``)."""

    model_config = SettingsConfigDict(env_prefix="VK_FHIR__", extra="ignore")

    referral_url: str = Field("http://127.0.0.1:8002", description="this member's referral API")
    directory_url: str = Field("http://127.0.0.1:8000", description="this member's directory")
    consent_url: str = Field("http://127.0.0.1:8001", description="this member's consent API")
    notify_url: str = Field("http://127.0.0.1:8003", description="this member's notify API")
    timeout_s: float = Field(15.0, gt=0, le=120, description="one call to one of the services")
    page_max: int = Field(100, ge=1, le=500, description="the largest `_count` answered")
