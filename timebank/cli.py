"""The ``timebank`` command: serve, migrate, seed, openapi, and each domain's own commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg

from timebank import __version__
from timebank.db import MigrationError, connect, connect_failed, load_migrations, migration_status
from timebank.domains import domains
from timebank.embedded import EmbeddedDatabase, ServerSupervisor
from timebank.kit.cli import apply_migrations, database, say
from timebank.settings import PROJECT_ROOT, Settings, SettingsError, env_name, load_settings


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as dsn:
        if args.status:
            async with connect(dsn) as conn:
                rows = await migration_status(conn, load_migrations(settings.sql_dir))
            for row in rows:
                print(f"{row.label:>4}  {row.state:<8} {row.applied_at or '-':<32} {row.filename}")
            bad = [r for r in rows if r.state in ("edited", "missing")]
            return 1 if bad else 0
        await apply_migrations(settings, dsn)
    return 0


async def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from timebank.seeding import load_seed_file

    path = Path(settings.seeds_dir) / f"{args.name}.yaml"
    if not path.is_file():
        say(f"no seed file {path}")
        return 2
    async with database(settings) as dsn:
        await apply_migrations(settings, dsn)
        async with connect(dsn) as conn:
            await load_seed_file(conn, path, Path(settings.seeds_dir), progress=say)
    return 0


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> int:
    from timebank.app import create_app

    spec = openapi_document(create_app(settings))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(spec, encoding="utf-8")
    say(f"wrote {out}")
    return 0


def openapi_document(app: object) -> str:
    """The committed form of the OpenAPI document: sorted keys, two-space indent, UTF-8."""
    schema = app.openapi_schema.to_schema()  # type: ignore[attr-defined]
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    if (args.port or settings.port) == settings.metrics_port:
        say(f"timebank: configuration error: {env_name('metrics_port')}: must differ from the API's port")
        return 2

    async def prepare() -> None:
        await apply_migrations(settings, dsn)
        if args.demo:
            from timebank.seeding import load_seed_file

            async with connect(dsn) as conn:
                await load_seed_file(
                    conn, Path(settings.seeds_dir) / "demo.yaml", Path(settings.seeds_dir), progress=say
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
        # Workers inherit the DSN: the embedded server belongs to this (parent) process.
        os.environ["TIMEBANK_DATABASE_URL"] = dsn
        host = args.host or settings.host
        port = args.port or settings.port
        workers = args.workers or settings.workers
        say(f"timebank {__version__} on http://{host}:{port} ({workers} worker(s)); API under /api/v1")
        if settings.metrics_port:
            _serve_metrics(settings)
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
            say(f"database not reachable yet ({type(exc).__name__}); trying again in {delay:.1f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def _serve_metrics(settings: Settings) -> None:
    from timebank import metrics

    # Before any worker starts: workers inherit the directory and write their values there.
    metrics.prepare_multiprocess(Path(settings.data_dir) / "metrics")
    metrics.serve(settings.metrics_host, settings.metrics_port)
    say(f"metrics on http://{settings.metrics_host}:{settings.metrics_port}/metrics")


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

    mig = sub.add_parser("migrate", help="apply pending migrations, then changed repeatable files, from sql/")
    mig.add_argument("--status", action="store_true", help="list migrations and their state; change nothing")
    mig.set_defaults(handler=cmd_migrate, is_async=True)

    seed = sub.add_parser("seed", help="load a seed data set from seeds/ (idempotent)")
    seed.add_argument("name", choices=["demo"], help="which data set")
    seed.set_defaults(handler=cmd_seed, is_async=True)

    api = sub.add_parser("openapi", help="write the OpenAPI document")
    api.add_argument("--output", default=str(PROJECT_ROOT / "openapi" / "openapi.json"))
    api.set_defaults(handler=cmd_openapi, is_async=False)

    for domain in domains():
        if domain.commands is not None:
            domain.commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``timebank`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        say(f"timebank: configuration error: {exc}")
        return 2
    from timebank.observability import configure_logging
    from timebank.seeding import SeedError

    configure_logging(settings)
    try:
        if args.is_async:
            return int(asyncio.run(args.handler(settings, args)))
        return int(args.handler(settings, args))
    except SeedError as exc:
        say(f"timebank: seed error: {exc}")
        return 1
    except MigrationError as exc:
        say(f"timebank: migration error: {exc}")
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        say(f"timebank: database error: {type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
