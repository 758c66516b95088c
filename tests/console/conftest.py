"""The console's browser tests: the real service (``timebank serve --demo``) and Debian's Chromium.

One service per session and one browser for the browser tests; each test gets a fresh browser context (its own
sessionStorage) at phone size. Playwright drives ``/usr/bin/chromium`` (``apt-get install
chromium``, done by ``.ci/run``) and never downloads a browser of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.served import serve_demo
from tests.support import ServerInfo

CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}

# Assertions wait as long as actions do: on a loaded machine (2 cores, several sessions) a sign-in's
# password hash alone can take longer than Playwright's default 5 s.
expect.set_options(timeout=15_000)


@dataclass(frozen=True)
class Console:
    """The served console's address and where screenshots go."""

    base_url: str
    shots: Path

    @property
    def url(self) -> str:
        return f"{self.base_url}/console"


def served_console(
    pg_server: ServerInfo, template_db: str, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[Console]:
    """The demo served on a database of its own (``name`` names its data directory)."""
    with serve_demo(pg_server, template_db, tmp_path_factory.mktemp(name)) as base:
        yield Console(base_url=base, shots=tmp_path_factory.mktemp("console-screenshots"))


@pytest.fixture(scope="session")
def console(
    pg_server: ServerInfo, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    yield from served_console(pg_server, template_db, tmp_path_factory, "console-served")


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Browser]:
    # Module-scoped, and after the service: while Playwright's synchronous API runs, its event loop
    # counts as running in this thread, so no other fixture or test may call asyncio.run().
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium fonts-wqy-microhei (see .ci/run)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=PHONE, locale="zh-CN", timezone_id="Asia/Shanghai")
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
