"""Validated values of contact channels: phone numbers, e-mail and secure-mail addresses,
postal addresses.

Like the identifier types (``shared.identity.identifiers.types``) these are Pydantic annotated
types that validate, normalise and document themselves in OpenAPI. A failed check is a
validation error whose ``type`` is the rule (``phone_format``, ``phone_length``,
``country``, ``email_format``, ``postcode``) and whose message and ``input`` never contain
the submitted value: a directory entry must hold functional addresses only, but a
mistyped value may still be a person's, and errors end up in logs and API responses.

Phone numbers follow the Swedish numbering plan (PTS, ITU-T E.164 for +46). The national
significant number (NSN, the digits after the trunk ``0`` or after ``+46``) is 7–9 digits
for geographic numbers (area code without its ``0`` plus a 5–8 digit subscriber number),
exactly 9 for the ``07`` series (mobile 070/072/073/076/079, pager 074, personal 075,
shared cost 077x) and for the ``010`` series, and 6–9 for ``020`` freephone (``020`` and
``0200``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)
from pydantic_core import (
    InitErrorDetails,
    PydanticCustomError,
    PydanticKnownError,
    ValidationError,
)

from shared.identity.identifiers.types import REDACTED
from shared.web.fields import NOT_BLANK, SPACES

__all__ = [
    "SHORT_NUMBERS",
    "ContactValueError",
    "FunctionalEmail",
    "PostalAddress",
    "Postnummer",
    "SecureMailAddress",
    "SwedishPhone",
    "normalise_email",
    "normalise_phone",
    "normalise_postnummer",
]


class ContactValueError(ValueError):
    """A contact value broke ``rule``; ``message`` never contains the value."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


# --- phone ---------------------------------------------------------------------------------

SHORT_NUMBERS: Final = frozenset({"112", "1177", "11414", "11313"})
"""National short numbers accepted as they are: 112 (emergency), 1177 (healthcare advice),
114 14 (police, non-emergency) and 113 13 (information in a crisis)."""

# Separators people write: spaces (also no-break), hyphens and dashes, slashes, dots and
# parentheses ("+46 (0)470", "(08) 123 456 78").
_PHONE_SEPARATORS: Final = re.compile(r"[ \t\u00a0\u202f\-\u2010\u2011\u2013/.()]")
_PHONE_DIGITS: Final = re.compile(r"\+?[0-9]+")
_MAX_PHONE_INPUT: Final = 40
_SWEDEN: Final = "46"
# The 07 series (mobile, pager, personal numbers, shared cost) and 010 are all 9 digits.
_NINE_DIGIT_SERIES: Final = ("7", "10")
_FREEPHONE: Final = "20"


def normalise_phone(value: str) -> str:
    """A Swedish phone number in E.164 (``+46470586000``), or a short number's digits.

    Accepts national (``0470-58 60 00``) and international (``+46 470 58 60 00``,
    ``0046 ...``, ``+46 (0)470 ...``) notation. Raises :class:`ContactValueError`.
    """
    raw = value.strip()
    if len(raw) > _MAX_PHONE_INPUT:
        raise ContactValueError("phone_length", "the phone number is too long")
    compact = _PHONE_SEPARATORS.sub("", raw)
    if not _PHONE_DIGITS.fullmatch(compact):
        raise ContactValueError(
            "phone_format", "a phone number has digits, spaces and '-' only, '+' first"
        )
    if compact in SHORT_NUMBERS:
        return compact
    if compact.startswith("+"):
        international = compact[1:]
    elif compact.startswith("00"):
        international = compact[2:]
    elif compact.startswith("0"):
        return "+" + _SWEDEN + _check_nsn(compact[1:])
    else:
        raise ContactValueError(
            "phone_format", "start with the area code's 0 or +46 (or use a listed short number)"
        )
    if not international.startswith(_SWEDEN):
        if _SWEDEN.startswith(international):
            raise ContactValueError("phone_length", "the phone number is too short")
        raise ContactValueError("country", "only Swedish numbers (+46) are accepted")
    nsn = international[len(_SWEDEN) :]
    # "+46 (0)8 ..." and "+46 08 ..." keep the trunk 0; no Swedish number starts with 0.
    return "+" + _SWEDEN + _check_nsn(nsn.removeprefix("0"))


