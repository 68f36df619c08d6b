"""Pydantic field types for the identifiers: validate, normalise and document in OpenAPI.

``Personnummer``, ``Organisationsnummer`` and ``Kommunkod`` are ``str`` at runtime, holding
the canonical form (``YYYYMMDDNNNN``, ``NNNNNN-NNNN``, ``NNNN``). A failed check becomes a
validation error whose ``type`` is the :class:`IdentifierError` rule (e.g. ``luhn``).

Pydantic records the submitted value as the error's ``input`` and prints it in
``str(ValidationError)`` unless the *model* sets ``hide_input_in_errors``; a field type
cannot set that. So the validators raise a ``ValidationError`` whose only line error
carries a placeholder input, which pydantic-core merges into the outer error in place of
the real one (pydantic-core supports raising ``ValidationError`` from a validator, see
pydantic/pydantic-core#510). The tests assert this, so an upgrade that changes it fails
loudly. Models holding personal data
may still set ``hide_input_in_errors=True`` for their other fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from shared.identity.identifiers.hsa import HSA_ID_PATTERN, normalise_hsa_id
from shared.identity.identifiers.kommun import normalise_kommunkod
from shared.identity.identifiers.orgnr import normalise_orgnr
from shared.identity.identifiers.personnummer import IdentifierError, normalise_personnummer

__all__ = ["REDACTED", "HsaId", "Kommunkod", "Organisationsnummer", "Personnummer"]

#: What validation errors of these types show as their ``input``.
REDACTED = "[redacted]"


def _redacted_error(rule: str, message: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "identifier",
        [InitErrorDetails(type=PydanticCustomError(rule, message), loc=(), input=REDACTED)],
    )


def _validator(normalise: Callable[[str], str]) -> BeforeValidator:
    # A before validator sees the raw input, so a non-string is rejected here too and its
    # value is not echoed by pydantic's own ``string_type`` error.
    def validate(value: Any) -> str:
        if not isinstance(value, str):
            raise _redacted_error("string_type", "Input should be a valid string")
        try:
            return normalise(value)
        except IdentifierError as exc:
            raise _redacted_error(exc.rule, exc.message) from None

    return BeforeValidator(validate)


def _json_schema(*, pattern: str, description: str, examples: list[str]) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "description": description, "examples": examples}


Personnummer = Annotated[
    str,
    _validator(normalise_personnummer),
    WithJsonSchema(
        _json_schema(
            pattern=r"^([0-9]{12}|[0-9]{8}-[0-9]{4}|[0-9]{6}[-+]?[0-9]{4})$",
            description=(
                "Swedish personnummer or samordningsnummer, 10 or 12 digits with an optional "
                "'-' before the last four ('+' with 10 digits for people aged 100 or more). "
                "Stored and returned as YYYYMMDDNNNN."
            ),
            examples=["19121212-1212", "121212-1212"],
        ),
        mode="validation",
    ),
    WithJsonSchema(
        _json_schema(
            pattern=r"^[0-9]{12}$",
            description="Swedish personnummer or samordningsnummer, YYYYMMDDNNNN.",
            examples=["191212121212"],
        ),
        mode="serialization",
    ),
]
"""A personnummer or samordningsnummer, normalised to ``YYYYMMDDNNNN``."""

Organisationsnummer = Annotated[
    str,
    _validator(normalise_orgnr),
    WithJsonSchema(
        _json_schema(
            pattern=r"^(16)?[0-9]{6}-?[0-9]{4}$",
            description=(
                "Swedish organisationsnummer, 10 digits with an optional '-' before the last "
                "four (a '16' prefix is accepted). Stored and returned as NNNNNN-NNNN."
            ),
            examples=["232100-0065"],
        ),
        mode="validation",
    ),
    WithJsonSchema(
        _json_schema(
            pattern=r"^[0-9]{6}-[0-9]{4}$",
            description="Swedish organisationsnummer, NNNNNN-NNNN.",
            examples=["232100-0065"],
        ),
        mode="serialization",
    ),
]
"""An organisationsnummer, normalised to ``NNNNNN-NNNN``."""

Kommunkod = Annotated[
    str,
    _validator(normalise_kommunkod),
    WithJsonSchema(
        _json_schema(
            pattern=r"^[0-9]{4}$",
            description="SCB kommunkod of a Swedish municipality (4 digits, e.g. 0780 Växjö).",
            examples=["0780"],
        )
    ),
]
"""An SCB kommunkod that exists in the municipality list."""

HsaId = Annotated[
    str,
    _validator(normalise_hsa_id),
    WithJsonSchema(
        {
            **_json_schema(
                pattern=HSA_ID_PATTERN,
                description=(
                    "HSA-id (Katalogtjänst HSA): 'SE', the issuing organisation's 10-digit "
                    "organisationsnummer, '-' and 1-18 letters A-Z, a-z or digits; at most "
                    "31 characters in all."
                ),
                examples=["SE2321000065-E000000000001"],
            ),
            "maxLength": 31,
        }
    ),
]
"""An HSA-id, as written (surrounding whitespace removed)."""
