"""What the exchange routes share: the connection and identity dependencies, guards."""

from __future__ import annotations

from litestar.di import NamedDependency
from litestar.params import SkipValidation

from timebank.db import Conn
from timebank.identity.controllers import IDENTITY, Identity
from timebank.identity.guards import AFTER_PRINCIPAL, require

Db = NamedDependency[SkipValidation[Conn]]  # a union of asyncpg classes: nothing to validate
DEPENDENCIES = {**IDENTITY, **AFTER_PRINCIPAL}  # identity's keys hash the codes
__all__ = ["DEPENDENCIES", "Db", "Identity"]

# Who may do what: shop operators act for their own shop, administrators for the region's shops.
SHOP = require("shop", "admin")
ADMIN = require("admin")
VOLUNTEER = require("volunteer")
ANYONE = require("volunteer", "staff", "shop", "admin")

# Routes a family proxy or staff member may call for an offline resident (代办), with the action.
REDEEM = {"proxy_action": "redeem"}
VIEW = {"proxy_action": "view"}
RATE_LIMITED = {"rate_limited": True}
