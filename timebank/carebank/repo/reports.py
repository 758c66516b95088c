"""SQL of the care bank's reports: what members are owed and what is held now, care delivered per
month, and the minutes communities' providers delivered to each other's residents.

Every figure is read from the ledger's own rows (balances and transfers), so the reports add up to
the ledger's sums. ``$2`` of the scoped queries is an organisation whose subtree the report covers
(NULL: the whole region).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from timebank.db import Conn

_IN_SCOPE = """(SELECT o.id FROM organisations o
                 WHERE o.region_id = $1 AND ($2::uuid IS NULL OR o.id = $2 OR $2 = ANY (o.path)))"""

# Members' main TIME accounts by home community: posted (owed to them) and held by pending debits.
OWED_BY_COMMUNITY = (
    """
SELECT o.id AS community_id, o.code, o.name,
       coalesce(sum(lb.credits_posted - lb.debits_posted), 0)::bigint AS owed_minutes,
       coalesce(sum(lb.debits_pending), 0)::bigint AS held_minutes
  FROM ledger_accounts a
  JOIN ledger_balances lb ON lb.account_id = a.id AND lb.region_id = a.region_id
  JOIN volunteers v ON v.id = a.owner_id AND v.region_id = a.region_id
  JOIN organisations o ON o.id = v.community_id AND o.region_id = v.region_id
 WHERE a.region_id = $1 AND a.owner_kind = 'volunteer' AND a.ledger = 'TIME' AND a.purpose = 'main'
   AND v.community_id IN """
    + _IN_SCOPE
    + """
 GROUP BY o.id, o.code, o.name
 ORDER BY o.code
"""
)

# Care paid to providers (settlements and consented overruns, overflow spills included), by the
# month (local to $3) and the recipient's and the provider's communities, where either side is in
# scope (``recipient_in_scope`` says whether the recipient's community is).
DELIVERED = (
    """
SELECT to_char(t.created_at AT TIME ZONE $3, 'YYYY-MM') AS month,
       r.recipient_community_id, rc.code AS recipient_code, rc.name AS recipient_name,
       r.provider_community_id, pc.code AS provider_code, pc.name AS provider_name,
       sum(t.amount)::bigint AS minutes, count(DISTINCT r.id)::int AS requests,
       r.recipient_community_id IN """
    + _IN_SCOPE
    + """ AS recipient_in_scope
  FROM ledger_transfers t
  JOIN care_requests r ON r.id = (t.metadata ->> 'care_request_id')::uuid AND r.region_id = t.region_id
  JOIN organisations rc ON rc.id = r.recipient_community_id AND rc.region_id = r.region_id
  JOIN organisations pc ON pc.id = r.provider_community_id AND pc.region_id = r.region_id
 WHERE t.region_id = $1 AND t.kind = 'posted' AND t.code = ANY ($6::text[])
   AND t.created_at >= $4 AND t.created_at < $5
   AND (r.recipient_community_id IN """
    + _IN_SCOPE
    + """ OR r.provider_community_id IN """
    + _IN_SCOPE
    + """)
 GROUP BY 1, 2, 3, 4, 5, 6, 7
 ORDER BY 1, 3, 6
"""
)


async def owed_by_community(conn: Conn, region_id: UUID, org: UUID | None) -> list[dict[str, Any]]:
    """Per community in scope: minutes owed to its members and held now."""
    return [dict(r) for r in await conn.fetch(OWED_BY_COMMUNITY, region_id, org)]


async def delivered(
    conn: Conn,
    region_id: UUID,
    org: UUID | None,
    zone: str,
    since: datetime,
    until: datetime,
    codes: list[str],
) -> list[dict[str, Any]]:
    """Care minutes paid to providers per month, recipient community and provider community."""
    rows = await conn.fetch(DELIVERED, region_id, org, zone, since, until, codes)
    return [dict(r) for r in rows]
