"""The federation's trust: member keys, the trust list, signed events and sealed data (ADR 0020).

Every member holds two key pairs of its own (``vardkedja keys new``): an Ed25519 pair that
signs every event it publishes, and an X25519 pair that other members seal personal data
to. Private keys stay with the member (``<digits>.keys.json``, never committed or
packaged); the public halves, with the member's orgnr, name and each key's validity, form
the **trust list** every member configures (``trust-list.json``).

On the way out (:meth:`Trust.protect`, called by the outbox for every event):

- the data of an event bound for one member's topic (inbound, internal, dead-letter) is
  **sealed** for that member: a compact JWE (RFC 7516), ``ECDH-ES`` + ``A256GCM`` to the
  member's newest encryption key. Its protected header (authenticated by the cipher)
  repeats the event's id and source, so a sealed body cannot be lifted into another event.
  Only the routing metadata (the ``ce_*`` attributes: id, type, time, source, and ids in
  ``subject`` and the key) stays readable. The broadcast directory topic carries no
  personal data and stays plain;
- the event is **signed**: a detached compact JWS (RFC 7515, ``Ed25519``) over the record
  as the broker carries it: every ``ce_*`` attribute, the content type, the Kafka key, the
  destination topic and a SHA-256 digest of the body (sealed or plain). The protected
  header names the key (``kid``) and the destination (``vk_dest``); the signature travels
  in the ``ce_signature`` extension attribute.

On the way in (:meth:`Trust.admit`, called by the inbox before any handler runs) a record
is admitted only when its source is a listed member, its signature verifies with a key of
that member valid now, it was signed for the topic it was read from, and, on a member's
topic, its data was sealed for this member and opens. Otherwise :class:`Untrusted` names
the rule, and the inbox dead-letters the record.

The cryptography is joserfc's (on ``cryptography``); nothing here is hand-rolled.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from joserfc.registry import HeaderParameter

from shared.messaging.events import topics

SIGNATURE_HEADER = "ce_signature"
SEALED_CONTENT_TYPE = "application/jose"
SIGN_ALG = "Ed25519"
SEAL_ALG = "ECDH-ES"
SEAL_ENC = "A256GCM"
TRUST_LIST_FILE = "trust-list.json"
_SIGN_REGISTRY = jws.JWSRegistry(
    algorithms=[SIGN_ALG],
    header_registry={"vk_dest": HeaderParameter("the topic it was signed for", "str", True)},
)
_SEAL_REGISTRY = jwe.JWERegistry(
    algorithms=[SEAL_ALG, SEAL_ENC],
    header_registry={
        "vk_id": HeaderParameter("the sealed event's id", "str", True),
        "vk_src": HeaderParameter("the sealed event's source", "str", True),
    },
)

REASONS = (
    "sender_not_member",
    "bad_signature",
    "unknown_key",
    "retired_key",
    "wrong_destination",
    "not_sealed",
    "cannot_open",
)
"""Why :meth:`Trust.admit` refuses a record (the dead-letter reason)."""


class TrustConfigError(RuntimeError):
    """The trust list or the member's keys are missing or invalid (refuses to start)."""


class Untrusted(Exception):
    """A record that must not be admitted; ``rule`` is one of :data:`REASONS`."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a key's validity needs a UTC offset")
    return parsed


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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

    def newest(self, use: str, at: dt.datetime) -> MemberKey | None:
        """The valid key of ``use`` that became valid last (the one to use after a rotation)."""
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


# -- signing and sealing ---------------------------------------------------------------------


def _signing_input(
    headers: Sequence[tuple[str, bytes]], key: bytes | None, body: bytes, dest: str
) -> bytes:
    """What the signature covers: the record as the broker carries it."""
    attrs: dict[str, str] = {}
    for name, value in headers:
        if name == SIGNATURE_HEADER or not (name.startswith("ce_") or name == "content-type"):
            continue
        if name in attrs:
            raise Untrusted("bad_signature", f"header {name} appears twice")
        attrs[name] = value.decode("utf-8", "replace")
    document = {
        "attributes": attrs,
        "key": _b64url(key) if key is not None else None,
        "dest": dest,
        "digest": "sha-256=" + _b64url(hashlib.sha256(body).digest()),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    found = [v for k, v in headers if k == name]
    if len(found) > 1:
        raise Untrusted("bad_signature", f"header {name} appears twice")
    return found[0].decode("utf-8", "replace") if found else None


def _protected(compact: str) -> dict[str, Any]:
    try:
        head = compact.split(".", 1)[0]
        value = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a compact JOSE object") from exc
    if not isinstance(value, dict):
        raise ValueError("not a compact JOSE object")
    return value


def recipient_of(topic: str) -> str | None:
    """The member a topic's data is sealed for (None: a broadcast topic, left plain)."""
    return topics.member_of_topic(topic)


