"""SQL of the organisation tree (街道 → 社区 → 社会组织) and of partner shops."""

from __future__ import annotations

from uuid import UUID

from timebank.db import Conn
from timebank.identity.repo.rows import many, one
from timebank.identity.schemas import OrganisationView, ShopView

# The columns of OrganisationView; one organisation or a filtered list of them.
ORGANISATION_VIEW = """
SELECT id, region_id, parent_id, path, kind, code, name, status, created_at
  FROM organisations
"""

SELECT_ORGANISATION = ORGANISATION_VIEW + " WHERE id = $1 AND region_id = $2\n"

# A volunteer registering themselves names their community, which tells their region.
SELECT_COMMUNITY_TO_JOIN = ORGANISATION_VIEW + " WHERE id = $1\n"

INSERT_ORGANISATION = """
INSERT INTO organisations (region_id, parent_id, path, kind, code, name)
SELECT $1, p.id, p.path || p.id, $3, $4, $5 FROM organisations p WHERE p.id = $2 AND p.region_id = $1
RETURNING id
"""

INSERT_ROOT_ORGANISATION = """
INSERT INTO organisations (region_id, parent_id, path, kind, code, name) VALUES ($1, NULL, '{}', $2, $3, $4)
RETURNING id
"""

LIST_ORGANISATIONS = (
    ORGANISATION_VIEW
    + """ WHERE region_id = $1
   AND ($2::uuid IS NULL OR id = $2 OR $2 = ANY (path))
   AND ($3::text IS NULL OR kind = $3)
   AND ($4::uuid IS NULL OR id > $4)
 ORDER BY id
 LIMIT $5
"""
)

UPDATE_ORGANISATION = """
UPDATE organisations SET name = COALESCE($2, name), status = COALESCE($3, status)
 WHERE id = $1 AND region_id = $4
RETURNING id
"""

# Seeding: create or update by (region, code); ``path`` follows the parent.
UPSERT_ORGANISATION = """
INSERT INTO organisations (region_id, parent_id, path, kind, code, name)
VALUES ($1, $2,
        COALESCE((SELECT p.path || p.id FROM organisations p WHERE p.id = $2 AND p.region_id = $1), '{}'),
        $3, $4, $5)
ON CONFLICT (region_id, code) DO UPDATE
   SET parent_id = EXCLUDED.parent_id, path = EXCLUDED.path, kind = EXCLUDED.kind, name = EXCLUDED.name
RETURNING id
"""

# The columns of ShopView and the join they need; one shop or a filtered list of them.
SHOP_VIEW = """
SELECT s.id, s.region_id, s.organisation_id, o.name AS organisation_name, s.code, s.name, s.address,
       s.status, s.created_at
  FROM shops s JOIN organisations o ON o.id = s.organisation_id AND o.region_id = s.region_id
"""

SELECT_SHOP = SHOP_VIEW + " WHERE s.id = $1 AND s.region_id = $2\n"

INSERT_SHOP = """
INSERT INTO shops (region_id, organisation_id, code, name, address) VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""

LIST_SHOPS = (
    SHOP_VIEW
    + """ WHERE s.region_id = $1 AND ($2::uuid IS NULL OR o.id = $2 OR $2 = ANY (o.path))
   AND ($3::uuid IS NULL OR s.id > $3)
 ORDER BY s.id
 LIMIT $4
"""
)

UPDATE_SHOP = """
UPDATE shops SET name = COALESCE($2, name), address = COALESCE($3, address), status = COALESCE($4, status)
 WHERE id = $1 AND region_id = $5
RETURNING id
"""

UPSERT_SHOP = """
INSERT INTO shops (region_id, organisation_id, code, name, address) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (region_id, code) DO UPDATE
   SET organisation_id = EXCLUDED.organisation_id, name = EXCLUDED.name, address = EXCLUDED.address
RETURNING id
"""


async def get_organisation(conn: Conn, org_id: UUID, region_id: UUID) -> OrganisationView | None:
    """One organisation of ``region_id``."""
    return one(await conn.fetchrow(SELECT_ORGANISATION, org_id, region_id), OrganisationView)


async def community_to_join(conn: Conn, org_id: UUID) -> OrganisationView | None:
    """The organisation a volunteer registering themselves names, in whichever region it is."""
    return one(await conn.fetchrow(SELECT_COMMUNITY_TO_JOIN, org_id), OrganisationView)


async def insert_organisation(
    conn: Conn, region_id: UUID, parent_id: UUID | None, kind: str, code: str, name: str
) -> UUID | None:
    """A new organisation below ``parent_id`` (None: a root); None when the parent is not in the region."""
    if parent_id is None:
        root: UUID = await conn.fetchval(INSERT_ROOT_ORGANISATION, region_id, kind, code, name)
        return root
    org_id: UUID | None = await conn.fetchval(INSERT_ORGANISATION, region_id, parent_id, kind, code, name)
    return org_id


async def list_organisations(
    conn: Conn, region_id: UUID, root_id: UUID | None, kind: str | None, after: UUID | None, limit: int
) -> list[OrganisationView]:
    """Organisations of a region or subtree."""
    return many(
        await conn.fetch(LIST_ORGANISATIONS, region_id, root_id, kind, after, limit), OrganisationView
    )


async def update_organisation(
    conn: Conn, org_id: UUID, region_id: UUID, name: str | None, status: str | None
) -> bool:
    """Rename or (de)activate an organisation of ``region_id``."""
    return await conn.fetchval(UPDATE_ORGANISATION, org_id, name, status, region_id) is not None


async def upsert_organisation(
    conn: Conn, region_id: UUID, parent_id: UUID | None, kind: str, code: str, name: str
) -> UUID:
    """Create or update an organisation by (region, code); ``path`` follows the parent."""
    org_id: UUID = await conn.fetchval(UPSERT_ORGANISATION, region_id, parent_id, kind, code, name)
    return org_id


async def get_shop(conn: Conn, shop_id: UUID, region_id: UUID) -> ShopView | None:
    """One shop of ``region_id``."""
    return one(await conn.fetchrow(SELECT_SHOP, shop_id, region_id), ShopView)


async def insert_shop(
    conn: Conn, region_id: UUID, organisation_id: UUID, code: str, name: str, address: str
) -> UUID:
    """A new shop."""
    shop_id: UUID = await conn.fetchval(INSERT_SHOP, region_id, organisation_id, code, name, address)
    return shop_id


async def list_shops(
    conn: Conn, region_id: UUID, root_id: UUID | None, after: UUID | None, limit: int
) -> list[ShopView]:
    """Shops of a region or subtree."""
    return many(await conn.fetch(LIST_SHOPS, region_id, root_id, after, limit), ShopView)


async def update_shop(
    conn: Conn, shop_id: UUID, region_id: UUID, name: str | None, address: str | None, status: str | None
) -> bool:
    """Change the given fields of a shop of ``region_id``."""
    return await conn.fetchval(UPDATE_SHOP, shop_id, name, address, status, region_id) is not None


async def upsert_shop(
    conn: Conn, region_id: UUID, organisation_id: UUID, code: str, name: str, address: str
) -> UUID:
    """Create or update a shop by (region, code)."""
    shop_id: UUID = await conn.fetchval(UPSERT_SHOP, region_id, organisation_id, code, name, address)
    return shop_id