def _check_nsn(nsn: str) -> str:
    if nsn.startswith("0"):
        raise ContactValueError("phone_format", "a Swedish number has one leading 0 at most")
    if nsn.startswith(_NINE_DIGIT_SERIES):
        lengths = range(9, 10)
    elif nsn.startswith(_FREEPHONE):
        lengths = range(6, 10)
    else:
        lengths = range(7, 10)
    if len(nsn) not in lengths:
        raise ContactValueError(
            "phone_length", "wrong number of digits for a Swedish number of this kind"
        )
    return nsn


# --- e-mail ----------------------------------------------------------------------------------

# RFC 5322 dot-atom: letters, digits and these specials, dots only between them. Quoted
# local parts and domain literals ("[192.0.2.1]") are valid there but not for a directory.
_ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART: Final = re.compile(rf"{_ATOM}(\.{_ATOM})*")
_LABEL: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_TOP_LABEL: Final = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
_MAX_ADDRESS: Final = 254
_MAX_LOCAL_PART: Final = 64
_MAX_DOMAIN: Final = 253


def normalise_email(value: str) -> str:
    """An e-mail address as ``local@domain`` with the domain lower-cased.

    The local part is kept as written (it may be case-sensitive). Internationalised
    domains are accepted in their ASCII form (``xn--...``). Raises
    :class:`ContactValueError` with rule ``email_format``.
    """
    address = value.strip()
    local, at, domain = address.rpartition("@")
    domain = domain.lower()
    labels = domain.split(".")
    valid = (
        at == "@"
        and address.isascii()
        and len(address) <= _MAX_ADDRESS
        and 0 < len(local) <= _MAX_LOCAL_PART
        and _LOCAL_PART.fullmatch(local) is not None
        and len(domain) <= _MAX_DOMAIN
        and len(labels) >= 2
        and all(_LABEL.fullmatch(label) for label in labels)
        and _TOP_LABEL.fullmatch(labels[-1]) is not None
    )
    if not valid:
        raise ContactValueError("email_format", "not a valid e-mail address (name@domain.se)")
    return f"{local}@{domain}"


# --- postcode --------------------------------------------------------------------------------

# Five digits, the first 1-9, optionally "SE-" / "S-" in front as on international mail.
_POSTNUMMER: Final = re.compile(r"(?:(?:SE|S)[- ]?)?([1-9][0-9]{2}) ?([0-9]{2})", re.IGNORECASE)


def normalise_postnummer(value: str) -> str:
    """A Swedish postcode as ``NNN NN`` (``35230``, ``352 30``, ``SE-352 30`` accepted)."""
    match = _POSTNUMMER.fullmatch(value.strip())
    if match is None:
        raise ContactValueError("postcode", "a Swedish postcode is five digits, NNN NN")
    return f"{match[1]} {match[2]}"


# --- Pydantic types --------------------------------------------------------------------------


def _redacting(normalise: Callable[[str], str]) -> BeforeValidator:
    # As in shared.identity.identifiers.types: raising a ValidationError whose input is a
    # placeholder replaces pydantic's record of the real input, which a field type cannot
    # hide otherwise.
    def validate(value: Any) -> str:
        try:
            if not isinstance(value, str):
                raise ContactValueError("string_type", "Input should be a valid string")
            return normalise(value)
        except ContactValueError as exc:
            raise ValidationError.from_exception_data(
                "contact",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(exc.rule, exc.message), loc=(), input=REDACTED
                    )
                ],
            ) from None

    return BeforeValidator(validate)


