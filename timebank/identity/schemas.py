"""Requests and responses of the identity domain (msgspec Structs).

Personal data appears in responses only masked (``mobile_masked``, ``id_number_masked``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

import msgspec

Phone = Annotated[str, msgspec.Meta(min_length=11, max_length=20, description="中国大陆手机号 (11 digits)")]
IdNumber = Annotated[str, msgspec.Meta(min_length=18, max_length=18, description="18 位身份证号 (GB 11643)")]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
OtpCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$", description="6-digit SMS code")]
RealName = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{2,60}$")]
OrgName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
AccountKind = Literal["volunteer", "staff", "shop", "admin"]
PersonStatus = Literal["active", "suspended", "left"]
StaffRole = Literal["coordinator", "reviewer", "org_admin"]
# The grant vocabulary; the CHECK constraint proxy_grants_actions lists the same actions.
ProxyAction = Literal[
    "view", "transfer", "redeem", "request_care", "sign_up", "update_profile", "confirm_service"
]
PROXY_ACTIONS: tuple[str, ...] = get_args(ProxyAction)


# --------------------------------------------------------------------------- auth
class OtpRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Ask for a one-time SMS code."""

    phone: Phone
    purpose: Literal["register", "login"]


class OtpSent(msgspec.Struct, kw_only=True):
    """The same answer whether or not an account exists."""

    sent_to: str
    expires_in: int
    resend_after: int


class RegisterRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A volunteer registers themselves: mobile + SMS code, real name and ID number.

    ``referrer_id``: the volunteer who brought them in (推荐人, e.g. from a shared mini-program
    link); rewarded by rule ``points.referral_points`` once the new volunteer's first service is
    confirmed.
    """

    phone: Phone
    code: OtpCode
    real_name: RealName
    id_number: IdNumber
    community_id: UUID
    password: Password | None = None
    referrer_id: UUID | None = None


class LoginRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Mobile and password; ``kind`` chooses the account type (volunteer by default)."""

    phone: Phone
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    kind: AccountKind = "volunteer"


class OtpLoginRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Mobile and one-time SMS code; ``kind`` chooses the account type (volunteer by default)."""

    phone: Phone
    code: OtpCode
    kind: AccountKind = "volunteer"


class WeChatLoginRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The code from the mini-program's ``wx.login()``."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class RefreshRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A refresh token to rotate."""

    refresh_token: Annotated[str, msgspec.Meta(min_length=20, max_length=200)]


class LogoutRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """End this session (its refresh-token family), or every session of the account."""

    refresh_token: Annotated[str, msgspec.Meta(min_length=20, max_length=200)] | None = None
    everywhere: bool = False


class TokenPair(msgspec.Struct, kw_only=True):
    """What every login kind returns."""

    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int


class PasswordChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Set a password (the current one is required when there is one)."""

    new_password: Password
    current_password: Annotated[str, msgspec.Meta(max_length=128)] | None = None


# --------------------------------------------------------------------------- people
class VolunteerView(msgspec.Struct, kw_only=True):
    """A volunteer as staff and the volunteer see them (personal data masked)."""

    id: UUID
    region_id: UUID
    community_id: UUID
    community_name: str
    real_name: str
    mobile_masked: str | None
    id_number_masked: str
    birth_date: date
    status: PersonStatus
    registered_via: str
    wechat_bound: bool
    created_at: datetime
    updated_at: datetime


class VolunteerCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Staff register an offline resident (a mobile number is optional)."""

    real_name: RealName
    id_number: IdNumber
    community_id: UUID
    phone: Phone | None = None


class VolunteerUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields staff may change; omitted fields stay."""

    real_name: RealName | None = None
    status: PersonStatus | None = None
    community_id: UUID | None = None
    phone: Phone | None = None


class OperatorView(msgspec.Struct, kw_only=True):
    """A staff member, shop operator or administrator (mobile masked)."""

    id: UUID
    region_id: UUID
    kind: Literal["staff", "shop", "admin"]
    organisation_id: UUID | None
    organisation_name: str | None
    shop_id: UUID | None
    shop_name: str | None
    roles: list[str]
    real_name: str
    mobile_masked: str
    status: PersonStatus
    created_at: datetime
    updated_at: datetime


class StaffCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new staff member of an organisation."""

    organisation_id: UUID
    real_name: RealName
    phone: Phone
    roles: Annotated[list[StaffRole], msgspec.Meta(min_length=1, max_length=3)]
    password: Password | None = None


class StaffUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields that may change; omitted fields stay."""

    real_name: RealName | None = None
    status: PersonStatus | None = None
    roles: Annotated[list[StaffRole], msgspec.Meta(min_length=1, max_length=3)] | None = None
    organisation_id: UUID | None = None


class ShopOperatorCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new operator of one shop."""

    real_name: RealName
    phone: Phone
    password: Password | None = None


class OrganisationView(msgspec.Struct, kw_only=True):
    """One organisation of the tree (path lists its ancestors, root first)."""

    id: UUID
    region_id: UUID
    parent_id: UUID | None
    path: list[UUID]
    kind: str
    code: str
    name: str
    status: str
    created_at: datetime


class OrganisationCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new organisation; staff may only add below their own organisation."""

    kind: Literal["region_office", "street", "community", "social_org"]
    code: Code
    name: OrgName
    parent_id: UUID | None = None


class OrganisationUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields that may change."""

    name: OrgName | None = None
    status: Literal["active", "inactive"] | None = None


class ShopView(msgspec.Struct, kw_only=True):
    """A partner shop."""

    id: UUID
    region_id: UUID
    organisation_id: UUID
    organisation_name: str
    code: str
    name: str
    address: str
    status: str
    created_at: datetime


class ShopCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new partner shop attached to an organisation."""

    organisation_id: UUID
    code: Code
    name: OrgName
    address: Annotated[str, msgspec.Meta(max_length=200)] = ""


class ShopUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields that may change."""

    name: OrgName | None = None
    address: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    status: Literal["active", "suspended", "closed"] | None = None


# --------------------------------------------------------------------------- proxies
class GrantCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Let a relative (by their registered mobile) or a staff member act for a subject.

    A volunteer grants for themselves (``subject_id`` omitted or their own id); staff grant for a
    resident in their scope.
    """

    actions: Annotated[list[ProxyAction], msgspec.Meta(min_length=1, max_length=7)]
    valid_until: datetime
    subject_id: UUID | None = None
    proxy_phone: Phone | None = None
    proxy_staff_id: UUID | None = None
    relationship: Annotated[str, msgspec.Meta(max_length=30)] = ""


class GrantView(msgspec.Struct, kw_only=True):
    """A proxy grant; ``live`` is true while it can be used."""

    id: UUID
    region_id: UUID
    subject_id: UUID
    subject_name: str
    proxy_kind: Literal["volunteer", "staff"]
    proxy_id: UUID
    proxy_name: str
    relationship: str
    actions: list[str]
    valid_from: datetime
    valid_until: datetime
    granted_by_kind: str
    granted_by: UUID
    revoked_at: datetime | None
    revoked_by: UUID | None
    created_at: datetime
    live: bool = False


# --------------------------------------------------------------------------- me
class RegionRef(msgspec.Struct, kw_only=True):
    """A region by id and name."""

    id: UUID
    code: str
    name: str


class OrgRef(msgspec.Struct, kw_only=True):
    """An organisation or shop by id and name."""

    id: UUID
    name: str


class ActorRef(msgspec.Struct, kw_only=True):
    """Who is acting when a proxy calls for a subject."""

    id: UUID
    kind: str
    grant_id: UUID
    actions: list[str]


class AccountProfile(msgspec.Struct, kw_only=True):
    """Who the caller is (or, for a proxy, whom they act for), as identity knows them.

    ``GET /api/v1/me`` answers this with the volunteer's balances added (:mod:`timebank.me`).
    """

    id: UUID
    kind: AccountKind
    real_name: str
    roles: list[str]
    region: RegionRef
    status: str
    mobile_masked: str | None = None
    id_number_masked: str | None = None
    birth_date: date | None = None
    community: OrgRef | None = None
    organisation: OrgRef | None = None
    shop: OrgRef | None = None
    acting: ActorRef | None = None


# --------------------------------------------------------------------------- audit
class AuditEntry(msgspec.Struct, kw_only=True):
    """One change in identity, or one act done for someone else: who (the actor; the proxy when
    someone acted for a person) did what to what (the subject), for whom, under which grant."""

    id: UUID
    region_id: UUID
    actor_kind: str
    actor_id: UUID | None
    subject_kind: str
    subject_id: UUID
    acted_for: UUID | None
    grant_id: UUID | None
    action: str
    detail: dict[str, Any]
    created_at: datetime
