"""Load seed data sets (``seeds/*.yaml``): default rules, the demo region and what later domains add.

A seed file is validated as a whole before anything is written, then loaded in one transaction:
either the whole data set is in or none of it. Every row is keyed by a stable code, so loading the
same file again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
import yaml

from timebank.carebank.seed import CareSeed, load_care, validate_care
from timebank.db import Conn
from timebank.domains import domains
from timebank.exchange.seed import CatalogueSeed, load_catalogues, validate_catalogues
from timebank.hours import repo as hours_repo
from timebank.hours.seed import ActivitySeed, load_activities, validate_activities
from timebank.identity.pii import PiiKeys, load_pii_keys
from timebank.identity.repo import organisations as organisation_repo
from timebank.identity.repo import regions as region_repo
from timebank.identity.seed import (
    AdminSeed,
    PeopleSeed,
    ProxyGrantSeed,
    ShopOperatorSeed,
    StaffSeed,
    VolunteerSeed,
    load_people,
    validate_people,
)
from timebank.kit import rules
from timebank.settings import Settings, load_settings

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{2,60}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class SeedError(Exception):
    """The seed file is not valid; nothing was loaded."""


class RegionSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Name
    timezone: str = "Asia/Shanghai"


class RuleSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    value: Any
    note: str = ""


class OrganisationSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: Code
    kind: Literal["region_office", "street", "community", "social_org"]
    name: Name
    parent: Code | None = None


class CategorySeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Name
    field: str = ""
    points_per_hour: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 1
    difficulty_tier: Annotated[int, msgspec.Meta(ge=1, le=3)] = 1
    multiplier_pct: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 100
    counts_for_time_bank: bool = True
    one_to_one: bool = False
    required_training: str | None = None


class ShopSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Name
    organisation: Code
    address: str = ""


class SeedFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One region's data set."""

    region: RegionSeed
    rules: dict[str, RuleSeed] = {}
    organisations: list[OrganisationSeed] = []
    categories: list[CategorySeed] = []
    shops: list[ShopSeed] = []
    admins: list[AdminSeed] = []
    staff: list[StaffSeed] = []
    shop_operators: list[ShopOperatorSeed] = []
    volunteers: list[VolunteerSeed] = []
    proxy_grants: list[ProxyGrantSeed] = []
    activities: list[ActivitySeed] = []
    catalogues: list[CatalogueSeed] = []
    care: CareSeed = msgspec.field(default_factory=CareSeed)

    @property
    def people(self) -> PeopleSeed:
        """The identity sections (administrators, staff, shop operators, volunteers, proxies)."""
        return PeopleSeed(
            admins=self.admins,
            staff=self.staff,
            shop_operators=self.shop_operators,
            volunteers=self.volunteers,
            proxy_grants=self.proxy_grants,
        )


