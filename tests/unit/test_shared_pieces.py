"""The shared pieces every service uses instead of its own copy: the cursor codec and the
ownership checks of inbound events."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.messaging.inbox import Reject
from shared.messaging.ownership import newer, require_owner, require_sender
from shared.web.errors import InvalidInput
from shared.web.pagination import (
    decode_cursor,
    decode_int_cursor,
    decode_json_cursor,
    encode_cursor,
    next_cursor,
)


class TestCursor:
    def test_a_string_goes_round(self) -> None:
        assert decode_cursor(encode_cursor("unit-ä/7")) == "unit-ä/7"

    def test_no_cursor_is_the_first_page(self) -> None:
        assert decode_cursor(None) is None
        assert decode_int_cursor(None) is None
        assert decode_json_cursor(None, frozenset({"i"})) is None

    @pytest.mark.parametrize("bad", ["", "%%%", "a b", "YQ", "_-_-"])
    def test_anything_else_names_the_cursor(self, bad: str) -> None:
        with pytest.raises(InvalidInput) as caught:
            decode_cursor(bad)
        assert [(p.field, p.rule) for p in caught.value.errors] == [("cursor", "cursor")]

    def test_a_sequence_cursor_is_digits(self) -> None:
        assert decode_int_cursor(encode_cursor("42")) == 42
        with pytest.raises(InvalidInput):
            decode_int_cursor(encode_cursor("4x"))

    def test_a_json_cursor_has_exactly_its_keys(self) -> None:
        keys = frozenset({"s", "i"})
        assert decode_json_cursor(encode_cursor({"s": 1.5, "i": "u"}), keys) == {"s": 1.5, "i": "u"}
        for bad in (encode_cursor({"s": 1}), encode_cursor("[1]"), encode_cursor("{")):
            with pytest.raises(InvalidInput):
                decode_json_cursor(bad, keys)

    def test_next_cursor_only_when_a_row_lies_beyond_the_page(self) -> None:
        assert next_cursor(["a", "b"], 2, str) is None
        assert decode_cursor(next_cursor(["a", "b", "c"], 2, str)) == "b"


@dataclass(frozen=True)
class _Event:
    sender_orgnr: str


class TestOwnership:
    def test_the_signed_sender_must_be_the_member_named(self) -> None:
        require_sender(_Event("2120000142"), "212000-0142", "m")
        with pytest.raises(Reject) as caught:
            require_sender(_Event("2321000016"), "212000-0142", "only its own")
        assert caught.value.rule == "sender_not_owner"

    def test_an_id_stays_with_its_first_owner(self) -> None:
        require_owner(None, "212000-0142", "m")
        require_owner("2120000142", "212000-0142", "m")
        with pytest.raises(Reject) as caught:
            require_owner("232100-0016", "212000-0142", "another's")
        assert caught.value.rule == "not_owner"
        with pytest.raises(Reject) as other:
            require_owner("232100-0016", "212000-0142", "m", rule="sender_not_owner")
        assert other.value.rule == "sender_not_owner"

    def test_a_copy_moves_only_forward(self) -> None:
        assert newer(None, 1)
        assert newer(3, 4)
        assert not newer(4, 4)
        assert not newer(5, 4)
