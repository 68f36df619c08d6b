"""Text for the PDF core fonts: what every printed PDF of the services (the directory's
overview of contact paths, a person's Min plan) passes its text through."""

from __future__ import annotations

import unicodedata
from typing import Final

from shared.domain.swedish import SV_FOLD

# The PDF core fonts are encoded as WinAnsi (cp1252): Swedish letters, é, – and “” fit.
PDF_ENCODING: Final = "cp1252"
_PDF_TRANSLATE: Final = str.maketrans(
    {
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2212": "-",
        "\u2009": " ",
        "\u202f": " ",
        "\u2192": "->",
        "\u2264": "<=",
        "\u2265": ">=",
        "\t": " ",
        "\r": "",
    }
)


def _encodable(text: str) -> bool:
    try:
        text.encode(PDF_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def pdf_safe(text: str) -> str:
    """``text`` restricted to what the PDF core fonts can show.

    Common typographic characters get their plain equivalents, accented letters outside
    the font lose their accent (ł → l, ő → o), control characters become spaces and
    anything else becomes ``?``, so no input can make the rendering fail.
    """
    out: list[str] = []
    for ch in text.translate(_PDF_TRANSLATE):
        if ch == "\n":
            out.append(ch)
        elif unicodedata.category(ch).startswith("C"):
            out.append(" ")
        elif _encodable(ch):
            out.append(ch)
        else:
            folded = SV_FOLD.get(ch.lower())
            if folded is not None:
                base = folded.upper() if ch.isupper() else folded
            else:
                base = "".join(
                    c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
                )
            out.append(base if base and _encodable(base) else "?")
    return "".join(out)
