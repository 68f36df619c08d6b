"""How this member verifies bearer tokens (``VK_AUTH__*``), read by :mod:`shared.config`.

Defined here, beside the verifier that uses it, so the auth package never imports the
configuration module (which imports the auth package to refuse the development key).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class AuthSettings(BaseModel):
    """Bearer-token verification."""

    issuer: str = "vardkedja-dev"
    audience: str = "vardkedja"
    # Either a JWKS URL (production) or PEM public keys (file paths or inline PEM).
    jwks_url: str | None = None
    public_keys: list[str] = Field(default_factory=list)
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    # Development only: the repository's bundled key pair is trusted when no keys are given.
    allow_dev_key: bool = True
    leeway_seconds: int = Field(30, ge=0, le=300)
    dev_key_dir: Path | None = Field(
        None,
        description="where this machine's development token key is made and kept "
        "(default ~/.cache/vardkedja/dev-auth; never in the package or an image)",
    )
