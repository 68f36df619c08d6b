"""Authentication and authorisation of API callers: bearer JWTs, keys and FastAPI guards.

The token format every integration signs to is documented in :mod:`shared.identity.auth.tokens`.
"""

from shared.identity.auth.dependencies import (
    CurrentCaller,
    bearer_scheme,
    current_caller,
    ensure_member,
    ensure_unit,
    require_scopes,
)
from shared.identity.auth.keys import (
    dev_private_key_pem,
    dev_public_key_pem,
    is_dev_public_key,
    jwk_thumbprint,
    load_private_key,
    load_public_key,
    public_jwk,
)
from shared.identity.auth.tokens import REQUIRED_CLAIMS, Caller, Signer, TokenVerifier, mint_token

__all__ = [
    "REQUIRED_CLAIMS",
    "Caller",
    "CurrentCaller",
    "Signer",
    "TokenVerifier",
    "bearer_scheme",
    "current_caller",
    "dev_private_key_pem",
    "dev_public_key_pem",
    "ensure_member",
    "ensure_unit",
    "is_dev_public_key",
    "jwk_thumbprint",
    "load_private_key",
    "load_public_key",
    "mint_token",
    "public_jwk",
    "require_scopes",
]
