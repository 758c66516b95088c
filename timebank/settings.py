"""Service settings: one Struct, read from ``TIMEBANK_*`` environment variables.

Every field maps to one variable (``TIMEBANK_`` + the field name in upper case). A bad value raises
:class:`SettingsError`, whose message names the variable; the CLI prints that one line and exits.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Package data (pyproject's package-data), so every install has it: see timebank/fonts/README.md.
DEFAULT_CERTIFICATE_FONT = Path(__file__).resolve().parent / "fonts" / "wqy-microhei-gbk.ttf"
# sfnt versions of fonts with TrueType (glyf) outlines; b"OTTO" (CFF outlines) reportlab cannot embed.
_TRUETYPE_MAGIC = (b"\x00\x01\x00\x00", b"true")
ENV_PREFIX = "TIMEBANK_"


def _default_data_dir() -> str:
    """A per-user data directory (XDG on Linux) so the embedded database survives restarts."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "timebank")


Argon2Profile = Literal["rfc9106_low_memory", "cheapest"]


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the environment variable."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Runtime configuration of the service.

    Attributes:
        database_url: PostgreSQL DSN; when empty the embedded server in ``data_dir`` is used.
        data_dir: Directory for the embedded database and generated key material.
        host: Address the HTTP server binds to.
        port: TCP port of the HTTP server.
        workers: Number of server worker processes.
        env: ``development`` (readable logs, dev conveniences) or ``production`` (JSON logs).
        log_level: Python logging level name.
        log_format: ``json`` or ``text``; empty means JSON in production and text in development.
        timezone: Default IANA time zone for dates shown to people and for calendar rules.
        jwt_issuer: ``iss`` claim of access tokens.
        jwt_audience: ``aud`` claim of access tokens.
        jwt_private_key_file: PEM file of the signing key; empty means a key generated in data_dir.
        access_token_ttl_s: Lifetime of access tokens in seconds.
        refresh_token_ttl_s: Lifetime of refresh tokens in seconds.
        pool_min_size: Minimum size of the asyncpg pool.
        pool_max_size: Maximum size of the asyncpg pool.
        pool_wait_s: How long a request waits for a pooled connection before it is answered 503
            (``busy``) instead of hanging on.
        db_connect_timeout_s: How long opening a database connection may take before the attempt
            counts as failed (the request gets a 503 ``database-unavailable``).
        db_supervise_s: How often the embedded server's postmaster is checked (and restarted when it
            died); only with the embedded server.
        sql_dir: Directory of forward-only migrations, with the repeatable files in functions/.
        seeds_dir: Directory of seed data.
        pii_key_file: JSON key file for personal data (AES-256-GCM keys by id, the current id, the
            blind-index HMAC key); empty means a file generated once in data_dir/keys.
        sms_sender: ``console`` (development: codes go to the log of the ``timebank.sms`` logger)
            or ``module:factory`` of a real provider's sender.
        otp_ttl_s: Lifetime of a one-time SMS code in seconds.
        login_lock_after: Failed password logins in a row before an account key is locked.
        login_lock_s: How long such a lock lasts.
        wechat_appid: WeChat mini-program AppID; empty disables WeChat login.
        wechat_secret_file: File holding the mini-program AppSecret.
        wechat_api_base: Base URL of the WeChat API (code2session).
        argon2_profile: argon2id cost: ``rfc9106_low_memory`` (64 MiB, 3 passes) or
            ``cheapest`` (for test suites only; refused in production).
        certificate_font_file: TrueType-outline font (.ttf) embedded in certificate PDFs; the default
            is the bundled GBK subset of WenQuanYi Micro Hei. Characters it lacks print as their
            code point (``[U+4DAE]``).
        metrics_port: TCP port of the Prometheus ``/metrics`` listener ``timebank serve`` starts;
            0 (the default) starts none. Never the API's port: metrics are not public.
        metrics_host: Address the metrics listener binds to.
        scheduler_in_api: Also run the periodic-task scheduler inside every ``timebank serve``
            worker (small deployments); by default only ``timebank worker`` runs it. Either way
            each scheduled run happens once (the ``job_runs`` claim in PostgreSQL).
        notify_sender: Where notifications go: ``console`` (the ``timebank.notify`` log),
            ``webhook`` (POST to ``notify_webhook_url``), ``wechat`` (subscribe messages) or
            ``module:factory`` of another sender.
        notify_webhook_url: The webhook sender's URL.
        database_replica_urls: Comma-separated DSNs of streaming replicas of the database; read-only
            routes read from one of them (read-your-writes kept, see :mod:`timebank.replicas`).
            Empty (the default): every request uses the primary.
        replica_max_lag_s: A replica further behind the primary than this is skipped (reads go to
            another replica or the primary).
        replica_check_s: How often each process measures its replicas' state and lag.
    """

    database_url: str = ""
    data_dir: str = msgspec.field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    env: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["", "json", "text"] = ""
    timezone: str = "Asia/Shanghai"
    jwt_issuer: str = "timebank"
    jwt_audience: str = "timebank-api"
    jwt_private_key_file: str = ""
    access_token_ttl_s: Annotated[int, msgspec.Meta(ge=30, le=86400)] = 900
    refresh_token_ttl_s: Annotated[int, msgspec.Meta(ge=300, le=90 * 86400)] = 30 * 86400
    pool_min_size: Annotated[int, msgspec.Meta(ge=0, le=200)] = 2
    pool_max_size: Annotated[int, msgspec.Meta(ge=1, le=500)] = 20
    pool_wait_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0
    db_connect_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 5.0
    db_supervise_s: Annotated[float, msgspec.Meta(ge=0.1, le=3600)] = 1.0
    sql_dir: str = str(PROJECT_ROOT / "sql")
    seeds_dir: str = str(PROJECT_ROOT / "seeds")
    pii_key_file: str = ""
    sms_sender: str = "console"
    otp_ttl_s: Annotated[int, msgspec.Meta(ge=60, le=1800)] = 300
    login_lock_after: Annotated[int, msgspec.Meta(ge=3, le=100)] = 5
    login_lock_s: Annotated[int, msgspec.Meta(ge=60, le=86400)] = 900
    wechat_appid: str = ""
    wechat_secret_file: str = ""
    wechat_api_base: str = "https://api.weixin.qq.com"
    argon2_profile: Argon2Profile = "rfc9106_low_memory"
    certificate_font_file: str = str(DEFAULT_CERTIFICATE_FONT)
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    metrics_host: str = "127.0.0.1"
    scheduler_in_api: bool = False
    notify_sender: str = "console"
    notify_webhook_url: str = ""
    database_replica_urls: str = ""
    replica_max_lag_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    replica_check_s: Annotated[float, msgspec.Meta(ge=0.05, le=60)] = 1.0

    @property
    def embedded(self) -> bool:
        """True when the service starts its own PostgreSQL in ``data_dir``."""
        return not self.database_url

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """The replicas' DSNs (none when ``database_replica_urls`` is empty)."""
        return tuple(url.strip() for url in self.database_replica_urls.split(",") if url.strip())

    @property
    def json_logs(self) -> bool:
        """Whether log lines are JSON objects."""
        if self.log_format:
            return self.log_format == "json"
        return self.env == "production"


