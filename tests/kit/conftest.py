"""The kit's tests use the ledger's books (a region with issuance accounts) as their world."""

from tests.ledger.conftest import app_conn, books  # noqa: F401  (fixtures, used by name)
