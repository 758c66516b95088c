"""Care requests through the service: the transition table walked exhaustively, holds and
settlement, expiry and auto-confirmation, overruns, and the conservation of hours."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.carebank.conftest import PATHS, Care
from timebank.carebank import errors, repo
from timebank.carebank.repo import RequestRow
from timebank.carebank.schemas import Assign, ConfirmCare, Report, WithReason
from timebank.carebank.service import common, requests
from timebank.carebank.transitions import TRANSITIONS
from timebank.kit.principal import Principal
from timebank.ledger import errors as ledger_errors
from timebank.problems import DomainError

STATUSES = list(PATHS)
ACTIONS = [
    "approve",
    "reject",
    "accept",
    "assign",
    "report",
    "confirm",
    "dispute",
    "cancel",
    "expire",
    "auto_confirm",
]


def payload(action: str, provider: UUID) -> Any:
    return {
        "reject": WithReason(reason="不符合条件"),
        "dispute": WithReason(reason="时长不符"),
        "cancel": WithReason(reason="临时有事"),
        "assign": Assign(provider_id=provider),
        "report": Report(minutes=60),
        "confirm": ConfirmCare(),
    }.get(action)


class TestTransitionTable:
    @pytest.mark.asyncio
    async def test_every_state_and_action_for_every_party(self, care: Care) -> None:
        """Each (state, action): the parties the table does not name are refused and change nothing;
        a named party moves the request to the table's state."""
        elder = await care.elder(minutes=80_000)
        outsider, spare = await care.provider(), await care.provider()
        conn = care.world.conn
        for status in STATUSES:
            for action in ACTIONS:
                provider = await care.provider()
                rid = await care.request(elder, status, provider=provider)
                row = await requests.get(conn, care.staff(), rid)
                parties: dict[str, Principal] = {
                    "recipient": care.world.volunteer(elder),
                    "staff": care.staff(),
                    "volunteer": care.world.volunteer(outsider),
                    "provider": care.world.volunteer(row.provider_id or spare),
                }
                rule = TRANSITIONS.get((status, action))  # type: ignore[arg-type]
                allowed = rule[1] if rule else frozenset()
                for who, principal in parties.items():
                    if who in allowed:
                        continue
                    roles = await common.roles_for(conn, principal, await _row(care, rid))
                    if roles & allowed:
                        continue  # staff are also the recipient's stand-in; the allowed run below covers it
                    with pytest.raises(DomainError) as caught:
                        await requests.transition(conn, principal, rid, action, payload(action, spare))  # type: ignore[arg-type]
                    visible = await common.may_view(conn, principal, await _row(care, rid))
                    if visible:
                        expected = 409 if rule is None else 403
                    else:  # a volunteer who may not see it learns only that it is not open
                        expected = 409 if action == "accept" and who in ("volunteer", "provider") else 404
                    assert caught.value.status == expected, (status, action, who, caught.value.slug)
                    assert (await _row(care, rid)).status == status
                if rule is None:
                    continue
                if allowed == {"system"}:
                    assert await requests.system_transition(conn, care.region, rid, action) == 1
                else:
                    who = sorted(allowed)[0]
                    await requests.transition(conn, parties[who], rid, action, payload(action, spare))  # type: ignore[arg-type]
                assert (await _row(care, rid)).status == rule[0], (status, action)


async def _row(care: Care, rid: UUID) -> RequestRow:
    found = await repo.request(care.world.conn, care.region, rid)
    assert found is not None
    return found


