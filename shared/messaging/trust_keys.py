"""The federation's key material and its trust list (ADR 0020).

Every member holds two key pairs of its own (``vardkedja keys new``): an Ed25519 pair that
signs every event it publishes, and an X25519 pair that other members seal personal data
to. Private keys stay with the member (``<digits>.keys.json``, never committed or
packaged); the public halves, with the member's orgnr, name and each key's validity, form
the **trust list** every member configures (``trust-list.json``).

Here: the keys and their validity (:class:`MemberKey`), the trust list
(:class:`TrustList`), the key files, creating and rotating a member's keys
(``vardkedja keys``), and where a member's files are. What is done with them, signing,
sealing, verifying and opening records, is :mod:`shared.messaging.trust`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

TRUST_LIST_FILE = "trust-list.json"


class TrustConfigError(RuntimeError):
    """The trust list or the member's keys are missing or invalid (refuses to start)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a key's validity needs a UTC offset")
    return parsed


def _digits(orgnr: str) -> str:
    from shared.identity.identifiers import normalise_orgnr

    return normalise_orgnr(orgnr).replace("-", "")


@dataclass(frozen=True)
class MemberKey:
    """One public (or, in a member's own key file, private) key with its validity."""

    kid: str
    use: str  # "sig" | "enc"
    key: OKPKey
    not_before: dt.datetime
    not_after: dt.datetime | None

    def valid_at(self, at: dt.datetime) -> bool:
        return self.not_before <= at and (self.not_after is None or at < self.not_after)

    def valid_now(self) -> bool:
        return self.valid_at(_now())

    @classmethod
    def parse(cls, entry: dict[str, Any], *, private: bool) -> MemberKey:
        use = entry.get("use")
        crv = entry.get("crv")
        if use not in ("sig", "enc"):
            raise ValueError("a key's use must be sig or enc")
        if (use, crv) not in (("sig", "Ed25519"), ("enc", "X25519")):
            raise ValueError("a signing key must be Ed25519 and an encryption key X25519")
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError("a key needs a kid")
        if not private and "d" in entry:
            raise ValueError(f"key {kid}: the trust list must hold public keys only")
        if private and "d" not in entry:
            raise ValueError(f"key {kid}: the member's key file must hold private keys")
        jwk: dict[str, str | list[str]] = {
            k: str(entry[k]) for k in ("kty", "crv", "x", "d", "kid") if k in entry
        }
        try:
            key = OKPKey.import_key(jwk)
        except (JoseError, ValueError, TypeError) as exc:
            raise ValueError(f"key {kid} cannot be read") from exc
        not_before = _time(entry.get("not_before")) or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        not_after = _time(entry.get("not_after"))
        if not_after is not None and not_after <= not_before:
            raise ValueError(f"key {kid}: not_after must be after not_before")
        return cls(kid, use, key, not_before, not_after)

    def public_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            **self.key.as_dict(private=False),
            "kid": self.kid,
            "use": self.use,
            "not_before": self.not_before.isoformat(),
        }
        if self.not_after is not None:
            entry["not_after"] = self.not_after.isoformat()
        return entry

    def private_entry(self) -> dict[str, Any]:
        return {**self.public_entry(), **self.key.as_dict(private=True), "kid": self.kid}


@dataclass(frozen=True)
class MemberEntry:
    """One member of the federation as the trust list knows it."""

    digits: str
    name: str
    keys: tuple[MemberKey, ...]

    def key(self, kid: str, use: str) -> MemberKey | None:
        return next((k for k in self.keys if k.kid == kid and k.use == use), None)

    def newest(self, use: str, at: dt.datetime | None = None) -> MemberKey | None:
        """The key of ``use`` valid at ``at`` (default: now) that became valid last (the one
        to use after a rotation)."""
        at = at or _now()
        valid = [k for k in self.keys if k.use == use and k.valid_at(at)]
        return max(valid, key=lambda k: k.not_before) if valid else None