class Trust:
    """One member's keys and the federation's trust list; signs, seals, verifies, opens."""

    def __init__(self, digits: str, own_keys: Sequence[MemberKey], trust_list: TrustList) -> None:
        self.digits = digits
        self.trust_list = trust_list
        self._own = tuple(own_keys)
        entry = trust_list.members.get(digits)
        if entry is None:
            raise TrustConfigError(f"the trust list does not name this member ({digits})")
        listed = {k.kid: k for k in entry.keys}
        for key in self._own:
            pub = listed.get(key.kid)
            if pub is None or pub.key.as_dict(private=False) != key.key.as_dict(private=False):
                raise TrustConfigError(
                    f"key {key.kid} of this member is not in the trust list as it is here"
                )
        if not any(k.use == "sig" for k in self._own):
            raise TrustConfigError("this member has no signing key")
        if not any(k.use == "enc" for k in self._own):
            raise TrustConfigError("this member has no encryption key")

    @property
    def members(self) -> set[str]:
        return set(self.trust_list.members)

    def _signer(self, at: dt.datetime) -> MemberKey:
        valid = [k for k in self._own if k.use == "sig" and k.valid_at(at)]
        if not valid:
            raise TrustConfigError("this member has no signing key valid now")
        return max(valid, key=lambda k: k.not_before)

    # -- out -------------------------------------------------------------------------------

    def seal(self, body: bytes, *, recipient: str, event_id: str, source: str) -> bytes:
        """``body`` encrypted to ``recipient``'s newest encryption key (compact JWE)."""
        member = self.trust_list.members.get(recipient)
        if member is None:
            raise TrustConfigError(f"no member {recipient} in the trust list to seal for")
        key = member.newest("enc", _now())
        if key is None:
            raise TrustConfigError(f"member {recipient} has no encryption key valid now")
        header = {
            "alg": SEAL_ALG,
            "enc": SEAL_ENC,
            "kid": key.kid,
            "cty": "application/json",
            "vk_id": event_id,
            "vk_src": source,
        }
        return jwe.encrypt_compact(header, body, key.key, registry=_SEAL_REGISTRY).encode("ascii")

    def sign(
        self, headers: Sequence[tuple[str, bytes]], key: bytes | None, body: bytes, dest: str
    ) -> bytes:
        """The detached compact JWS of a record bound for topic ``dest``."""
        signer = self._signer(_now())
        header = {"alg": SIGN_ALG, "kid": signer.kid, "vk_dest": dest}
        payload = _signing_input(headers, key, body, dest)
        compact = jws.serialize_compact(header, payload, signer.key, registry=_SIGN_REGISTRY)
        protected, _, signature = compact.split(".")
        return f"{protected}..{signature}".encode("ascii")

    def protect(
        self,
        topic: str,
        key: bytes | None,
        body: bytes,
        headers: list[tuple[str, bytes]],
        *,
        event_id: str,
        source: str,
    ) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The record as it goes on the bus: its data sealed when ``topic`` belongs to a
        member, and signed for ``topic``. Returns (body, headers)."""
        recipient = recipient_of(topic)
        headers = [(k, v) for k, v in headers if k != SIGNATURE_HEADER]
        if recipient is not None:
            body = self.seal(body, recipient=recipient, event_id=event_id, source=source)
            headers = [(k, v) for k, v in headers if k != "content-type"]
            headers.append(("content-type", SEALED_CONTENT_TYPE.encode()))
        headers.append((SIGNATURE_HEADER, self.sign(headers, key, body, topic)))
        return body, headers

    # -- in --------------------------------------------------------------------------------

    def admit(
        self,
        topic: str,
        key: bytes | None,
        body: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> bytes:
        """The record's plain data when it may be admitted; raises :class:`Untrusted`."""
        from shared.messaging.events.envelope import SOURCE_RE

        source = _header(headers, "ce_source") or ""
        match = SOURCE_RE.match(source)
        sender = match.group("orgnr") if match else None
        member = self.trust_list.members.get(sender or "")
        if member is None:
            raise Untrusted("sender_not_member", "the sender is not in the trust list")
        signature = _header(headers, SIGNATURE_HEADER)
        if not signature:
            raise Untrusted("bad_signature", "the record is not signed")
        try:
            protected = _protected(signature)
        except ValueError:
            raise Untrusted("bad_signature", "the signature cannot be read") from None
        kid = protected.get("kid")
        signer = member.key(str(kid), "sig") if isinstance(kid, str) else None
        if signer is None:
            raise Untrusted("unknown_key", "the signing key is not one of the sender's")
        if not signer.valid_at(_now()):
            raise Untrusted("retired_key", "the signing key is not valid now")
        dest = protected.get("vk_dest")
        if not isinstance(dest, str):
            raise Untrusted("bad_signature", "the signature names no destination")
        value = body or b""
        parts = signature.split(".")
        if len(parts) != 3 or parts[1]:
            raise Untrusted("bad_signature", "the signature is not a detached compact JWS")
        attached = f"{parts[0]}.{_b64url(_signing_input(headers, key, value, dest))}.{parts[2]}"
        try:
            jws.deserialize_compact(attached, signer.key, registry=_SIGN_REGISTRY)
        except (JoseError, ValueError):
            raise Untrusted("bad_signature", "the signature does not verify") from None
        if dest != topic:
            raise Untrusted("wrong_destination", "the record was signed for another topic")
        recipient = recipient_of(topic)
        sealed = _header(headers, "content-type") == SEALED_CONTENT_TYPE
        if recipient is None:
            return value
        if not sealed:
            raise Untrusted("not_sealed", "data on a member's topic must be sealed")
        if recipient != self.digits:
            raise Untrusted("cannot_open", "sealed for another member")
        return self.open(value, event_id=_header(headers, "ce_id") or "", source=source)

    def open(self, value: bytes, *, event_id: str, source: str) -> bytes:
        """The plain data of a body sealed for this member; raises :class:`Untrusted`."""
        try:
            text = value.decode("ascii")
            header = _protected(text)
            kid = header.get("kid")
            key = next((k for k in self._own if k.use == "enc" and k.kid == kid), None)
            if key is None:
                raise Untrusted("cannot_open", "sealed to a key this member does not hold")
            if not key.valid_at(_now()):
                raise Untrusted("retired_key", "sealed to a retired key")
            plain = jwe.decrypt_compact(text, key.key, registry=_SEAL_REGISTRY)
        except Untrusted:
            raise
        except (JoseError, ValueError, UnicodeDecodeError):
            raise Untrusted("cannot_open", "the sealed data does not open") from None
        protected = plain.protected
        if protected.get("vk_id") != event_id or protected.get("vk_src") != source:
            raise Untrusted("cannot_open", "the sealed data belongs to another event")
        return plain.plaintext or b""