class DefaultRules(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    rules: dict[str, RuleSeed]


# libyaml's safe loader where PyYAML was built with it (its wheels are): the demo region and the
# default rules parse in 15 ms instead of 120 ms, and the tests load them hundreds of times.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(path: Path, kind: type[Any]) -> Any:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)  # noqa: S506 (a safe loader)
        return msgspec.convert(raw, kind)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise SeedError(f"{path.name}: {exc}") from None


def check_rules(path: Path, values: dict[str, RuleSeed]) -> None:
    """Refuse a rule value that does not fit the type its domain declares, naming the key.

    A key no domain declares yet is accepted when the shipped defaults list it (its domain is
    still to come); any other key is a typo.
    """
    domains()  # the domains declare their rule sections when they are loaded
    for key, rule in values.items():
        if key not in rules.DECLARED and key in rules.shipped_defaults():
            continue
        try:
            rules.check_value(key, rule.value)
        except ValueError as exc:
            raise SeedError(f"{path.name}: rule {key}: {exc}") from None


def parse_seed(path: Path) -> SeedFile:
    """Validate a seed file, including its rule values and references between its sections."""
    seed: SeedFile = _read(path, SeedFile)
    check_rules(path, seed.rules)
    codes: set[str] = set()
    for org in seed.organisations:
        if org.parent is not None and org.parent not in codes:
            raise SeedError(
                f"{path.name}: organisation {org.code}: parent {org.parent} must be listed before it"
            )
        codes.add(org.code)
    for shop in seed.shops:
        if shop.organisation not in codes:
            raise SeedError(f"{path.name}: shop {shop.code}: unknown organisation {shop.organisation}")
    try:
        validate_people(seed.people, codes, {shop.code for shop in seed.shops})
        validate_activities(
            seed.activities, codes, {c.code for c in seed.categories}, {v.key for v in seed.volunteers}
        )
        validate_catalogues(seed.catalogues, {shop.code for shop in seed.shops})
        validate_care(seed.care, {c.code for c in seed.categories}, {v.key for v in seed.volunteers})
    except ValueError as exc:
        raise SeedError(f"{path.name}: {exc}") from None
    return seed


async def load_seed_file(
    conn: Conn,
    path: Path,
    seeds_dir: Path,
    progress: Callable[[str], None] = lambda _: None,
    *,
    pii: PiiKeys | None = None,
    people: bool = True,
    settings: Settings | None = None,
) -> UUID:
    """Load default rules and one region's seed file in one transaction; return the region id.

    People are encrypted with ``pii`` (default: the keys ``settings`` name) and their passwords
    hashed at the cost ``settings`` choose; ``settings`` default to the environment's, the same
    ones the server uses. ``people=False`` loads only organisations, rules and shops.
    """
    defaults_file = seeds_dir / "default_rules.yaml"
    defaults: DefaultRules = _read(defaults_file, DefaultRules)
    check_rules(defaults_file, defaults.rules)
    seed = parse_seed(path)
    load_people_too = people and not seed.people.empty
    if load_people_too:
        settings = settings or load_settings()
        pii = pii or load_pii_keys(settings)
    progress(f"seeding {path.name}: region {seed.region.code}")
    async with conn.transaction():
        region_id = await region_repo.upsert_region(
            conn, seed.region.code, seed.region.name, seed.region.timezone
        )
        for key, rule in defaults.rules.items():
            if key not in seed.rules:
                await region_repo.upsert_rule(conn, region_id, key, rule.value, rule.note, overwrite=False)
        for key, rule in seed.rules.items():
            await region_repo.upsert_rule(conn, region_id, key, rule.value, rule.note, overwrite=True)
        progress(f"  rules: {len(defaults.rules)} defaults, {len(seed.rules)} overrides")
        org_ids: dict[str, UUID] = {}
        for org in seed.organisations:
            parent_id = org_ids[org.parent] if org.parent else None
            org_ids[org.code] = await organisation_repo.upsert_organisation(
                conn, region_id, parent_id, org.kind, org.code, org.name
            )
        progress(f"  organisations: {len(org_ids)}")
        for cat in seed.categories:
            await hours_repo.upsert_category(
                conn,
                region_id,
                code=cat.code,
                name=cat.name,
                field=cat.field,
                points_per_hour=cat.points_per_hour,
                difficulty_tier=cat.difficulty_tier,
                multiplier_pct=cat.multiplier_pct,
                counts_for_time_bank=cat.counts_for_time_bank,
                one_to_one=cat.one_to_one,
                required_training=cat.required_training,
            )
        progress(f"  service categories: {len(seed.categories)}")
        shop_ids: dict[str, UUID] = {}
        for shop in seed.shops:
            shop_ids[shop.code] = await organisation_repo.upsert_shop(
                conn, region_id, org_ids[shop.organisation], shop.code, shop.name, shop.address
            )
        progress(f"  shops: {len(seed.shops)}")
        await load_catalogues(conn, region_id, shop_ids, seed.catalogues, progress)
        if load_people_too:
            assert pii is not None and settings is not None
            try:
                volunteer_ids = await load_people(
                    conn, pii, region_id, org_ids, shop_ids, seed.people, progress, settings
                )
            except ValueError as exc:  # the transaction rolls back: nothing of the file stays
                raise SeedError(f"{path.name}: {exc}") from None
            # Activities refer to seeded volunteers, so they come with the people.
            await load_activities(
                conn, region_id, seed.region.timezone, org_ids, volunteer_ids, seed.activities, progress
            )
            await load_care(conn, region_id, seed.region.timezone, volunteer_ids, seed.care, progress)
    progress("seed loaded")
    return region_id
