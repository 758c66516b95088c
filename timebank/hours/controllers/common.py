"""What the hours routes share: the connection dependency, guards, proxy actions, downloads."""

from __future__ import annotations

from litestar.di import NamedDependency
from litestar.params import SkipValidation

from timebank.db import Conn
from timebank.identity.guards import require

Db = NamedDependency[SkipValidation[Conn]]  # a union of asyncpg classes: nothing to validate

# Who may do what (kinds, then staff roles; administrators carry region_admin).
MANAGE = require("staff", "admin", roles=("coordinator", "org_admin", "region_admin"))
REVIEW = require("staff", "admin", roles=("reviewer", "org_admin", "region_admin"))
STAFF = require("staff", "admin")
ADMIN = require("admin")
VOLUNTEER = require("volunteer")
PEOPLE = require("volunteer", "staff", "admin")

# Routes a family proxy may call for the subject (X-Act-For), with the grant action they need.
VIEW = {"proxy_action": "view"}
SIGN_UP = {"proxy_action": "sign_up"}
CONFIRM = {"proxy_action": "confirm_service"}
