"""The administrators' pages in a real browser: periodic jobs and running one now.

A requested run waits for a scheduler's sweep, so this module serves the demo with the scheduler
inside the API (``TIMEBANK_SCHEDULER_IN_API``) on a database of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import Console
from tests.console.test_browser import STAFF, VOLUNTEER, shoot, sign_in
from tests.served import serve_demo
from tests.support import ServerInfo

pytestmark = pytest.mark.browser

ADMIN = ("管理员", "13600000001", "tb-demo-admin")  # 钱主任


@pytest.fixture(scope="module")
def console(
    pg_server: ServerInfo, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    settings = {"TIMEBANK_SCHEDULER_IN_API": "true"}
    with serve_demo(pg_server, template_db, tmp_path_factory.mktemp("console-jobs"), settings) as base:
        yield Console(base_url=base, shots=tmp_path_factory.mktemp("console-screenshots"))


class TestJobs:
    def test_an_admin_runs_a_job_and_sees_its_result(self, page: Page, console: Console) -> None:
        sign_in(page, console, ADMIN)
        page.goto(f"{console.url}/#/admin/jobs")
        job = page.get_by_test_id("job").filter(has_text="rating.daily")
        expect(job).to_contain_text("星级评定（每日增量）")
        expect(job).to_contain_text("计划：每天 01:30")
        expect(job).to_contain_text(re.compile(r"下次 \d{4}-\d{2}-\d{2} 01:30"))  # Beijing time
        shoot(page, console, "admin-jobs")
        job.get_by_role("button", name="立即运行").click()
        expect(job.get_by_role("button", name="立即运行")).to_be_disabled()
        run = job.get_by_test_id("job-run")
        expect(run).to_have_attribute("data-status", "succeeded", timeout=60_000)
        expect(run).to_contain_text("成功")
        expect(run).to_contain_text("手动")
        expect(run.get_by_test_id("job-counts")).to_contain_text("区域 1")
        expect(job.get_by_role("button", name="立即运行")).to_be_enabled()
        shoot(page, console, "admin-job-ran")
        job.screenshot(path=console.shots / "admin-job-ran-row.png")


class TestWhoMayOpen:
    @pytest.mark.parametrize("who", [VOLUNTEER, STAFF], ids=["volunteer", "staff"])
    def test_only_administrators_open_the_jobs_page(
        self, page: Page, console: Console, who: tuple[str, str, str]
    ) -> None:
        sign_in(page, console, who)
        page.goto(f"{console.url}/#/admin/jobs")
        expect(page.get_by_role("heading", name="无权访问此页面")).to_be_visible()
        expect(page.get_by_role("link", name="定时任务")).to_have_count(0)
