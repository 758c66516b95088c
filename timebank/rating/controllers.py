"""HTTP routes of the star rating: my level, a community's leaderboard and public listing, fraud bars."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter, SkipValidation

from timebank.db import Conn
from timebank.identity.guards import AFTER_PRINCIPAL, CurrentPrincipal, require
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from timebank.rating import service
from timebank.rating.schemas import BarRequest, Candidate, LeaderboardRow, MyRating, RatingBar

Db = NamedDependency[SkipValidation[Conn]]  # a union of asyncpg classes: nothing to validate
MonthParam = Annotated[
    str,
    QueryParameter(
        pattern=r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])$", description="the month, YYYY-MM (region's calendar)"
    ),
]


class MyRatingController(Controller):
    """The caller's star level."""

    path = "/me/rating"
    tags = ("rating",)
    guards = (require("volunteer"),)
    dependencies = AFTER_PRINCIPAL

    @get("/", operation_id="get_my_rating", opt={"proxy_action": "view"}, summary="My star level")
    async def mine(self, read_db: Db, principal: CurrentPrincipal) -> MyRating:
        """Level, since when, lifetime service minutes and what is left to the next level (as of the
        latest daily run)."""
        return await service.my_rating(read_db, principal)


class CommunityRatingController(Controller):
    """A community's monthly leaderboard and its candidates for public listing (公示)."""

    path = "/communities/{community_id:uuid}"
    tags = ("rating",)
    guards = (require("staff", "admin"),)
    dependencies = AFTER_PRINCIPAL

    @get("/leaderboard", operation_id="get_community_leaderboard", summary="Monthly service leaderboard")
    async def leaderboard(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        community_id: FromPath[UUID],
        month: MonthParam,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[LeaderboardRow]:
        """Volunteers of the community by minutes of service given in the month, most first."""
        first = date(int(month[:4]), int(month[5:7]), 1)
        return await service.leaderboard(read_db, principal, community_id, first, cursor, limit)

    @get(
        "/rating-candidates",
        operation_id="list_rating_candidates",
        summary="Star levels reached, under public listing",
    )
    async def candidates(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        community_id: FromPath[UUID],
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Candidate]:
        """Listed for the rule rating.public_listing_working_days working days after the level was reached."""
        return await service.candidates(read_db, principal, community_id, cursor, limit)


class RatingBarController(Controller):
    """Fraud bars: falsified hours bar a volunteer from ratings for 1–3 years."""

    path = "/rating/bars"
    tags = ("rating",)
    guards = (require("admin"),)
    dependencies = AFTER_PRINCIPAL

    @post("/", operation_id="create_rating_bar", summary="Bar a volunteer from ratings")
    async def create(self, db: Db, principal: CurrentPrincipal, data: JSONBody[BarRequest]) -> RatingBar:
        """The level drops to none at once (recorded with the bar) and stays there until the bar ends."""
        return await service.bar(db, principal, data)


CONTROLLERS = [MyRatingController, CommunityRatingController, RatingBarController]
