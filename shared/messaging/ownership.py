"""Who may change what: the checks every inbound handler makes before it applies an event.

Members do not trust each other (ADR 0020): an event's signature proves who sent it, and
these checks decide whether that sender may say what it says. Every refusal is a
:class:`~shared.messaging.inbox.Reject`, dead-lettered at once with its rule:

- ``sender_not_owner``: the event speaks for a member other than its signed sender;
- ``not_owner``: the id it names was first bound by another member, who alone moves it on.

A copy held here moves only forward (:func:`newer`): a version at or below the one held is
a replay or a reordering, applied as nothing.
"""

from __future__ import annotations

from typing import Protocol

from shared.messaging.inbox import Reject


class Sent(Protocol):
    @property
    def sender_orgnr(self) -> str | None: ...


def _digits(orgnr: str) -> str:
    return orgnr.replace("-", "")


def require_sender(event: Sent, orgnr: str, message: str) -> None:
    """``sender_not_owner`` unless the event was signed by the member ``orgnr``."""
    if event.sender_orgnr != _digits(orgnr):
        raise Reject("sender_not_owner", message)


def require_owner(
    held_by: str | None, claimed: str, message: str, *, rule: str = "not_owner"
) -> None:
    """``rule`` (``not_owner``) when the id is bound to a member (``held_by``) other than the
    one the event names (``claimed``); nothing when the id is new here (``held_by`` None)."""
    if held_by is not None and _digits(held_by) != _digits(claimed):
        raise Reject(rule, message)


def newer(held_version: int | None, version: int) -> bool:
    """Whether ``version`` moves a copy on from ``held_version`` (None: nothing held yet)."""
    return held_version is None or version > held_version
