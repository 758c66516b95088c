"""Who the caller is: their account, region and organisation, and who acts for them."""

from __future__ import annotations

from timebank.db import Conn
from timebank.identity.repo import operators, regions, volunteers
from timebank.identity.schemas import AccountProfile, ActorRef, OrgRef
from timebank.kit.principal import Principal
from timebank.problems import NotFound


def _acting(principal: Principal) -> ActorRef | None:
    if not principal.is_proxy:
        return None
    assert principal.actor_id is not None and principal.grant_id is not None
    return ActorRef(
        id=principal.actor_id,
        kind=principal.actor_kind or "volunteer",
        grant_id=principal.grant_id,
        actions=list(principal.proxy_actions),
    )


async def profile(conn: Conn, principal: Principal) -> AccountProfile:
    """The caller's profile (for a proxy: the subject's, with the actor named)."""
    region = await regions.get_region(conn, principal.region_id)
    if region is None:
        raise NotFound("The account's region no longer exists.")
    if principal.kind == "volunteer":
        vol = await volunteers.get_volunteer(conn, principal.sub, principal.region_id)
        if vol is None:
            raise NotFound("No such volunteer.")
        return AccountProfile(
            id=vol.id,
            kind="volunteer",
            real_name=vol.real_name,
            roles=list(principal.roles),
            region=region,
            status=vol.status,
            mobile_masked=vol.mobile_masked,
            id_number_masked=vol.id_number_masked,
            birth_date=vol.birth_date,
            community=OrgRef(id=vol.community_id, name=vol.community_name),
            acting=_acting(principal),
        )
    op = await operators.get_operator(conn, principal.sub, principal.region_id)
    if op is None:
        raise NotFound("No such account.")
    return AccountProfile(
        id=op.id,
        kind=op.kind,
        real_name=op.real_name,
        roles=list(op.roles) or list(principal.roles),
        region=region,
        status=op.status,
        mobile_masked=op.mobile_masked,
        organisation=OrgRef(id=op.organisation_id, name=op.organisation_name or "")
        if op.organisation_id
        else None,
        shop=OrgRef(id=op.shop_id, name=op.shop_name or "") if op.shop_id else None,
    )
