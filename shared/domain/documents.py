"""Documents attached to a referral (ADR 0023): which kinds are taken, how a document's
kind is told from its bytes, what a title may be, and how a document travels in chunks.

Both members apply the same rules — the sending unit's upload and the receiver's
reassembly — so they live here, beside the referral's content. A document's kind is never
taken on trust: a PDF starts with ``%PDF-``, a PNG with its eight-byte signature, a JPEG
with the start-of-image marker and a third byte of ``0xFF``, and plain text is UTF-8
without a NUL or another control character (but tab, line breaks and form feed). A declared
type must agree with what the bytes are.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import math
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator

KIB = 1024
MIB = 1024 * KIB

MAX_DOCUMENT_BYTES = 64 * MIB
"""The most any member may allow for one document (``VK_REFERRAL__ATTACHMENT_MAX_BYTES``)."""
MIN_CHUNK_BYTES = 16 * KIB
MAX_CHUNK_BYTES = 512 * KIB
"""A chunk of a document on the bus, raw: sealed and signed, 512 KiB stays well under
Kafka's default 1 MB record (base64 and the seal each add about a third)."""
MAX_CHUNKS = math.ceil(MAX_DOCUMENT_BYTES / MIN_CHUNK_BYTES)
MAX_CHUNK_TEXT = 4 * math.ceil(MAX_CHUNK_BYTES / 3)
"""The longest chunk in base64."""

TITLE_MAX = 200
TITLE_PATTERN = r"^[^/\\\u0000-\u001f\u007f-\u009f]{1,200}$"
"""What the schema can say of a title: 1 to 200 characters, no path separator and no
control character (the rest of :func:`title_problem` is the service's own rule)."""
SHA256_PATTERN = r"^[0-9a-f]{64}$"
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class DocumentType(enum.StrEnum):
    """The kinds of document a referral may carry."""

    PDF = "application/pdf"
    PNG = "image/png"
    JPEG = "image/jpeg"
    TEXT = "text/plain"

    @property
    def extension(self) -> str:
        """The file name extension a download is given."""
        return _EXTENSIONS[self]

    @property
    def header(self) -> str:
        """The ``Content-Type`` of a download (plain text names its charset)."""
        return "text/plain; charset=utf-8" if self is DocumentType.TEXT else self.value


_EXTENSIONS = {
    DocumentType.PDF: ".pdf",
    DocumentType.PNG: ".png",
    DocumentType.JPEG: ".jpg",
    DocumentType.TEXT: ".txt",
}
_ALSO = {DocumentType.JPEG: (".jpeg",)}
TYPE_PATTERN = "^(" + "|".join(t.value for t in DocumentType) + ")$"
"""The types an event may name (a media type's characters need no escaping here)."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
"""What plain text never holds: NUL and the control characters but tab, line feed, form
feed and carriage return (a zip's ``PK\\x03\\x04`` is valid UTF-8, an ANSI escape too)."""


def sniff(data: bytes) -> DocumentType | None:
    """The kind of document ``data`` is, by its bytes alone; None for anything else."""
    if data.startswith(b"%PDF-"):
        return DocumentType.PDF
    if data.startswith(_PNG_SIGNATURE):
        return DocumentType.PNG
    if data.startswith(b"\xff\xd8\xff"):
        return DocumentType.JPEG
    if data and _CONTROL.search(data) is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return DocumentType.TEXT
    return None


def declared_type(value: str) -> DocumentType | None:
    """The kind a ``Content-Type`` names (``text/plain; charset=utf-8`` is plain text;
    another parameter, or another charset, is not taken); None when it is none of them."""
    main, _, params = value.strip().lower().partition(";")
    try:
        kind = DocumentType(main.strip())
    except ValueError:
        return None
    params = params.strip()
    if not params:
        return kind
    name, _, charset = params.partition("=")
    utf8 = name.strip() == "charset" and charset.strip().strip('"') in ("utf-8", "utf8")
    return kind if kind is DocumentType.TEXT and utf8 else None


def title_problem(title: str) -> str | None:
    """Why ``title`` is no title for a document (None: it is one). A title becomes a file
    name at the receiver: no path separator, no control or formatting character (a
    right-to-left override makes ``fdp.exe`` read as ``exe.pdf``), not ``.`` or ``..``, no
    space at either end."""
    if not 1 <= len(title) <= TITLE_MAX:
        return "title_length"
    if "/" in title or "\\" in title:
        return "title_path_separator"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in title):
        return "title_control_character"
    if title.strip(".") == "" or title != title.strip():
        return "title_not_a_name"
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64decode(text: str) -> bytes | None:
    """Strict base64 (no line breaks, padding required); None when ``text`` is not."""
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes (the last one shorter)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def chunk_count(length: int, size: int) -> int:
    return max(1, math.ceil(length / size))


def file_name(title: str, kind: DocumentType) -> str:
    """The name a download is saved under: the title, ending in the extension of what the
    document is (``Epikris.html`` that is a PDF is saved as ``Epikris.html.pdf``)."""
    endings = (kind.extension, *_ALSO.get(kind, ()))
    return title if title.lower().endswith(endings) else title + kind.extension


def _plain(c: str) -> bool:
    """A character a quoted ASCII file name may hold as it is."""
    return c.isascii() and c.isprintable() and c not in '"\\;,%'


def content_disposition(title: str, kind: DocumentType) -> str:
    """``Content-Disposition: attachment`` with the file name in ASCII (anything else as
    ``_``) and in full as RFC 8187 UTF-8."""
    name = file_name(title, kind)
    plain = "".join(c if _plain(c) else "_" for c in name)
    full = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{full}"
