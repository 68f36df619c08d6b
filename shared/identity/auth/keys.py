"""Signing and verification keys: loading, identifying and the bundled development key pair.

Keys are given either inline (a PEM text containing ``-----BEGIN``) or as a file path. A
public key may be a ``PUBLIC KEY`` (SubjectPublicKeyInfo), an ``RSA PUBLIC KEY`` or a
``CERTIFICATE`` (its subject public key is used). Only RSA keys of at least 2048 bits and
EC keys on P-256, P-384 or P-521 are accepted: there are no symmetric keys anywhere.

A key is identified by its RFC 7638 JWK thumbprint (SHA-256, base64url without padding);
:func:`shared.identity.auth.mint_token` uses it as the default ``kid`` and
:class:`shared.identity.auth.TokenVerifier` indexes PEM-configured keys by it.

The development key pair is made on first use outside the package and the tree
(:func:`dev_key_dir`, ``~/.cache/vardkedja/dev-auth``), so no package or image carries one;
only a process with ``VK_ENV=development`` or ``test`` set explicitly trusts it, production
refuses it, and :func:`is_dev_public_key` recognises it by its public numbers, not by its
text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
"""A public key usable for token verification."""

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""A private key usable for token signing."""


def dev_key_dir() -> Path:
    """Where this machine's development key pair lives: ``VK_AUTH__DEV_KEY_DIR``, else
    ``~/.cache/vardkedja/dev-auth``. Never inside the package, the tree or an image."""
    chosen = os.environ.get("VK_AUTH__DEV_KEY_DIR")
    return Path(chosen) if chosen else Path.home() / ".cache" / "vardkedja" / "dev-auth"


def _dev_paths() -> tuple[Path, Path]:
    folder = dev_key_dir()
    return folder / "dev_private.pem", folder / "dev_public.pem"


def _ensure_dev_key() -> tuple[Path, Path]:
    """The development key pair, created on first use (RSA 2048, private key mode 0600)."""
    import fcntl

    private, public = _dev_paths()
    if private.exists() and public.exists():
        return private, public
    private.parent.mkdir(parents=True, exist_ok=True)
    with open(private.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (private.exists() and public.exists()):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fd = os.open(private.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            public.write_bytes(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            os.replace(private.with_suffix(".tmp"), private)
    return private, public


MIN_RSA_BITS = 2048

# JWS algorithm per EC curve (RFC 7518 section 3.4).
_EC_ALGORITHMS: dict[str, str] = {
    "secp256r1": "ES256",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}
_EC_JWK_CURVES: dict[str, str] = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}


def dev_private_key_pem() -> str:
    """This machine's development private key (PKCS#8 PEM), created on first use. It signs
    the demo's and the tests' tokens; only a process with ``VK_ENV=development`` (or
    ``test``) set explicitly trusts it."""
    return _ensure_dev_key()[0].read_text(encoding="ascii")


def dev_public_key_pem() -> str:
    """This machine's development public key (SubjectPublicKeyInfo PEM)."""
    return _ensure_dev_key()[1].read_text(encoding="ascii")


def dev_public_key_path() -> Path:
    return _ensure_dev_key()[1]


def _dev_public_der() -> bytes | None:
    """The development public key of this machine, if one was ever made here."""
    _private, public = _dev_paths()
    if not public.exists():
        return None
    return _dev_der_of(public.read_bytes())


@lru_cache(maxsize=4)
def _dev_der_of(pem: bytes) -> bytes:
    return public_key_der(load_public_key(pem.decode("ascii")))


def _is_inline_pem(value: str) -> bool:
    return "-----BEGIN" in value


def _read_pem(pem_or_path: str, what: str) -> bytes:
    """The PEM bytes of an inline PEM or of the file at a path. Never echoes key material."""
    if _is_inline_pem(pem_or_path):
        return pem_or_path.strip().encode("ascii", errors="replace")
    path = Path(pem_or_path.strip()).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} file {str(path)!r}: {exc.strerror}") from None


def _check_key(key: object, what: str) -> None:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"{what} is an RSA key of {key.key_size} bits; at least 2048 needed")
        return
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if key.curve.name not in _EC_ALGORITHMS:
            raise ValueError(f"{what} uses the unsupported curve {key.curve.name}")
        return
    raise ValueError(f"{what} is neither an RSA nor an EC key")


