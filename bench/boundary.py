"""Per-request cost of the request boundary and the metrics calls (a micro-benchmark, not a test).

    .venv/bin/python bench/boundary.py

Prints microseconds per call, and each against a baseline measured in the same run: decoding the
same body with msgspec (what every write request pays anyway). The hot read path
(``GET /api/v1/me/balances``: no query, no body) pays ``check_head`` and ``observe_request``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timebank import metrics  # noqa: E402
from timebank.boundary import check_body, check_head  # noqa: E402

HEADERS = [
    (b"host", b"timebank.example.org"),
    (b"user-agent", b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0"),
    (b"accept", b"application/json"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"authorization", b"Bearer " + b"x" * 420),
    (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
    (b"connection", b"keep-alive"),
]
BALANCES: dict[str, Any] = {
    "type": "http", "method": "GET", "path": "/api/v1/me/balances", "query_string": b"",
    "headers": HEADERS, "path_params": {}, "path_template": "/api/v1/me/balances",
}  # fmt: skip
LIST = {
    **BALANCES,
    "path": "/api/v1/volunteers",
    "path_template": "/api/v1/volunteers",
    "query_string": b"q=%E5%BC%A0&limit=50&cursor=eyJhIjoiMDE5MmYwIn0",
}
HONOUR = msgspec.json.encode(
    {
        "volunteer_id": "0192f0b4-7d0c-7a4e-9b7e-3c1f2a4b5c6d",
        "organisation_id": "0192f0b4-7d0c-7a4e-9b7e-3c1f2a4b5c6e",
        "minutes": 300,
        "reason": "防汛抢险，连续三天值守堤坝",
    }
)
BULK = msgspec.json.encode(
    {"lines": [{"volunteer_id": str(i), "minutes": 60, "note": "签到"} for i in range(200)]}
)


def per_call_us(statement: Any, number: int = 20000) -> float:
    return min(timeit.repeat(statement, number=number, repeat=5)) / number * 1e6


def row(name: str, us: float, baseline: float | None = None) -> None:
    ratio = f"{us / baseline:6.2f} × decode" if baseline else ""
    print(f"{name:<48} {us:8.2f} µs  {ratio}")


def main() -> None:
    print(f"load: {os.getloadavg()[0]:.2f} (1 min average), cpus: {os.cpu_count()}")
    decode_honour = per_call_us(lambda: msgspec.json.decode(HONOUR))
    decode_bulk = per_call_us(lambda: msgspec.json.decode(BULK), 2000)
    row("baseline: msgspec decode honour-hours body", decode_honour)
    row("check_head GET /me/balances", per_call_us(lambda: check_head(BALANCES)))  # type: ignore[arg-type]
    row("check_head GET /volunteers?q=%E5%BC%A0…", per_call_us(lambda: check_head(LIST)))  # type: ignore[arg-type]
    row("check_body honour-hours (116 B)", per_call_us(lambda: check_body(HONOUR)), decode_honour)
    row(
        f"check_body 200 lines ({len(BULK)} B, depth scan)",
        per_call_us(lambda: check_body(BULK), 2000),
        decode_bulk,
    )
    row(
        "observe_request (in-memory values)",
        per_call_us(lambda: metrics.observe_request(BALANCES, 200, 0.002)),
    )
    # Metrics are built once per process: the file-backed variant (a served worker) runs in a child.
    subprocess.run([sys.executable, __file__, "--files"], check=True)


def files() -> None:
    with tempfile.TemporaryDirectory(prefix="tb-bench-metrics-") as directory:
        metrics.prepare_multiprocess(Path(directory) / "m")
        row(
            "observe_request (multiprocess files)",
            per_call_us(lambda: metrics.observe_request(BALANCES, 200, 0.002)),
        )


if __name__ == "__main__":
    files() if sys.argv[1:] == ["--files"] else main()