def _parse_keys(raw: object, *, private: bool, where: str) -> tuple[MemberKey, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: keys must be a non-empty list")
    keys = tuple(MemberKey.parse(e, private=private) for e in raw)
    kids = [k.kid for k in keys]
    if len(set(kids)) != len(kids):
        raise ValueError(f"{where}: a kid appears twice")
    return keys


@dataclass(frozen=True)
class TrustList:
    """Every member of the federation: orgnr, name and public keys with their validity."""

    members: dict[str, MemberEntry]

    @classmethod
    def parse(cls, document: object) -> TrustList:
        if not isinstance(document, dict) or not isinstance(document.get("members"), list):
            raise ValueError("the trust list must be an object with a list of members")
        members: dict[str, MemberEntry] = {}
        kids: set[str] = set()
        for raw in document["members"]:
            if not isinstance(raw, dict):
                raise ValueError("a member entry must be an object")
            digits = _digits(str(raw.get("orgnr", "")))
            if digits in members:
                raise ValueError(f"member {digits} appears twice")
            keys = _parse_keys(raw.get("keys"), private=False, where=f"member {digits}")
            for use in ("sig", "enc"):
                if not any(k.use == use for k in keys):
                    raise ValueError(f"member {digits} has no {use} key")
            if kids & {k.kid for k in keys}:
                raise ValueError(f"member {digits}: a kid is used by another member")
            kids |= {k.kid for k in keys}
            members[digits] = MemberEntry(digits, str(raw.get("name", "")), keys)
        if not members:
            raise ValueError("the trust list names no member")
        return cls(members)

    @classmethod
    def load(cls, path: Path) -> TrustList:
        return cls.parse(_read_json(path, "trust list"))

    def document(self) -> dict[str, Any]:
        return {
            "members": [
                {
                    "orgnr": f"{m.digits[:6]}-{m.digits[6:]}",
                    "name": m.name,
                    "keys": [k.public_entry() for k in m.keys],
                }
                for m in sorted(self.members.values(), key=lambda m: m.digits)
            ]
        }


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrustConfigError(f"the {what} {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise TrustConfigError(f"the {what} {path} cannot be read: {type(exc).__name__}") from None


def _write_json(path: Path, document: object, *, private: bool) -> None:
    """Write atomically; a private key file is readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- key management (vardkedja keys) --------------------------------------------------------


def new_key_pair(digits: str, *, not_before: dt.datetime | None = None) -> list[MemberKey]:
    """A fresh signing and encryption key pair for member ``digits``."""
    start = not_before or _now()
    stamp = start.strftime("%Y%m%dT%H%M%S")
    suffix = os.urandom(3).hex()
    keys = []
    for use, crv in (("sig", "Ed25519"), ("enc", "X25519")):
        kid = f"{digits}-{use}-{stamp}-{suffix}"
        key = OKPKey.generate_key(crv, parameters={"kid": kid}, private=True)  # type: ignore[arg-type]
        keys.append(MemberKey(kid, use, key, start, None))
    return keys


def keys_file(directory: Path, digits: str) -> Path:
    return directory / f"{digits}.keys.json"


def load_member_keys(path: Path) -> tuple[str, tuple[MemberKey, ...]]:
    """A member's own key file: its orgnr digits and private keys."""
    document = _read_json(path, "member key file")
    if not isinstance(document, dict):
        raise TrustConfigError(f"the member key file {path} must be an object")
    try:
        digits = _digits(str(document.get("orgnr", "")))
        keys = _parse_keys(document.get("keys"), private=True, where=str(path))
    except ValueError as exc:
        raise TrustConfigError(f"the member key file {path} is invalid: {exc}") from None
    return digits, keys


def save_member_keys(path: Path, digits: str, keys: Sequence[MemberKey]) -> None:
    _write_json(
        path,
        {"orgnr": f"{digits[:6]}-{digits[6:]}", "keys": [k.private_entry() for k in keys]},
        private=True,
    )


def create_member(
    directory: Path, orgnr: str, name: str, *, trust_list: Path | None = None
) -> Path:
    """``vardkedja keys new``: create member ``orgnr``'s key pairs in ``directory`` and add
    its public keys to the trust list (created if missing). Refuses to overwrite keys."""
    digits = _digits(orgnr)
    path = keys_file(directory, digits)
    if path.exists():
        raise TrustConfigError(f"{path} exists: use `vardkedja keys rotate` for new keys")
    keys = new_key_pair(digits)
    save_member_keys(path, digits, keys)
    _publish(trust_list or directory / TRUST_LIST_FILE, digits, name, keys)
    return path


def rotate_member(
    directory: Path, orgnr: str, *, overlap: dt.timedelta, trust_list: Path | None = None
) -> Path:
    """``vardkedja keys rotate``: add a new key pair, used from now on; the current ones
    stay valid for ``overlap`` (events in flight still verify and open), then retire."""
    digits = _digits(orgnr)
    path = keys_file(directory, digits)
    _, keys = load_member_keys(path)
    now = _now()
    retired = [
        MemberKey(
            k.kid,
            k.use,
            k.key,
            k.not_before,
            min(k.not_after, now + overlap) if k.not_after else now + overlap,
        )
        for k in keys
    ]
    fresh = new_key_pair(digits, not_before=now)
    save_member_keys(path, digits, [*retired, *fresh])
    list_path = trust_list or directory / TRUST_LIST_FILE
    name = TrustList.load(list_path).members[digits].name if list_path.exists() else ""
    _publish(list_path, digits, name, [*retired, *fresh])
    return path


def _publish(list_path: Path, digits: str, name: str, keys: Sequence[MemberKey]) -> None:
    """Put member ``digits``'s public keys into the trust list at ``list_path``."""
    import fcntl

    list_path.parent.mkdir(parents=True, exist_ok=True)
    with open(list_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        members = TrustList.load(list_path).members if list_path.exists() else {}
        members = dict(members)
        members[digits] = MemberEntry(digits, name, tuple(keys))
        _write_json(list_path, TrustList(members).document(), private=False)


def ensure_members(directory: Path, members: Iterable[tuple[str, str]]) -> Path:
    """Development and tests: keys for every (orgnr, name) that has none yet in
    ``directory``; returns the trust list's path."""
    for orgnr, name in members:
        if not keys_file(directory, _digits(orgnr)).exists():
            create_member(directory, orgnr, name)
    return directory / TRUST_LIST_FILE


# -- a member's files ------------------------------------------------------------------------


def member_files(directory: Path, orgnr: str) -> tuple[str, Path, Path]:
    """(orgnr digits, key file, trust list) of member ``orgnr`` in a folder holding both
    (development, tests and tools)."""
    digits = _digits(orgnr)
    return digits, keys_file(directory, digits), directory / TRUST_LIST_FILE


def paths(settings: Any) -> tuple[Path, Path]:
    """(member key file, trust list) from the settings; raises when not configured."""
    cfg = settings.trust
    base = cfg.dir
    keys_path = cfg.keys_path or (keys_file(base, settings.member.digits) if base else None)
    list_path = cfg.list_path or (base / TRUST_LIST_FILE if base else None)
    if keys_path is None or list_path is None:
        raise TrustConfigError(
            "no trust configured: set VK_TRUST__KEYS_PATH and VK_TRUST__LIST_PATH (or "
            "VK_TRUST__DIR); create keys with `vardkedja keys new`"
        )
    return keys_path, list_path


def read_member(
    digits: str, keys_path: Path, list_path: Path
) -> tuple[tuple[MemberKey, ...], TrustList]:
    """Member ``digits``'s own keys and the trust list, read from their files."""
    own_digits, keys = load_member_keys(keys_path)
    if own_digits != digits:
        raise TrustConfigError(f"{keys_path} holds the keys of another member")
    try:
        trust_list = TrustList.load(list_path)
    except ValueError as exc:
        raise TrustConfigError(f"the trust list {list_path} is invalid: {exc}") from None
    return keys, trust_list


__all__ = [
    "TRUST_LIST_FILE",
    "MemberEntry",
    "MemberKey",
    "TrustConfigError",
    "TrustList",
    "create_member",
    "ensure_members",
    "keys_file",
    "member_files",
    "paths",
    "read_member",
    "rotate_member",
]