def load_public_key(pem_or_path: str) -> PublicKey:
    """Load a public key from an inline PEM or a file path.

    Accepts ``PUBLIC KEY``, ``RSA PUBLIC KEY`` and ``CERTIFICATE`` PEM blocks. Raises
    :class:`ValueError` (without key material in the message) when it cannot be used.
    """
    data = _read_pem(pem_or_path, "public key")
    key: object
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key or certificate") from None
    _check_key(key, "the public key")
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key


def load_private_key(pem_or_path: str) -> PrivateKey:
    """Load an unencrypted private key (PKCS#8 or traditional PEM) from inline PEM or a path."""
    data = _read_pem(pem_or_path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError("not an unencrypted PEM private key") from None
    _check_key(key, "the private key")
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key


def public_key_der(key: PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a key: equal for equal keys whatever their PEM text."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def is_dev_public_key(pem_or_path: str) -> bool:
    """Whether the key (inline PEM, certificate or file path) is the bundled development key.

    Compares the DER encoding of the public key, so a re-encoded copy of the development key
    (other line breaks, ``RSA PUBLIC KEY`` format, a certificate for it) is still recognised.
    A value that cannot be loaded as a key is not the development key (returns False).
    """
    try:
        key = load_public_key(pem_or_path)
    except ValueError:
        return False
    return is_dev_key(key)


def is_dev_key(key: PublicKey) -> bool:
    """Whether a loaded public key is this machine's development key."""
    dev = _dev_public_der()
    return dev is not None and public_key_der(key) == dev


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_bytes(value: int, length: int | None = None) -> bytes:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def _jwk_members(key: PublicKey) -> dict[str, str]:
    """The required public JWK members of a key (RFC 7518 section 6)."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {
            "e": _b64url(_uint_bytes(numbers.e)),
            "kty": "RSA",
            "n": _b64url(_uint_bytes(numbers.n)),
        }
    ec_numbers = key.public_numbers()
    size = (key.curve.key_size + 7) // 8
    return {
        "crv": _EC_JWK_CURVES[key.curve.name],
        "kty": "EC",
        "x": _b64url(_uint_bytes(ec_numbers.x, size)),
        "y": _b64url(_uint_bytes(ec_numbers.y, size)),
    }


def jwk_thumbprint(key: PublicKey | PrivateKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url, no padding) of a key's public part."""
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    canonical = json.dumps(_jwk_members(public), sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def algorithm_for_key(key: PublicKey | PrivateKey) -> str:
    """The JWS algorithm a key signs with: RS256 for RSA, ES256/ES384/ES512 by EC curve."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RS256"
    return _EC_ALGORITHMS[key.curve.name]


def key_fits_algorithm(key: object, algorithm: str) -> bool:
    """Whether a verification key can check a signature made with ``algorithm``."""
    if algorithm.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    if algorithm.startswith("ES") and isinstance(key, ec.EllipticCurvePublicKey):
        return _EC_ALGORITHMS.get(key.curve.name) == algorithm
    return False


def public_jwk(key: PublicKey | PrivateKey, *, kid: str | None = None) -> dict[str, Any]:
    """The public JWK of a key, with ``kid`` (default: its thumbprint), ``use`` and ``alg``.

    Suitable for serving in a JWKS (``{"keys": [public_jwk(key)]}``).
    """
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    jwk: dict[str, Any] = dict(_jwk_members(public))
    jwk.update(kid=kid or jwk_thumbprint(public), use="sig", alg=algorithm_for_key(public))
    return jwk
