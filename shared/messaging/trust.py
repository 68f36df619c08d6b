"""The federation's trust: signed events and sealed data (ADR 0020).

Each member signs with its own keys and seals to the other members' keys as the trust list
lists them (:mod:`shared.messaging.trust_keys`: the keys, their validity, the trust list
and the files they are kept in).

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
import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.registry import HeaderParameter

from shared.messaging.events import topics
from shared.messaging.trust_keys import (
    MemberKey,
    TrustConfigError,
    TrustList,
    member_files,
    paths,
    read_member,
)

SIGNATURE_HEADER = "ce_signature"
SEALED_CONTENT_TYPE = "application/jose"
SIGN_ALG = "Ed25519"
SEAL_ALG = "ECDH-ES"
SEAL_ENC = "A256GCM"
_SIGN_REGISTRY = jws.JWSRegistry(
    algorithms=[SIGN_ALG],
    header_registry={"vk_dest": HeaderParameter("the topic it was signed for", "str", True)},
)
MAX_SEALED_BYTES = 2_000_000
"""The largest sealed body opened: the inbox's largest record (a record of 1 MB of data is
about 4/3 of it sealed). joserfc's own default (64 KiB of ciphertext) refused every larger
event as ``cannot_open`` at its recipient, though it had sealed it without a word."""


class _SealRegistry(jwe.JWERegistry):
    max_ciphertext_length = MAX_SEALED_BYTES


_SEAL_REGISTRY = _SealRegistry(
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


class Untrusted(Exception):
    """A record that must not be admitted; ``rule`` is one of :data:`REASONS`."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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

    def _signer(self) -> MemberKey:
        valid = [k for k in self._own if k.use == "sig" and k.valid_now()]
        if not valid:
            raise TrustConfigError("this member has no signing key valid now")
        return max(valid, key=lambda k: k.not_before)

    # -- out -------------------------------------------------------------------------------

    def seal(self, body: bytes, *, recipient: str, event_id: str, source: str) -> bytes:
        """``body`` encrypted to ``recipient``'s newest encryption key (compact JWE)."""
        member = self.trust_list.members.get(recipient)
        if member is None:
            raise TrustConfigError(f"no member {recipient} in the trust list to seal for")
        key = member.newest("enc")
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
        signer = self._signer()
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
        if not signer.valid_now():
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
            if not key.valid_now():
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
    return Trust(digits, *read_member(digits, keys_path, list_path))


def trust_in(directory: Path, orgnr: str) -> Trust:
    """Member ``orgnr``'s trust from a folder holding its key file and the trust list
    (development, tests and tools)."""
    digits, keys_path, list_path = member_files(directory, orgnr)
    return _load(digits, keys_path, list_path, _stamp(keys_path) + _stamp(list_path))


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
    "Trust",
    "Untrusted",
    "member_trust",
    "recipient_of",
    "trust_in",
]
