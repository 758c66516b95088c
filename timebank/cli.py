"""The ``timebank`` command: serve, migrate, seed, openapi (later issues add more to the tree)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from timebank import __version__
from timebank.db import (
    EmbeddedDatabase,
    Migration,
    MigrationError,
    ServerSupervisor,
    connect,
    connect_failed,
    load_migrations,
    migrate,
    migration_status,
)
from timebank.settings import PROJECT_ROOT, Settings, SettingsError, load_settings


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """Yield a DSN: the configured one, or the embedded server's (started for this command)."""
    if not settings.embedded:
        yield settings.database_url
        return
    embedded = EmbeddedDatabase(settings.data_dir)
    _say(f"embedded PostgreSQL in {embedded.pgdata} …")
    dsn = await asyncio.to_thread(embedded.start)
    try:
        yield dsn
    finally:
        embedded.stop()


def _progress(mig: Migration) -> None:
    _say(f"  applying {mig.filename}")


async def _migrate(settings: Settings, dsn: str) -> None:
    migrations = load_migrations(settings.sql_dir)
    async with connect(dsn) as conn:
        done = await migrate(conn, migrations, progress=_progress)
    _say(f"migrations: {len(done)} applied, {len(migrations)} in total, schema current")


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as dsn:
        if args.status:
            async with connect(dsn) as conn:
                rows = await migration_status(conn, load_migrations(settings.sql_dir))
            for row in rows:
                print(f"{row.version:04d}  {row.state:<8} {row.applied_at or '-':<32} {row.filename}")
            bad = [r for r in rows if r.state in ("edited", "missing")]
            return 1 if bad else 0
        await _migrate(settings, dsn)
    return 0


async def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from timebank.seeding import load_seed_file

    path = Path(settings.seeds_dir) / f"{args.name}.yaml"
    if not path.is_file():
        _say(f"no seed file {path}")
        return 2
    async with database(settings) as dsn:
        await _migrate(settings, dsn)
        async with connect(dsn) as conn:
            await load_seed_file(conn, path, Path(settings.seeds_dir), progress=_say)
    return 0


async def cmd_hours_auto_confirm(settings: Settings, args: argparse.Namespace) -> int:
    from timebank.hours.confirm import auto_confirm

    async with database(settings) as dsn:
        await _migrate(settings, dsn)
        async with connect(dsn) as conn:
            result = await auto_confirm(conn, batch=args.batch, progress=_say)
    _say(f"auto-confirmed {result.confirmed} service records; {result.remaining} still await confirmation")
    return 0


async def cmd_identity_rekey(settings: Settings, args: argparse.Namespace) -> int:
    from timebank.identity.pii import load_pii_keys
    from timebank.identity.service import rekey_personal_data, stale_key_rows

    pii = load_pii_keys(settings)
    async with database(settings) as dsn:
        await _migrate(settings, dsn)
        async with connect(dsn) as conn:
            try:
                done = await rekey_personal_data(conn, pii, batch=args.batch, progress=_say)
            except KeyError as exc:
                _say(f"timebank: a row is encrypted under key {exc} which the key file no longer holds")
                return 1
            left = await stale_key_rows(conn, pii)
    _say(f"re-encrypted {done} rows under key {pii.current}; {left} rows still under other keys")
    return 0 if left == 0 else 1


async def cmd_identity_purge(settings: Settings, args: argparse.Namespace) -> int:
    from timebank.identity.service import purge

    async with database(settings) as dsn:
        await _migrate(settings, dsn)
        async with connect(dsn) as conn:
            await purge(conn)
    _say("deleted expired one-time codes, refresh tokens and rate-limit windows")
    return 0


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> int:
    from timebank.app import create_app

    spec = openapi_document(create_app(settings))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(spec, encoding="utf-8")
    _say(f"wrote {out}")
    return 0


def openapi_document(app: object) -> str:
    """The committed form of the OpenAPI document: sorted keys, two-space indent, UTF-8."""
    schema = app.openapi_schema.to_schema()  # type: ignore[attr-defined]
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


