"""The outbox: deduplicated events, redelivery with back-off, at least once; the senders."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.hours.conftest import World
from tests.notifications.conftest import Receiver
from timebank.notifications import outbox, repo
from timebank.notifications.senders import SendFailed, WebhookSender, WeChatSubscribeSender


async def emit(connect: Any, world: World, key: str = "test:1") -> Any:
    (vid,) = await world.add_volunteers(1)
    async with connect() as conn:
        return await outbox.emit(
            conn, world.region, "hours-confirmed", {"minutes": 60}, dedupe_key=key, recipient_id=vid
        )


async def make_due(world: World) -> None:
    await world.conn.execute(
        "UPDATE notification_outbox SET next_attempt_at = now() WHERE status = 'pending'"
    )


class TestEmit:
    @pytest.mark.asyncio
    async def test_the_same_event_twice_is_one(self, connect: Any, world: World) -> None:
        first = await emit(connect, world)
        assert first is not None
        assert await emit(connect, world) is None
        assert await world.fetchval("SELECT count(*) FROM notification_outbox") == 1


class TestDeliver:
    @pytest.mark.asyncio
    async def test_delivered_once(self, connect: Any, world: World) -> None:
        event_id = await emit(connect, world)
        receiver = Receiver()
        assert await outbox.deliver(connect, receiver) == {"sent": 1, "failed": 0}
        assert await outbox.deliver(connect, receiver) == {"sent": 0, "failed": 0}
        assert [e.id for e in receiver.calls] == [event_id]
        row = await world.conn.fetchrow("SELECT status, attempts FROM notification_outbox")
        assert (row["status"], row["attempts"]) == ("delivered", 1)

    @pytest.mark.asyncio
    async def test_redelivered_after_a_sender_failure_without_duplicates(
        self, connect: Any, world: World
    ) -> None:
        event_id = await emit(connect, world)
        receiver = Receiver(failures=2)
        assert await outbox.deliver(connect, receiver) == {"sent": 0, "failed": 1}
        row = await world.conn.fetchrow(
            "SELECT status, last_error, next_attempt_at - now() AS wait FROM notification_outbox"
        )
        assert row["status"] == "pending" and "receiver down" in row["last_error"]
        assert row["wait"].total_seconds() > 20  # backing off: not due at once
        assert await outbox.deliver(connect, receiver) == {"sent": 0, "failed": 0}
        await make_due(world)
        assert await outbox.deliver(connect, receiver) == {"sent": 0, "failed": 1}
        await make_due(world)
        assert await outbox.deliver(connect, receiver) == {"sent": 1, "failed": 0}
        assert list(receiver.accepted) == [event_id] and len(receiver.calls) == 3
        assert {e.id for e in receiver.calls} == {event_id}  # the same id every time: receivers dedupe

    @pytest.mark.asyncio
    async def test_a_sender_that_died_mid_send_redelivers_after_the_lease(
        self, connect: Any, world: World
    ) -> None:
        event_id = await emit(connect, world)
        async with connect() as conn:
            (claimed,) = await repo.claim_due(conn, 10, 120.0)  # then the process dies
        receiver = Receiver()
        assert await outbox.deliver(connect, receiver) == {"sent": 0, "failed": 0}  # leased
        await make_due(world)  # the lease lapsed
        assert await outbox.deliver(connect, receiver) == {"sent": 1, "failed": 0}
        assert claimed.id == event_id and list(receiver.accepted) == [event_id]

    @pytest.mark.asyncio
    async def test_dead_after_the_last_attempt(self, connect: Any, world: World) -> None:
        await emit(connect, world)
        await world.conn.execute("UPDATE notification_outbox SET attempts = $1", outbox.MAX_ATTEMPTS - 1)
        assert await outbox.deliver(connect, Receiver(failures=1)) == {"sent": 0, "failed": 1}
        assert await world.fetchval("SELECT status FROM notification_outbox") == "dead"


class TestSenders:
    @pytest.mark.asyncio
    async def test_webhook_posts_the_event_with_its_id(self, connect: Any, world: World) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(204 if len(seen) > 1 else 503)

        event_id = await emit(connect, world)
        sender = WebhookSender("https://hooks.example/tb", transport=httpx.MockTransport(handler))
        assert await outbox.deliver(connect, sender) == {"sent": 0, "failed": 1}
        await make_due(world)
        assert await outbox.deliver(connect, sender) == {"sent": 1, "failed": 0}
        assert [r.headers["Idempotency-Key"] for r in seen] == [str(event_id)] * 2
        assert json.loads(seen[1].content)["kind"] == "hours-confirmed"

    @pytest.mark.asyncio
    async def test_wechat_sends_a_subscribe_message(self, connect: Any, world: World) -> None:
        calls: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            calls.append(request)
            if request.url.path.endswith("/token"):
                return httpx.Response(200, json={"access_token": "tok", "expires_in": 7200})
            return httpx.Response(200, json={"errcode": 0})

        (vid,) = await world.add_volunteers(1)
        await world.conn.execute("UPDATE volunteers SET wechat_openid = 'o-123' WHERE id = $1", vid)
        async with connect() as conn:
            await outbox.emit(
                conn, world.region, "star-level-reached", {"level": 1}, dedupe_key="w", recipient_id=vid
            )
        templates = {"star-level-reached": {"template_id": "T1", "fields": {"number1": "level"}}}
        sender = WeChatSubscribeSender(
            "https://api.weixin.example", "appid", "secret", templates, transport=httpx.MockTransport(handler)
        )
        assert await outbox.deliver(connect, sender) == {"sent": 1, "failed": 0}
        body = json.loads(calls[-1].content)
        assert body == {"touser": "o-123", "template_id": "T1", "data": {"number1": {"value": "1"}}}

    @pytest.mark.asyncio
    async def test_wechat_refusal_is_retried(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"errcode": 40013})

        sender = WeChatSubscribeSender(
            "https://x.example", "a", "s", {}, transport=httpx.MockTransport(handler)
        )
        with pytest.raises(SendFailed):
            await sender._access_token()