class TestHolds:
    @pytest.mark.asyncio
    async def test_the_estimate_is_held_on_the_recipient(self, care: Care) -> None:
        elder = await care.elder(minutes=300)
        await care.request(elder, minutes=120)
        assert await care.minutes(elder) == (300, 120)

    @pytest.mark.asyncio
    async def test_too_few_hours_is_409_with_the_available_minutes(self, care: Care) -> None:
        elder = await care.elder(minutes=100)
        await care.request(elder, minutes=60)
        with pytest.raises(ledger_errors.InsufficientBalance) as caught:
            await requests.create(care.world.conn, care.world.volunteer(elder), care.body(60))
        assert caught.value.status == 409 and caught.value.extra["available_minutes"] == 40

    @pytest.mark.asyncio
    async def test_too_young_to_be_served(self, care: Care) -> None:
        young = await care.provider()
        await care.earn(young, 600)
        with pytest.raises(errors.NotEligible):
            await requests.create(care.world.conn, care.world.volunteer(young), care.body(60))

    @pytest.mark.asyncio
    async def test_settlement_pays_the_provider_and_releases_the_rest(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        await care.request(elder, "completed", provider=provider, minutes=120, reported=90)
        assert await care.minutes(elder) == (210, 0)
        assert await care.minutes(provider) == (90, 0)
        assert await care.escrow() == (0, 0)

    @pytest.mark.asyncio
    async def test_cancel_after_accept_releases_the_hold(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "open")
        await requests.transition(care.world.conn, care.world.volunteer(provider), rid, "accept")
        done = await requests.transition(
            care.world.conn, care.world.volunteer(elder), rid, "cancel", WithReason(reason="身体不适")
        )
        assert done.status == "cancelled" and done.provider_id == provider
        assert await care.minutes(elder) == (300, 0)

    @pytest.mark.asyncio
    async def test_expiry_releases_the_hold(self, care: Care) -> None:
        elder = await care.elder(minutes=300)
        rid = await care.request(elder, "expired")
        assert (await _row(care, rid)).status == "expired"
        assert await care.minutes(elder) == (300, 0)
        assert await requests.sweep(care.world.conn, "expire") == 0  # again: nothing more

    @pytest.mark.asyncio
    async def test_auto_confirm_after_the_window_unless_disputed(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        reported = await care.request(elder, "reported", provider=provider, reported=100)
        disputed = await care.request(elder, "disputed", provider=provider, reported=100)
        await care.world.conn.execute("UPDATE care_requests SET reported_at = now() - interval '4 days'")
        assert await requests.sweep(care.world.conn, "auto_confirm") == 1
        assert (await _row(care, reported)).status == "completed"
        assert (await _row(care, disputed)).status == "disputed"
        assert await care.minutes(provider) == (100, 0)


class TestOverrun:
    @pytest.mark.asyncio
    async def test_overrun_without_consent_is_refused(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "reported", provider=provider, minutes=60, reported=90)
        with pytest.raises(errors.OverrunNeedsConsent) as caught:
            await requests.transition(
                care.world.conn, care.world.volunteer(elder), rid, "confirm", ConfirmCare()
            )
        assert caught.value.extra == {"reported_minutes": 90, "held_minutes": 60}
        assert (await _row(care, rid)).status == "reported"
        assert await care.minutes(elder) == (300, 60)

    @pytest.mark.asyncio
    async def test_overrun_with_consent_pays_the_difference(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        rid = await care.request(elder, "reported", provider=provider, minutes=60, reported=90)
        done = await requests.transition(
            care.world.conn, care.world.volunteer(elder), rid, "confirm", ConfirmCare(consent_overrun=True)
        )
        assert done.settled is not None and done.settled.minutes == 90
        assert await care.minutes(elder) == (210, 0)
        assert await care.minutes(provider) == (90, 0)

    @pytest.mark.asyncio
    async def test_auto_confirm_pays_at_most_the_hold(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        await care.request(elder, "reported", provider=provider, minutes=60, reported=90)
        await care.world.conn.execute("UPDATE care_requests SET reported_at = now() - interval '4 days'")
        assert await requests.sweep(care.world.conn, "auto_confirm") == 1
        assert await care.minutes(provider) == (60, 0)


class TestConservation:
    @pytest.mark.asyncio
    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        steps=st.lists(
            st.tuples(
                st.sampled_from(ACTIONS), st.sampled_from(["recipient", "staff", "provider", "volunteer"])
            ),
            max_size=8,
        ),
        estimate=st.integers(1, 300),
        reported=st.integers(1, 400),
        consent=st.booleans(),
    )
    async def test_no_sequence_of_transitions_changes_total_hours(
        self, care: Care, steps: list[tuple[str, str]], estimate: int, reported: int, consent: bool
    ) -> None:
        conn = care.world.conn
        elder, provider, other = await care.elder(minutes=1000), await care.provider(), await care.provider()
        total = await care.outside_issuance()
        rid = (await requests.create(conn, care.world.volunteer(elder), care.body(estimate))).id
        who = {
            "recipient": care.world.volunteer(elder),
            "staff": care.staff(),
            "provider": care.world.volunteer(provider),
            "volunteer": care.world.volunteer(other),
        }
        bodies: dict[str, Any] = {
            "assign": Assign(provider_id=provider),
            "report": Report(minutes=reported),
            "confirm": ConfirmCare(consent_overrun=consent),
        }
        for action, party in steps:
            try:
                if action in ("expire", "auto_confirm"):
                    await requests.system_transition(conn, care.region, rid, action)
                else:
                    body = bodies.get(action, WithReason(reason="任意原因"))
                    await requests.transition(conn, who[party], rid, action, body)  # type: ignore[arg-type]
            except DomainError:
                pass
            assert await care.outside_issuance() == total
            assert await care.escrow() == (0, 0) or (await care.escrow())[0] == 0
            row = await _row(care, rid)
            held = (await care.minutes(elder))[1]
            open_states = ("pending_review", "open", "assigned", "reported", "disputed")
            assert held == (estimate if row.status in open_states else 0)
            paid = (await care.minutes(provider))[0] + (await care.minutes(other))[0]
            assert paid == (row.settled_minutes or 0)


class TestProviders:
    @pytest.mark.asyncio
    async def test_training_is_required_to_accept(self, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        await care.world.conn.execute(
            "UPDATE service_categories SET required_training = 'care-basics' WHERE code = 'daily-care'"
        )
        rid = await care.request(elder, "open")
        listed = await requests.page(
            care.world.conn, care.world.volunteer(provider), view="open", status=None, cursor=None, limit=20
        )
        assert listed.items == []
        with pytest.raises(errors.NotEligible):
            await requests.transition(care.world.conn, care.world.volunteer(provider), rid, "accept")

    @pytest.mark.asyncio
    async def test_staff_act_for_an_offline_resident(self, care: Care) -> None:
        elder = await care.elder(minutes=300)
        staff = care.staff()
        made = await requests.create(care.world.conn, staff, care.body(60, recipient_id=elder))
        detail = await requests.get(care.world.conn, care.world.volunteer(elder), made.id)
        assert detail.created_by == staff.sub and detail.recipient_id == elder
        assert (detail.history[0].actor_id, detail.history[0].subject_id) == (staff.sub, elder)

    @pytest.mark.asyncio
    async def test_a_proxy_asks_for_the_subject(self, care: Care) -> None:
        elder, son = await care.elder(minutes=300), await care.provider()
        proxy = care.world.proxy(elder, son, ("view", "request_care"))
        made = await requests.create(care.world.conn, proxy, care.body(60))
        detail = await requests.get(care.world.conn, care.staff(), made.id)
        assert detail.recipient_id == elder and detail.created_by == son
        assert detail.history[0].actor_kind == "volunteer" and detail.history[0].subject_id == elder
