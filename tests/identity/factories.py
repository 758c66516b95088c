"""Arrange identity data directly in the database (real encryption, real password hashes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import asyncpg
from argon2 import PasswordHasher

from timebank.identity.pii import PiiKeys, birth_date_of, id_check_character, load_pii_keys
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.seeding import load_seed_file
from timebank.settings import PROJECT_ROOT, Settings

SEEDS = PROJECT_ROOT / "seeds"
# Cheap parameters for arranged accounts only; the service hashes with argon2-cffi's defaults.
_FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse 42"


def make_id_number(born: date = date(1950, 3, 7), seq: int = 123, prefix: str = "310106") -> str:
    """A valid 身份证号 (GB 11643 check digit) for a birth date and sequence number."""
    first17 = f"{prefix}{born:%Y%m%d}{seq:03d}"
    return first17 + id_check_character(first17)


_INSERT_VOLUNTEER = """
INSERT INTO volunteers (id, region_id, community_id, real_name, mobile_cipher, mobile_key_id, mobile_index,
                        mobile_masked, id_number_cipher, id_number_key_id, id_number_index, id_number_masked,
                        birth_date, password_hash, status, registered_via)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'seed')
"""
_INSERT_OPERATOR = """
INSERT INTO operators (id, region_id, kind, organisation_id, shop_id, roles, real_name, mobile_cipher,
                       mobile_key_id, mobile_index, mobile_masked, password_hash, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""


@dataclass
class World:
    """The demo region plus people of every kind."""

    conn: asyncpg.Connection
    pii: PiiKeys
    region: UUID
    orgs: dict[str, UUID]
    shops: dict[str, UUID]
    people: dict[str, Principal] = field(default_factory=dict)
    _seq: int = 100

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def volunteer(
        self,
        name: str = "张阿姨",
        community: str = "zhangyuan",
        mobile: str | None = None,
        id_number: str | None = None,
        password: str | None = PASSWORD,
        status: str = "active",
    ) -> Principal:
        vid = uuid7()
        id_number = id_number or make_id_number(seq=self.next_seq())
        sid = self.pii.seal_id_number(vid, id_number)
        sm = self.pii.seal_mobile(vid, mobile) if mobile else None
        await self.conn.execute(
            _INSERT_VOLUNTEER,
            vid,
            self.region,
            self.orgs[community],
            name,
            sm.cipher if sm else None,
            sm.key_id if sm else None,
            sm.index if sm else None,
            sm.masked if sm else None,
            sid.cipher,
            sid.key_id,
            sid.index,
            sid.masked,
            birth_date_of(id_number),
            _FAST.hash(password) if password else None,
            status,
        )
        return Principal(sub=vid, kind="volunteer", region_id=self.region, roles=("volunteer",))

    async def operator(
        self,
        kind: str,
        mobile: str,
        *,
        org: str | None = None,
        shop: str | None = None,
        roles: tuple[str, ...] = (),
        name: str = "李老师",
        password: str | None = PASSWORD,
        status: str = "active",
    ) -> Principal:
        oid = uuid7()
        sm = self.pii.seal_mobile(oid, mobile)
        await self.conn.execute(
            _INSERT_OPERATOR,
            oid,
            self.region,
            kind,
            self.orgs[org] if org else None,
            self.shops[shop] if shop else None,
            list(roles),
            name,
            sm.cipher,
            sm.key_id,
            sm.index,
            sm.masked,
            _FAST.hash(password) if password else None,
            status,
        )
        token_roles = (
            roles if kind == "staff" else (("shop_operator",) if kind == "shop" else ("region_admin",))
        )
        return Principal(
            sub=oid,
            kind=kind,  # type: ignore[arg-type]
            region_id=self.region,
            roles=token_roles,
            org_id=self.orgs[org] if org else None,
            shop_id=self.shops[shop] if shop else None,
        )

    async def grant(
        self,
        subject: Principal,
        proxy: Principal,
        actions: tuple[str, ...] = ("view",),
        days: int = 30,
    ) -> UUID:
        gid = uuid7()
        await self.conn.execute(
            "INSERT INTO proxy_grants (id, region_id, subject_id, proxy_kind, proxy_volunteer_id,"
            " proxy_operator_id, actions, valid_until, granted_by_kind, granted_by)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'volunteer', $3)",
            gid,
            self.region,
            subject.sub,
            proxy.kind,
            proxy.sub if proxy.kind == "volunteer" else None,
            proxy.sub if proxy.kind == "staff" else None,
            list(actions),
            datetime.now(UTC) + timedelta(days=days),
        )
        return gid


async def make_world(conn: asyncpg.Connection, settings: Settings) -> World:
    """Load the demo region (organisations and shops only) and return a builder for people."""
    region = await load_seed_file(conn, SEEDS / "demo.yaml", SEEDS, pii=load_pii_keys(settings), people=False)
    orgs = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM organisations")}
    shops = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM shops")}
    return World(conn=conn, pii=load_pii_keys(settings), region=region, orgs=orgs, shops=shops)
