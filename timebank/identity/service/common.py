"""What the identity services share: their context, personal-data parsing, who may manage what,
the scope of a list, reading back what a request wrote, and paging by id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.identity.errors import InvalidPersonalData
from timebank.identity.pii import PiiError, PiiKeys, normalize_id_number, normalize_mobile
from timebank.identity.sms import SmsSender
from timebank.identity.tokens import KeyRing
from timebank.identity.wechat import Code2SessionClient
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.problems import Forbidden, NotFound
from timebank.settings import Settings

T = TypeVar("T")

MANAGE_PEOPLE = ("coordinator", "org_admin")

# The audit log's name for each kind of account.
SUBJECT_KIND = {"volunteer": "volunteer", "staff": "staff", "shop": "shop_operator", "admin": "admin"}


@dataclass
class IdentityContext:
    """What the identity services need besides a connection."""

    settings: Settings
    keys: KeyRing
    pii: PiiKeys
    sms: SmsSender
    wechat: Code2SessionClient


def mobile(raw: str) -> str:
    """The normalised mainland mobile number, or a 422 naming ``phone``."""
    try:
        return normalize_mobile(raw)
    except PiiError as exc:
        raise InvalidPersonalData(str(exc), field="phone") from None


def id_number(raw: str) -> str:
    """The normalised ID number, or a 422 naming ``id_number``."""
    try:
        return normalize_id_number(raw)
    except PiiError as exc:
        raise InvalidPersonalData(str(exc), field="id_number") from None


def may_manage_people(principal: Principal) -> None:
    """Registering or changing volunteers: coordinators and org_admins, and administrators."""
    if principal.kind == "staff" and not principal.has_role(*MANAGE_PEOPLE):
        raise Forbidden("Registering or changing volunteers needs the coordinator or org_admin role.")
    if principal.kind not in ("staff", "admin"):
        raise Forbidden("This action is for staff and administrators.")


def may_manage_orgs(principal: Principal) -> None:
    """Organisations, staff and shops: org_admins and administrators."""
    if principal.kind not in ("staff", "admin"):
        raise Forbidden("This action is for staff and administrators.")
    if principal.kind == "staff" and not principal.has_role("org_admin"):
        raise Forbidden("Managing organisations needs the org_admin role.")


def changed(req: msgspec.Struct) -> list[str]:
    """Names of the fields a PATCH request sets (values may be personal data: not recorded)."""
    return [f for f in req.__struct_fields__ if getattr(req, f) is not None]


def scope_root(principal: Principal) -> UUID | None:
    """None for an administrator (whole region); the organisation for staff."""
    return principal.org_id if principal.kind == "staff" else None


def written(view: T | None) -> T:
    """A row this request has just written, read back for the response."""
    assert view is not None
    return view


async def in_scope_or_404(
    conn: Conn,
    principal: Principal,
    item_id: UUID,
    read: Callable[[Conn, UUID, UUID], Awaitable[T | None]],
    in_scope: Callable[[Conn, Principal, UUID], Awaitable[bool]],
    what: str,
) -> T:
    """The item of the caller's region, or a 404 when it is missing or outside the caller's scope."""
    item = await read(conn, item_id, principal.region_id)
    if item is None or not await in_scope(conn, principal, item_id):
        # Outside the scope looks like missing: ids of other communities are not confirmed.
        raise NotFound(f"No such {what} in your scope.")
    return item


class HasId(Protocol):
    """A row keyed by its (time-ordered) id."""

    @property
    def id(self) -> UUID: ...


R = TypeVar("R", bound=HasId)


def cursor_id(cursor: str | None, list_name: str) -> UUID | None:
    """The id a cursor of ``list_name`` resumes after (None: the first page)."""
    found = decode_cursor(cursor, list_name, UUID)
    return None if found is None else found[0]


def page_by_id(list_name: str, rows: Sequence[R], limit: int) -> Page[R]:
    """A page of rows fetched (``limit + 1``) in id order, resumed after the last row's id."""
    return page_of(list_name, rows, limit, lambda row: (row.id,))