_FIELDS = Settings.__struct_fields__


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build :class:`Settings` from the environment, then apply keyword overrides.

    Raises:
        SettingsError: naming the variable and what is wrong with it.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for name in _FIELDS:
        value = environ.get(env_name(name))
        if value is not None:
            raw[name] = value.strip()
    known = {env_name(n) for n in _FIELDS}
    for key in environ:
        if key.startswith(ENV_PREFIX) and key not in known and not key.startswith(ENV_PREFIX + "TEST_"):
            raise SettingsError(f"{key}: unknown setting (known: {', '.join(sorted(known))})")
    raw.update(overrides)
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc)) from None
    _check(settings)
    return settings


def _explain(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `int` >= 1 - at `$.port`"; name the variable instead of the path.
    message = str(exc)
    if " - at `$." in message:
        text, _, path = message.rpartition(" - at `$.")
        field = path.rstrip("`").split(".")[0].split("[")[0]
        return f"{env_name(field)}: {text}"
    return message


def _check(settings: Settings) -> None:
    try:
        zoneinfo.ZoneInfo(settings.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{env_name('timezone')}: unknown time zone {settings.timezone!r}") from None
    if settings.database_url and not settings.database_url.startswith(("postgresql://", "postgres://")):
        raise SettingsError(f"{env_name('database_url')}: must start with postgresql:// or postgres://")
    for url in settings.replica_urls:
        if not url.startswith(("postgresql://", "postgres://")):
            raise SettingsError(f"{env_name('database_replica_urls')}: each must start with postgresql://")
    if settings.replica_urls and settings.embedded:
        raise SettingsError(f"{env_name('database_replica_urls')}: needs {env_name('database_url')}")
    if settings.pool_min_size > settings.pool_max_size:
        raise SettingsError(f"{env_name('pool_min_size')}: larger than {env_name('pool_max_size')}")
    if settings.jwt_private_key_file and not Path(settings.jwt_private_key_file).is_file():
        raise SettingsError(f"{env_name('jwt_private_key_file')}: no such file")
    for name in ("pii_key_file", "wechat_secret_file"):
        value = getattr(settings, name)
        if value and not Path(value).is_file():
            raise SettingsError(f"{env_name(name)}: no such file")
    if settings.sms_sender != "console" and ":" not in settings.sms_sender:
        raise SettingsError(f"{env_name('sms_sender')}: use console or module:factory")
    if settings.wechat_appid and not settings.wechat_secret_file:
        raise SettingsError(f"{env_name('wechat_secret_file')}: required when TIMEBANK_WECHAT_APPID is set")
    if not settings.wechat_api_base.startswith(("https://", "http://")):
        raise SettingsError(f"{env_name('wechat_api_base')}: must be an http(s) URL")
    if settings.argon2_profile == "cheapest" and settings.env == "production":
        raise SettingsError(f"{env_name('argon2_profile')}: cheapest is for test suites only")
    _check_font(settings.certificate_font_file)
    if settings.metrics_port and settings.metrics_port == settings.port:
        raise SettingsError(f"{env_name('metrics_port')}: must differ from {env_name('port')}")
    if settings.notify_sender not in ("console", "webhook", "wechat") and ":" not in settings.notify_sender:
        raise SettingsError(f"{env_name('notify_sender')}: use console, webhook, wechat or module:factory")
    webhook = settings.notify_webhook_url
    if settings.notify_sender == "webhook" and not webhook.startswith(("https://", "http://")):
        raise SettingsError(f"{env_name('notify_webhook_url')}: the webhook sender needs an http(s) URL")
    if not Path(settings.sql_dir).is_dir():
        raise SettingsError(f"{env_name('sql_dir')}: no such directory {settings.sql_dir}")


def _check_font(path: str) -> None:
    name = env_name("certificate_font_file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError:
        raise SettingsError(f"{name}: no such file {path}") from None
    if magic == b"OTTO":
        raise SettingsError(f"{name}: CFF (OpenType/PostScript) outlines cannot be embedded; use a .ttf")
    if magic not in _TRUETYPE_MAGIC:
        raise SettingsError(f"{name}: not a TrueType font (.ttf)")