def _schemas(
    *, description: str, examples: list[str], output: str, output_examples: list[str]
) -> tuple[WithJsonSchema, WithJsonSchema]:
    return (
        WithJsonSchema(
            {"type": "string", "description": description, "examples": examples},
            mode="validation",
        ),
        WithJsonSchema(
            {"type": "string", "description": output, "examples": output_examples},
            mode="serialization",
        ),
    )


SwedishPhone = Annotated[
    str,
    _redacting(normalise_phone),
    *_schemas(
        description=(
            "Swedish phone number of a function (växel, mottagning), national or "
            "international notation, or one of the short numbers 112, 1177, 114 14, 113 13. "
            "Returned in E.164."
        ),
        examples=["0470-58 60 00", "+46 8 123 456 78", "020-123 123", "1177"],
        output="Swedish phone number in E.164 (+46...), or a short number's digits.",
        output_examples=["+46470586000", "1177"],
    ),
]
"""A Swedish phone number, normalised to E.164 (short numbers stay digits)."""

FunctionalEmail = Annotated[
    str,
    _redacting(normalise_email),
    *_schemas(
        description=(
            "E-mail address of a function's shared mailbox (e.g. mottagning@kommun.se), never "
            "a person's. Plain e-mail is not encrypted: never for personal data."
        ),
        examples=["beroendemottagningen@region.se"],
        output="E-mail address of a function's shared mailbox; domain in lower case.",
        output_examples=["beroendemottagningen@region.se"],
    ),
]
"""The e-mail address of a function's shared mailbox, with the domain lower-cased.

Only the syntax is checked. That it is a function's mailbox and never a named person's is
policy, which the owner of the entry answers for: no check can tell ``mottagning@`` from
``anna.svensson@``.
"""

SecureMailAddress = Annotated[
    str,
    _redacting(normalise_email),
    *_schemas(
        description=(
            "Functional address in a secure messaging system with e-mail shaped addresses "
            "(e.g. a secure-mail or SDK gateway). Only for messages through that system."
        ),
        examples=["socialtjanst.vuxen@sakerpost.kommun.se"],
        output="Functional secure messaging address; domain in lower case.",
        output_examples=["socialtjanst.vuxen@sakerpost.kommun.se"],
    ),
]
"""A functional address in a secure messaging system (e.g. a secure-mail or SDK gateway).

Same syntax and normalisation as :data:`FunctionalEmail`. It is a separate type so that a
secure address is never used for ordinary, unencrypted e-mail and the other way round;
that it reaches a function and not a person is, again, policy.
"""

Postnummer = Annotated[
    str,
    _redacting(normalise_postnummer),
    *_schemas(
        description="Swedish postcode, five digits (a space after the third is optional).",
        examples=["352 30", "35230"],
        output="Swedish postcode, NNN NN.",
        output_examples=["352 30"],
    ),
]
"""A Swedish postcode, normalised to ``NNN NN``."""


def _trimmed(value: str) -> str:
    # The length is checked as sent (as the schema says it), then the spaces around go;
    # text of spaces only is refused, as the schema's pattern (a non-space) says.
    trimmed = value.strip(SPACES)
    if not trimmed:
        raise PydanticKnownError("string_too_short", {"min_length": 1})
    return trimmed


_Street = Annotated[
    str, Field(min_length=1, max_length=100, json_schema_extra=NOT_BLANK), AfterValidator(_trimmed)
]
_City = Annotated[
    str, Field(min_length=1, max_length=60, json_schema_extra=NOT_BLANK), AfterValidator(_trimmed)
]


class PostalAddress(BaseModel):
    """A Swedish postal address of a function (a box or street address, never a home)."""

    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [{"street": "Box 1222", "postcode": "351 12", "city": "Växjö"}]
        },
    )

    street: _Street = Field(description="street address or box")
    postcode: Postnummer
    city: _City = Field(description="postort")
    care_of: _Street | None = Field(None, description="c/o")