async def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from timebank.ledger import repo as ledger_repo
    from timebank.ledger.verify import verify

    async with database(settings) as dsn, connect(dsn) as conn:
        region_id = None
        if args.region:
            region_id = await ledger_repo.region_by_code(conn, args.region)
            if region_id is None:
                _say(f"timebank: no region with code {args.region}")
                return 2
        report = await verify(conn, region_id=region_id, progress=_say)
    print(report.render())
    return 0 if report.ok else 1


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    async def prepare() -> None:
        await _migrate(settings, dsn)
        if args.demo:
            from timebank.seeding import load_seed_file

            async with connect(dsn) as conn:
                await load_seed_file(
                    conn, Path(settings.seeds_dir) / "demo.yaml", Path(settings.seeds_dir), progress=_say
                )

    embedded = EmbeddedDatabase(settings.data_dir) if settings.embedded else None
    dsn = embedded.start() if embedded else settings.database_url
    # The embedded server belongs to this (parent) process, which also restarts it when it dies;
    # workers only see its DSN, as they would an external server's.
    supervisor = ServerSupervisor(embedded, settings.db_supervise_s) if embedded else None
    try:
        if supervisor:
            supervisor.start()
        asyncio.run(_when_reachable(prepare))
        os.environ["TIMEBANK_DATABASE_URL"] = dsn
        host = args.host or settings.host
        port = args.port or settings.port
        workers = args.workers or settings.workers
        _say(f"timebank {__version__} on http://{host}:{port} ({workers} worker(s)); API under /api/v1")
        # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so the
        # finally below stops the embedded server instead of the default handler killing us.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        uvicorn.run(
            "timebank.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=True,
        )
    finally:
        if supervisor:
            supervisor.stop()
        if embedded:
            embedded.stop()
    return 0


STARTUP_WAIT_S = 60.0


async def _when_reachable(step: Callable[[], Awaitable[None]]) -> None:
    """Run ``step``; again while the database is out of reach (starting, recovering), for a while."""
    deadline, delay = time.monotonic() + STARTUP_WAIT_S, 0.5
    while True:
        try:
            return await step()
        except Exception as exc:
            if not connect_failed(exc) or time.monotonic() + delay > deadline:
                raise
            _say(f"database not reachable yet ({type(exc).__name__}); trying again in {delay:.1f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def build_parser() -> argparse.ArgumentParser:
    """The command tree."""
    parser = argparse.ArgumentParser(
        prog="timebank",
        description="timebank — 时间银行与志愿积分兑换服务 (volunteer hours and points ledger)",
    )
    parser.add_argument("--version", action="version", version=f"timebank {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="apply migrations, then serve the HTTP API")
    serve.add_argument("--host", help="bind address (default TIMEBANK_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default TIMEBANK_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default TIMEBANK_WORKERS or 1)")
    serve.add_argument("--demo", action="store_true", help="load seeds/demo.yaml before serving (idempotent)")
    serve.set_defaults(handler=cmd_serve, is_async=False)

    mig = sub.add_parser("migrate", help="apply pending migrations from sql/")
    mig.add_argument("--status", action="store_true", help="list migrations and their state; change nothing")
    mig.set_defaults(handler=cmd_migrate, is_async=True)

    seed = sub.add_parser("seed", help="load a seed data set from seeds/ (idempotent)")
    seed.add_argument("name", choices=["demo"], help="which data set")
    seed.set_defaults(handler=cmd_seed, is_async=True)

    hours = sub.add_parser("hours", help="service records (auto-confirmation)")
    hours_sub = hours.add_subparsers(dest="hours_command", required=True, metavar="ACTION")
    auto = hours_sub.add_parser(
        "auto-confirm", help="confirm one-to-one records older than the rule hours.auto_confirm_days"
    )
    auto.add_argument("--batch", type=int, default=500, help="records per transaction (default 500)")
    auto.set_defaults(handler=cmd_hours_auto_confirm, is_async=True)

    ident = sub.add_parser("identity", help="personal-data keys and authentication housekeeping")
    ident_sub = ident.add_subparsers(dest="identity_command", required=True, metavar="ACTION")
    rekey = ident_sub.add_parser(
        "rekey", help="re-encrypt mobiles and ID numbers under the key file's current key"
    )
    rekey.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")
    rekey.set_defaults(handler=cmd_identity_rekey, is_async=True)
    purge = ident_sub.add_parser(
        "purge", help="delete expired one-time codes, refresh tokens and rate-limit windows"
    )
    purge.set_defaults(handler=cmd_identity_purge, is_async=True)

    api = sub.add_parser("openapi", help="write the OpenAPI document")
    api.add_argument("--output", default=str(PROJECT_ROOT / "openapi" / "openapi.json"))
    api.set_defaults(handler=cmd_openapi, is_async=False)

    ver = sub.add_parser(
        "verify", help="check the ledger: hash chains, balances and lots recomputed from the transfers"
    )
    ver.add_argument("--region", help="only this region (its code); default every region")
    ver.set_defaults(handler=cmd_verify, is_async=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``timebank`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        _say(f"timebank: configuration error: {exc}")
        return 2
    from timebank.observability import configure_logging
    from timebank.seeding import SeedError

    configure_logging(settings)
    try:
        if args.is_async:
            return int(asyncio.run(args.handler(settings, args)))
        return int(args.handler(settings, args))
    except SeedError as exc:
        _say(f"timebank: seed error: {exc}")
        return 1
    except MigrationError as exc:
        _say(f"timebank: migration error: {exc}")
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        _say(f"timebank: database error: {type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
