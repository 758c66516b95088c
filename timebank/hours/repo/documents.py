"""SQL of certificates, exports and seeded activities."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.hours.rows import CertificateLine, CertificateRow, ExportRow, many, one

# --------------------------------------------------------------------------- certificates and exports
CERTIFICATE_RECORDS = """
SELECT a.starts_at AS served_at, a.title, c.name AS category, lc.minutes
  FROM service_confirmations lc
  JOIN service_records r ON r.id = lc.record_id AND r.region_id = lc.region_id
  JOIN activities a ON a.id = r.activity_id AND a.region_id = r.region_id
  JOIN service_categories c ON c.id = r.category_id AND c.region_id = r.region_id
 WHERE lc.volunteer_id = $1 AND lc.organisation_id = $2 AND lc.region_id = $5 AND lc.reversed_at IS NULL
   AND r.kind = 'service'
   AND a.starts_at >= $3 AND a.starts_at < $4
 ORDER BY a.starts_at, r.id
"""

SELECT_ID_NUMBER_MASKED = "SELECT id_number_masked FROM volunteers WHERE id = $1 AND region_id = $2"

INSERT_CERTIFICATE = """
INSERT INTO certificates (id, region_id, volunteer_id, organisation_id, period_from, period_to, content,
                          content_sha256, signature, key_id, issued_by, issued_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""

_SELECT_CERTIFICATE = """
SELECT id, region_id, volunteer_id, organisation_id, period_from, period_to, content, content_sha256,
       signature, key_id, issued_by, issued_at
  FROM certificates"""

# The public verification finds a certificate by its id alone: whoever scans the printed code is
# not signed in, and the verification URL names no region.
SELECT_CERTIFICATE = _SELECT_CERTIFICATE + " WHERE id = $1\n"

SELECT_REGION_CERTIFICATE = _SELECT_CERTIFICATE + " WHERE id = $1 AND region_id = $2\n"

EXPORT_RECORDS = """
SELECT r.id, a.title AS activity_title, c.name AS category_name, a.starts_at, r.volunteer_id,
       v.real_name, v.mobile_masked, r.role, r.check_in_at, r.check_out_at, r.travel_minutes,
       r.counted_minutes, lc.points, r.status, o.name AS organisation_name
  FROM service_records r
  JOIN activities a ON a.id = r.activity_id AND a.region_id = r.region_id
  JOIN service_categories c ON c.id = r.category_id AND c.region_id = r.region_id
  JOIN volunteers v ON v.id = r.volunteer_id AND v.region_id = r.region_id
  JOIN organisations o ON o.id = r.organisation_id AND o.region_id = r.region_id
  LEFT JOIN service_confirmations lc ON lc.record_id = r.id AND lc.region_id = r.region_id
                                    AND lc.reversed_at IS NULL
 WHERE r.region_id = $6 AND r.kind = 'service'
   AND ($1::uuid IS NULL OR r.activity_id = $1)
   AND ($2::uuid IS NULL OR o.id = $2 OR $2 = ANY (o.path))
   AND ($3::timestamptz IS NULL OR a.starts_at >= $3)
   AND ($4::timestamptz IS NULL OR a.starts_at < $4)
 ORDER BY a.starts_at, r.id
 LIMIT $5
"""


async def certificate_records(
    conn: Conn,
    region_id: UUID,
    volunteer_id: UUID,
    organisation_id: UUID,
    start: datetime | None,
    end: datetime | None,
) -> list[CertificateLine]:
    """Confirmed (not reversed) service of a volunteer with an organisation, by activity start."""
    return many(
        await conn.fetch(CERTIFICATE_RECORDS, volunteer_id, organisation_id, start, end, region_id),
        CertificateLine,
    )


async def id_number_masked(conn: Conn, region_id: UUID, volunteer_id: UUID) -> str:
    """The masked 身份证号 (the only form stored in clear)."""
    return str(await conn.fetchval(SELECT_ID_NUMBER_MASKED, volunteer_id, region_id))


async def insert_certificate(
    conn: Conn,
    certificate_id: UUID,
    region_id: UUID,
    volunteer_id: UUID,
    organisation_id: UUID,
    period_from: date,
    period_to: date,
    content: dict[str, Any],
    digest: bytes,
    signature: bytes,
    key_id: str,
    issued_by: UUID,
    issued_at: datetime,
) -> None:
    """Store an issued certificate."""
    await conn.execute(
        INSERT_CERTIFICATE,
        certificate_id,
        region_id,
        volunteer_id,
        organisation_id,
        period_from,
        period_to,
        content,
        digest,
        signature,
        key_id,
        issued_by,
        issued_at,
    )


async def certificate(conn: Conn, certificate_id: UUID) -> CertificateRow | None:
    """One certificate row, of whichever region (the public verification)."""
    return one(await conn.fetchrow(SELECT_CERTIFICATE, certificate_id), CertificateRow)


async def region_certificate(conn: Conn, region_id: UUID, certificate_id: UUID) -> CertificateRow | None:
    """One certificate row of the region."""
    return one(await conn.fetchrow(SELECT_REGION_CERTIFICATE, certificate_id, region_id), CertificateRow)


async def export_records(
    conn: Conn,
    region_id: UUID,
    activity_id: UUID | None,
    org_root: UUID | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[ExportRow]:
    """Service records of an activity, or of an organisation's subtree over a period, in start order."""
    return many(
        await conn.fetch(EXPORT_RECORDS, activity_id, org_root, start, end, limit, region_id), ExportRow
    )


# --------------------------------------------------------------------------- seeds
SELECT_ACTIVITY_BY_SEED_KEY = "SELECT id FROM activities WHERE region_id = $1 AND seed_key = $2"

SEED_ACTIVITY_EXTRAS = """
WITH upd AS (
    UPDATE activities SET seed_key = $2, status = $3, signed_up = cardinality($4::uuid[])
     WHERE id = $1 AND region_id = $5
    RETURNING id, region_id
)
INSERT INTO activity_signups (region_id, activity_id, volunteer_id, actor_id)
SELECT upd.region_id, upd.id, v, v FROM upd, unnest($4::uuid[]) AS v
"""


async def activity_by_seed_key(conn: Conn, region_id: UUID, key: str) -> UUID | None:
    """The activity a seed file created under ``key``."""
    activity_id: UUID | None = await conn.fetchval(SELECT_ACTIVITY_BY_SEED_KEY, region_id, key)
    return activity_id


async def seed_activity_extras(
    conn: Conn, region_id: UUID, activity_id: UUID, key: str, status: str, volunteer_ids: list[UUID]
) -> None:
    """Key a seeded activity, set its status and sign its volunteers up."""
    await conn.execute(SEED_ACTIVITY_EXTRAS, activity_id, key, status, volunteer_ids, region_id)
