"""Which connection each route asks for: read-only routes read through ``read_db`` (a replica when
one is configured and has caught up with the caller, else the primary), everything else ``db``.

A handler names the connection it wants by its parameter (``read_db`` or ``db``, see
timebank.identity.guards). A ``GET`` that asks for the primary must be listed below with its reason,
so a new read-only route cannot stay on the primary by accident.
"""

from __future__ import annotations

from litestar import Litestar

PRIMARY_READS: dict[str, str] = {
    "GET /api/v1/certificates/{certificate_id:uuid}/verify": (
        "the public check of a printed certificate, asked by someone who did not issue it, often "
        "moments after it was issued: a replica behind by a second would call a genuine "
        "certificate unknown, and the caller has no write position to wait for"
    ),
}
"""``GET`` routes that read the primary on purpose, and why."""


def connections(app: Litestar, tag: str | None = None) -> dict[str, set[str]]:
    """``METHOD path`` → the connection parameters its handler takes (``db``, ``read_db``); only
    the handlers tagged ``tag`` when one is given."""
    seen: dict[str, set[str]] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if tag is not None and tag not in handler.resolve_tags():
                continue
            wanted = set(handler.parsed_fn_signature.parameters) & {"db", "read_db"}
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                seen[f"{method} {route.path}"] = wanted
    return seen


class TestReadRoutes:
    def test_every_read_only_route_reads_through_read_db_unless_listed(self, app: Litestar) -> None:
        on_primary = {k for k, v in connections(app).items() if k.startswith("GET ") and "db" in v}
        assert on_primary == set(PRIMARY_READS)

    def test_no_route_takes_both_connections(self, app: Litestar) -> None:
        both = {k for k, v in connections(app).items() if v == {"db", "read_db"}}
        assert both == set()

    def test_writes_never_read_through_read_db(self, app: Litestar) -> None:
        # A value-moving or state-changing route reads what it changes on the primary, inside its
        # transaction; a replica's answer there could be older than the write it decides on.
        writers = {k for k, v in connections(app).items() if not k.startswith("GET ") and "read_db" in v}
        assert writers == set()
