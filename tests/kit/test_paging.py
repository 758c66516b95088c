"""The one pagination contract: cursors round-trip, belong to their list, and refuse forgeries."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timebank.kit.errors import InvalidCursor
from timebank.kit.paging import Page, decode_cursor, encode_cursor, page_of


class TestCursor:
    @given(
        st.datetimes(timezones=st.just(UTC)),
        st.uuids(),
        st.text(min_size=0, max_size=30),
        st.integers(min_value=-(2**62), max_value=2**62),
    )
    def test_round_trip_with_types(self, when: datetime, ident: UUID, text: str, number: int) -> None:
        cursor = encode_cursor("things", when, ident, text, number)
        assert decode_cursor(cursor, "things", datetime, UUID, str, int) == (when, ident, text, number)

    def test_none_is_the_first_page(self) -> None:
        assert decode_cursor(None, "things", UUID) is None

    def test_a_cursor_of_another_list_is_refused(self) -> None:
        cursor = encode_cursor("activities", UUID(int=5))
        with pytest.raises(InvalidCursor) as caught:
            decode_cursor(cursor, "accounts", UUID)
        assert caught.value.status == 422
        assert caught.value.extra["errors"][0]["field"] == "cursor"

    @pytest.mark.parametrize("bad", ["", "%00", "not base64!", "W10", "WyJ0aGluZ3MiXQ", "eyJhIjoxfQ"])
    def test_forged_or_malformed_cursors_are_422(self, bad: str) -> None:
        with pytest.raises(InvalidCursor):
            decode_cursor(bad, "things", UUID)

    def test_wrong_part_types_are_refused(self) -> None:
        with pytest.raises(InvalidCursor):
            decode_cursor(encode_cursor("things", "not-a-uuid"), "things", UUID)


class TestPageOf:
    def test_the_extra_row_only_says_there_is_more(self) -> None:
        page = page_of("n", [1, 2, 3], 2, lambda n: (n,))
        assert page.items == [1, 2]
        assert decode_cursor(page.next_cursor, "n", int) == (2,)

    def test_the_last_page_has_no_cursor(self) -> None:
        assert page_of("n", [1, 2], 2, lambda n: (n,)) == Page(items=[1, 2], next_cursor=None)
        assert page_of("n", [], 2, lambda n: (n,)) == Page(items=[], next_cursor=None)
