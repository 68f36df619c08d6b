"""A legal basis stated instead of consent, as every service's API takes it.

The consent service judges it (``POST /v1/decisions``); the referral service takes it on a
referral and passes it on to that decision. One model, so both publish the same contract:
the basis from the fixed list, a justification that is more than spaces, and the ground
exactly when the basis is OSL 25:12 or 26:9 — in the validation and in the JSON Schema
(``if``/``then``/``else``), so a client's own validator refuses what the service refuses.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from shared.domain.codes import OSL_BASES, LegalBasis, OslGround
from shared.web.fields import NOT_BLANK

__all__ = ["LegalBasisIn"]

_OSL_BASES: list[JsonValue] = [b.value for b in sorted(OSL_BASES)]
_OSL_GROUNDS: list[JsonValue] = [g.value for g in OslGround]

# More than spaces: the pattern finds one other character (validated and published alike).
Justification = Annotated[str, Field(min_length=1, max_length=2000, pattern=NOT_BLANK["pattern"])]


class LegalBasisIn(BaseModel):
    """A legal basis instead of consent: always with a justification; OSL with a ground."""

    model_config = ConfigDict(
        hide_input_in_errors=True,
        extra="forbid",
        # The ground rule in the schema too: with OSL 25:12 or 26:9 a ground is required,
        # with any other basis there is none (left out, or null).
        json_schema_extra={
            "if": {
                "properties": {"basis": {"enum": _OSL_BASES}},
                "required": ["basis"],
            },
            "then": {
                "properties": {"ground": {"type": "string", "enum": _OSL_GROUNDS}},
                "required": ["ground"],
            },
            "else": {"properties": {"ground": {"type": "null"}}},
        },
    )

    basis: LegalBasis
    ground: OslGround | None = Field(
        None,
        description="required with osl_25_12 and osl_26_9; none with the other bases",
        validate_default=True,
    )
    justification: Justification = Field(
        description="why the basis applies here, in words the person can read in the audit "
        "extract; more than spaces"
    )

    @field_validator("ground")
    @classmethod
    def _ground_with_osl_only(
        cls, value: OslGround | None, info: ValidationInfo
    ) -> OslGround | None:
        basis = info.data.get("basis")
        if basis in OSL_BASES and value is None:
            raise PydanticCustomError("missing", "OSL 25:12 and 26:9 need a ground")
        if basis is not None and basis not in OSL_BASES and value is not None:
            raise PydanticCustomError(
                "not_applicable", "a ground is given only with OSL 25:12 or 26:9"
            )
        return value
