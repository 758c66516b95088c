"""Prometheus metrics: what an operator watches to see trouble before users do.

Served on a port of its own (``TIMEBANK_METRICS_PORT``, off by default; bound to
``TIMEBANK_METRICS_HOST``, 127.0.0.1 by default), never on the API's port. ``timebank serve``
starts that listener in its parent process and points every worker at one per-run directory
(``PROMETHEUS_MULTIPROC_DIR`` = ``DATA_DIR/metrics``, emptied at start), so a scrape sums all
workers.

The metrics are built on first use, not at import: prometheus-client chooses between in-memory and
file-backed values when a metric is created, from the environment at that moment.

Labels are bounded sets: route templates (``/api/v1/service-records/{record_id}``, never a raw
path with ids), methods, statuses, transfer codes and problem slugs.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import REGISTRY

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
_CONVERTER = re.compile(r"\{([^}:]+):[^}]+\}")
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Coded(Protocol):
    @property
    def code(self) -> str: ...


T = TypeVar("T", bound=Sequence[_Coded])


@dataclass(frozen=True)
class _Metrics:
    requests: Counter
    latency: Histogram
    pool_wait: Histogram
    pool_in_use: Gauge
    pool_size: Gauge
    db_unavailable: Counter
    postings: Counter
    refusals: Counter
    replays: Counter
    reads: Counter


def _build() -> _Metrics:
    return _Metrics(
        requests=Counter("timebank_http_requests", "HTTP requests answered", ["method", "route", "status"]),
        latency=Histogram(
            "timebank_http_request_duration_seconds",
            "Time from request to the end of the response",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
        ),
        pool_wait=Histogram(
            "timebank_db_pool_wait_seconds",
            "Time a request waited for a pooled database connection",
            buckets=_LATENCY_BUCKETS,
        ),
        pool_in_use=Gauge(
            "timebank_db_pool_in_use", "Pooled connections handed out now", multiprocess_mode="livesum"
        ),
        pool_size=Gauge(
            "timebank_db_pool_size", "Largest number of pooled connections", multiprocess_mode="livesum"
        ),
        db_unavailable=Counter(
            "timebank_db_unavailable",
            "Requests answered 503 because the database was unreachable or every connection busy",
            ["problem"],
        ),
        postings=Counter("timebank_ledger_postings", "Ledger transfers posted", ["code"]),
        refusals=Counter("timebank_ledger_refusals", "Ledger operations refused", ["problem"]),
        replays=Counter("timebank_idempotency_replays", "Responses replayed for a repeated Idempotency-Key"),
        reads=Counter(
            "timebank_db_reads",
            "Read-only requests by where they read (with replicas configured) and why",
            ["target", "reason"],
        ),
    )


_metrics: _Metrics | None = None
_routes: dict[str, str] = {}
# Labelled children by (method, template, status): labels() takes a lock and builds tuples per call.
_children: dict[tuple[str, str | None, int], tuple[Counter, Histogram]] = {}


def _m() -> _Metrics:
    global _metrics
    if _metrics is None:
        _metrics = _build()
    return _metrics


def route_label(scope: Any) -> str:
    """The route template of a routed request (converters dropped), or ``unmatched``."""
    template = scope.get("path_template")
    if not template:
        return UNMATCHED
    label = _routes.get(template)
    if label is None:
        label = _routes[template] = _CONVERTER.sub(r"{\1}", template)
    return label


def observe_request(scope: Any, status: int, seconds: float) -> None:
    """Count one answered request and its latency by route template."""
    labels = (scope.get("method", ""), scope.get("path_template"), status)
    children = _children.get(labels)
    if children is None:
        m = _m()
        method, route = labels[0], route_label(scope)
        children = _children[labels] = (
            m.requests.labels(method, route, str(status)),
            m.latency.labels(method, route),
        )
    children[0].inc()
    children[1].observe(seconds)


def pool_waited(seconds: float) -> None:
    """A request got (or gave up waiting for) a connection after ``seconds``."""
    _m().pool_wait.observe(seconds)


def pool_in_use(delta: int) -> None:
    """A connection was handed out (+1) or returned (-1)."""
    _m().pool_in_use.inc(delta)


def pool_size(size: int) -> None:
    """The pool of this process may hold ``size`` connections (0 when it closes)."""
    _m().pool_size.set(size)


def db_unavailable(problem: str) -> None:
    """A request was answered 503 ``problem`` (``unavailable``, ``busy``)."""
    _m().db_unavailable.labels(problem).inc()


def ledger_posted(transfers: T) -> T:
    """Count posted transfers by code; returns them, so a ``return`` can wrap the call."""
    postings = _m().postings
    for transfer in transfers:
        postings.labels(transfer.code).inc()
    return transfers


def ledger_refused(problem: str) -> None:
    """The ledger refused an operation with problem slug ``problem``."""
    _m().refusals.labels(problem).inc()


def idempotency_replayed() -> None:
    """A stored response was replayed for a repeated Idempotency-Key."""
    _m().replays.inc()


def read_routed(target: str, reason: str) -> None:
    """A read-only request read from ``target`` (``replica`` or ``primary``) for ``reason``."""
    _m().reads.labels(target, reason).inc()


def reads_routed(target: str, reason: str) -> float:
    """How many reads :func:`read_routed` counted so far in this process."""
    return float(_m().reads.labels(target, reason)._value.get())


def registry() -> CollectorRegistry:
    """What a scrape reads: every worker's files in multiprocess mode, else this process."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    collected = CollectorRegistry()
    MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
    return collected


def exposition() -> bytes:
    """The text a scrape returns now."""
    return generate_latest(registry())


def prepare_multiprocess(directory: Path) -> None:
    """Empty ``directory`` and make it where this process and its workers keep metric values.

    Called by ``timebank serve`` before any worker starts; values of an earlier run are dropped.
    """
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus-client read the environment when it was imported; read it again.
    prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]


def serve(host: str, port: int) -> None:
    """Start the metrics listener (a daemon thread) on ``host:port``."""
    start_http_server(port, addr=host, registry=registry())


def process_exited() -> None:
    """Drop this process's live gauges from the shared directory (worker shutdown)."""
    if directory := os.environ.get(MULTIPROC_ENV):
        mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]
