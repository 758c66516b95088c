"""The region-rules reader: typed sections over shipped defaults, one query, refusals of bad values."""

from __future__ import annotations

from typing import ClassVar

import asyncpg
import pytest

from tests.ledger.conftest import Books
from timebank.domains import domains
from timebank.hours.rules import EndOfYear, HoursRules, PointsEarning
from timebank.kit import rules
from timebank.kit.rules import DECLARED, RegionNotFound, RuleSection, RulesMisconfigured, shipped_defaults
from timebank.ledger.rules import LedgerRules


class TestDeclarations:
    def test_every_declared_key_has_a_shipped_default_that_fits(self) -> None:
        domains()
        defaults = shipped_defaults()
        missing = sorted(k for k in DECLARED if k not in defaults)
        assert missing == [], "add these keys to seeds/default_rules.yaml"
        for section in set(DECLARED.values()):
            section.from_values({})  # the defaults convert

    def test_every_shipped_key_is_declared_by_a_domain(self) -> None:
        domains()
        undeclared = set(shipped_defaults()) - set(DECLARED)
        assert undeclared == set(), "every shipped rule key is read by the domain that declares it"

    def test_a_key_declared_twice_is_refused(self) -> None:
        class Again(RuleSection, frozen=True, kw_only=True):
            prefix: ClassVar[str] = "hours"
            auto_confirm_days: int

        domains()
        with pytest.raises(TypeError, match="declared by"):
            rules.declare([Again])

    def test_check_value(self) -> None:
        domains()
        rules.check_value("hours.auto_confirm_days", 3)
        with pytest.raises(ValueError, match="unknown rule"):
            rules.check_value("hours.no_such_rule", 3)
        with pytest.raises(ValueError):
            rules.check_value("hours.auto_confirm_days", "soon")


@pytest.mark.asyncio
class TestRegionRules:
    async def test_defaults_then_overrides_in_one_read(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        region = await rules.region_rules(books.conn, books.region_id)
        assert region.get(HoursRules).auto_confirm_days == shipped_defaults()["hours.auto_confirm_days"]
        await owner_conn.execute(
            "INSERT INTO region_rules (region_id, key, value) VALUES ($1, 'hours.auto_confirm_days', '3'),"
            " ($1, 'points.expiry', $2::jsonb)",
            books.region_id,
            {"mode": "end_of_year", "years_after": 1},
        )
        region = await rules.region_rules(books.conn, books.region_id)
        assert region.get(HoursRules).auto_confirm_days == 3
        assert region.get(PointsEarning).expiry == EndOfYear(years_after=1)
        assert (
            region.get(LedgerRules).hold_timeout_minutes == shipped_defaults()["ledger.hold_timeout_minutes"]
        )
        assert str(region.zone) == "Asia/Shanghai"

    async def test_a_stored_value_of_the_wrong_type_is_a_logged_misconfiguration(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        await owner_conn.execute(
            "INSERT INTO region_rules (region_id, key, value)"
            " VALUES ($1, 'hours.auto_confirm_days', '\"x\"')",
            books.region_id,
        )
        region = await rules.region_rules(books.conn, books.region_id)
        with pytest.raises(RulesMisconfigured) as caught:
            region.get(HoursRules)
        assert "hours" in caught.value.detail

    async def test_an_unknown_region_is_404(self, books: Books) -> None:
        from timebank.ids import uuid7

        with pytest.raises(RegionNotFound):
            await rules.region_rules(books.conn, uuid7())
