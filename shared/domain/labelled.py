"""Code lists whose codes carry the label a person reads, written once.

``class UnitKind(LabelledEnum): REMISSPORT = "remissport", "Remissport"``: the member is the
code (a ``str``, as in every payload, row and URL); ``UnitKind.REMISSPORT.label`` is how a
person reads it. :func:`labels` gives the code → label table where one is needed.
"""

from __future__ import annotations

import enum
from typing import Self, TypeVar


class LabelledEnum(enum.StrEnum):
    """A code list whose members carry their label (``member.label``)."""

    _value_: str
    label: str

    def __new__(cls, value: str, label: str = "") -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label or value
        return member


E = TypeVar("E", bound=LabelledEnum)


def labels(codes: type[E]) -> dict[E, str]:
    """Every code of ``codes`` and its label, in the list's order."""
    return {code: code.label for code in codes}
