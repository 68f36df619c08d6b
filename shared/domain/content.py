"""What a referral says: one value object from the API, through the event, to the rows.

A referral's content — its kind, the needs, the summary, the urgency, children in the
household or close to the person (and why it is not known), how to reach the person, the
person's own wish, drug-free status, attachments by reference and the kind's block of
details — is written once by the sending unit and then travels unchanged: the API
makes it (``ReferralCreate.content()``), the sender's row and every recipient's row keep it
(the ``ReferralContent`` columns of ``services/referral/models.py``), ``referral.sent``
carries it (:class:`~shared.messaging.events.payloads.ReferralSentV1` is one), a forward
passes it on. Copies go through :meth:`ReferralContent.of` and :meth:`ReferralContent.columns`
instead of field by field, so a new field is added here (and as a column) and nowhere else.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.kinds import KIND_PATTERN

TRISTATE = r"^(yes|no|unknown)$"
URGENCY = r"^(normal|urgent|acute)$"


class ReferralContent(BaseModel):
    """A referral's content as the sending unit wrote it (no person, no parties)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str = Field(pattern=KIND_PATTERN)
    needs: list[str] = Field(default_factory=list, max_length=30)
    summary: str = Field("", max_length=4000)
    urgency: str = Field("normal", pattern=URGENCY)
    children_in_household: str = Field("unknown", pattern=TRISTATE)
    children_unknown_reason: str = Field("", max_length=300)
    reachability: dict[str, Any] | None = None
    persons_wish: str = Field("", max_length=2000)
    drug_free: str | None = Field(None, pattern=TRISTATE)
    attachments: list[dict[str, Any]] = Field(default_factory=list, max_length=20)
    details: dict[str, Any] = Field(default_factory=dict)

    FIELDS: ClassVar[tuple[str, ...]] = (
        "kind",
        "needs",
        "summary",
        "urgency",
        "children_in_household",
        "children_unknown_reason",
        "reachability",
        "persons_wish",
        "drug_free",
        "attachments",
        "details",
    )

    @classmethod
    def of(cls, source: object, **changes: Any) -> Self:
        """The content held by ``source`` — a row, an event or another content: anything
        with attributes of these names — with ``changes`` (e.g. another ``details``)."""
        return cls.model_validate({**{f: getattr(source, f) for f in cls.FIELDS}, **changes})

    def columns(self) -> dict[str, Any]:
        """The content as the rows' columns (and an event's fields) hold it."""
        return {f: getattr(self, f) for f in ReferralContent.FIELDS}