@lru_cache(maxsize=16)
def _load(digits: str, keys_path: Path, list_path: Path, stamp: tuple[int, ...]) -> Trust:
    own_digits, keys = load_member_keys(keys_path)
    if own_digits != digits:
        raise TrustConfigError(f"{keys_path} holds the keys of another member")
    try:
        trust_list = TrustList.load(list_path)
    except ValueError as exc:
        raise TrustConfigError(f"the trust list {list_path} is invalid: {exc}") from None
    return Trust(digits, keys, trust_list)


def trust_in(directory: Path, orgnr: str) -> Trust:
    """Member ``orgnr``'s trust from a folder holding its key file and the trust list
    (development, tests and tools)."""
    digits = _digits(orgnr)
    keys_path, list_path = keys_file(directory, digits), directory / TRUST_LIST_FILE
    return _load(digits, keys_path, list_path, _stamp(keys_path) + _stamp(list_path))


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


def member_trust(settings: Any) -> Trust:
    """The trust of the member ``settings`` belongs to (loaded once; reloaded when a file
    changes, so a rotated trust list is picked up)."""
    keys_path, list_path = paths(settings)
    try:
        stamp = _stamp(keys_path) + _stamp(list_path)
    except FileNotFoundError as exc:
        raise TrustConfigError(f"{exc.filename} does not exist") from None
    return _load(settings.member.digits, keys_path, list_path, stamp)


def _stamp(path: Path) -> tuple[int, ...]:
    """What tells a file's versions apart: its inode (a rewrite replaces the file), time
    and size."""
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


__all__ = [
    "REASONS",
    "SEALED_CONTENT_TYPE",
    "SIGNATURE_HEADER",
    "MemberKey",
    "Trust",
    "TrustConfigError",
    "TrustList",
    "Untrusted",
    "create_member",
    "ensure_members",
    "member_trust",
    "rotate_member",
    "trust_in",
]
