"""Notices of a care request: matched and settled, to both parties, in the transition's transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.carebank.conftest import Care
from tests.support import auth
from timebank.carebank import errors
from timebank.carebank.schemas import Assign, ConfirmCare
from timebank.carebank.service import requests
from timebank.carebank.service.notices import TITLES


async def notices(care: Care, rid: UUID) -> list[dict[str, Any]]:
    rows = await care.world.conn.fetch(
        "SELECT kind, recipient_kind, recipient_id, payload, dedupe_key FROM notification_outbox"
        " WHERE payload ->> 'care_request_id' = $1 ORDER BY kind, payload ->> 'role'",
        str(rid),
    )
    return [dict(r) for r in rows]


class TestMatched:
    @pytest.mark.asyncio
    async def test_an_accept_tells_the_recipient_and_the_provider(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "open")
        assert await notices(care, rid) == []
        await requests.transition(care.world.conn, care.world.volunteer(provider), rid, "accept")
        found = await notices(care, rid)
        assert [(n["kind"], n["recipient_kind"], n["recipient_id"]) for n in found] == [
            ("care-matched", "volunteer", provider),
            ("care-matched", "volunteer", elder),
        ]
        payload = found[0]["payload"]
        assert payload["title"] == TITLES["care-matched"] == "服务需求已匹配服务者"
        assert payload["provider_id"] == str(provider) and payload["category_name"] == "生活照料"
        assert len({n["dedupe_key"] for n in found}) == 2

    @pytest.mark.asyncio
    async def test_an_assignment_by_staff_tells_both(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "open")
        await requests.transition(care.world.conn, care.staff(), rid, "assign", Assign(provider_id=provider))
        found = await notices(care, rid)
        assert {(n["kind"], n["recipient_id"]) for n in found} == {
            ("care-matched", elder),
            ("care-matched", provider),
        }

    @pytest.mark.asyncio
    async def test_the_notice_rolls_back_with_the_transition(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "open")
        conn = care.world.conn
        outer = conn.transaction()
        await outer.start()
        await requests.transition(conn, care.world.volunteer(provider), rid, "accept")
        assert len(await notices(care, rid)) == 2
        await outer.rollback()
        assert await notices(care, rid) == []
        assert await conn.fetchval("SELECT status FROM care_requests WHERE id = $1", rid) == "open"

    @pytest.mark.asyncio
    async def test_a_replayed_accept_adds_no_notice(self, app: Litestar, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "open")
        headers = {**auth(app, care.world.volunteer(provider)), "Idempotency-Key": uuid4().hex}
        async with AsyncTestClient(app) as client:
            first = await client.post(f"/api/v1/care-requests/{rid}/accept", headers=headers)
            again = await client.post(f"/api/v1/care-requests/{rid}/accept", headers=headers)
        assert first.status_code == again.status_code == 200, again.text
        assert first.json() == again.json()
        assert len(await notices(care, rid)) == 2


class TestSettled:
    @pytest.mark.asyncio
    async def test_a_confirmation_tells_both_the_settled_minutes(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "completed", provider=provider, minutes=120, reported=90)
        settled = [n for n in await notices(care, rid) if n["kind"] == "care-settled"]
        assert {n["recipient_id"] for n in settled} == {elder, provider}
        assert {n["payload"]["settled_minutes"] for n in settled} == {90}
        assert {n["payload"]["title"] for n in settled} == {"时间银行服务已结算"}

    @pytest.mark.asyncio
    async def test_auto_confirmation_tells_both(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "reported", provider=provider, reported=100)
        await care.world.conn.execute("UPDATE care_requests SET reported_at = now() - interval '4 days'")
        assert await requests.sweep(care.world.conn, "auto_confirm") == 1
        settled = [n for n in await notices(care, rid) if n["kind"] == "care-settled"]
        assert {(n["recipient_id"], n["payload"]["settled_minutes"]) for n in settled} == {
            (elder, 100),
            (provider, 100),
        }

    @pytest.mark.asyncio
    async def test_a_refused_confirmation_and_other_moves_tell_nothing(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "reported", provider=provider, minutes=60, reported=90)
        with pytest.raises(errors.OverrunNeedsConsent):
            await requests.transition(
                care.world.conn, care.world.volunteer(elder), rid, "confirm", ConfirmCare()
            )
        assert {n["kind"] for n in await notices(care, rid)} == {"care-matched"}  # approve and report: none
        cancelled = await care.request(elder, "cancelled")
        assert await notices(care, cancelled) == []
