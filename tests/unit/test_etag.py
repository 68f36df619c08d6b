"""Versions as ETags (shared.web.etag)."""

from __future__ import annotations

import pytest

from shared.web.errors import InvalidInput, PreconditionRequired
from shared.web.etag import etag, if_match_version, required_if_match_version


def test_an_etag_round_trips() -> None:
    assert etag(3) == '"3"'
    assert if_match_version(etag(3)) == 3
    assert if_match_version(' W/"12" ') == 12
    assert if_match_version(None) is None


@pytest.mark.parametrize("value", ["3", '"three"', '"3', "*", '"-1"', ""])
def test_anything_else_is_bad_input_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        if_match_version(value)
    assert [(f.field, f.rule) for f in caught.value.errors] == [("If-Match", "etag")]


def test_a_required_header_that_is_missing_is_428() -> None:
    with pytest.raises(PreconditionRequired):
        required_if_match_version(None)
    assert required_if_match_version('"7"') == 7
