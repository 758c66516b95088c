"""The console's care-bank and rating pages in a real browser, against the real service.

Staff 赵磊 (张园社区) may act for 陈桂兰, the demo's offline resident (her grant lists
``request_care``); the requests a test works on are its own, with a place nobody else uses.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import Console
from tests.console.test_browser import CJK, OTHER_VOLUNTEER, VOLUNTEER, shoot, sign_in

pytestmark = pytest.mark.browser

CARE_STAFF = ("社区工作人员", "13900000012", "tb-demo-staff")  # 赵磊, 张园社区, acts for 陈桂兰
RESIDENT = "陈桂兰"
PROVIDER = "张秀英"  # OTHER_VOLUNTEER
SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE_SMALL = {"width": 375, "height": 812}


def place() -> str:
    """A place no other test's request has, to find this test's request among the rest."""
    return f"张园 12 号 301（{secrets.token_hex(3)}）"


class CareApi:
    """Care requests set up through the API, as the people who would do each step."""

    def __init__(self, console: Console) -> None:
        self.base = f"{console.base_url}/api/v1"
        self.staff = {"authorization": f"Bearer {self.token(CARE_STAFF, 'staff')}"}

    def token(self, who: tuple[str, str, str], kind: str) -> str:
        resp = httpx.post(f"{self.base}/auth/login", json={"phone": who[1], "password": who[2], "kind": kind})
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def volunteer(self, name: str) -> str:
        found = httpx.get(f"{self.base}/volunteers", params={"q": name}, headers=self.staff)
        return str(found.json()["items"][0]["id"])

    def post(self, path: str, headers: dict[str, str], body: object = None) -> dict[str, str]:
        resp = httpx.post(
            f"{self.base}{path}", headers={**headers, "idempotency-key": secrets.token_hex(8)}, json=body
        )
        assert resp.status_code in (200, 201), resp.text
        return dict(resp.json())

    def new_request(self, where: str) -> str:
        """A pending care request for 陈桂兰, filed by staff; its id."""
        day = (datetime.now(SHANGHAI) + timedelta(days=3)).date().isoformat()
        body = {
            "recipient_id": self.volunteer(RESIDENT),
            "category_code": "daily-care",
            "window_start": f"{day}T09:00:00+08:00",
            "window_end": f"{day}T10:00:00+08:00",
            "place": where,
            "estimated_minutes": 30,
        }
        return self.post("/care-requests", self.staff, body)["id"]

    def approve(self, request_id: str) -> None:
        self.post(f"/care-requests/{request_id}/approve", self.staff)

    def disputed(self, where: str) -> str:
        """A request 张秀英 served and reported 40 minutes of, disputed for 陈桂兰 by staff (代办)."""
        request_id = self.new_request(where)
        self.approve(request_id)
        self.post(
            f"/care-requests/{request_id}/assign", self.staff, {"provider_id": self.volunteer(PROVIDER)}
        )
        provider = {"authorization": f"Bearer {self.token(OTHER_VOLUNTEER, 'volunteer')}"}
        self.post(f"/care-requests/{request_id}/report", provider, {"minutes": 40})
        proxy = {**self.staff, "x-act-for": self.volunteer(RESIDENT)}
        self.post(f"/care-requests/{request_id}/dispute", proxy, {"reason": "实际只服务了半小时"})
        return request_id


def open_request(page: Page, console: Console, where: str, state: str = "待审核") -> None:
    """Opens this test's request from the list filtered by its state (the filter is named so)."""
    page.goto(f"{console.url}/#/care")
    page.get_by_role("button", name=state).click()
    page.get_by_test_id("care-request").filter(has_text=where).get_by_role("link").click()
    expect(page.get_by_test_id("care-state")).to_have_text(state)


class TestStaffActForAResident:
    def test_staff_file_a_request_for_a_resident_then_approve_and_assign_it(
        self, page: Page, console: Console
    ) -> None:
        where = place()
        sign_in(page, console, CARE_STAFF)
        page.goto(f"{console.url}/#/residents")
        page.get_by_test_id("grant").filter(has_text=RESIDENT).get_by_role("button", name="为其代办").click()
        expect(page.get_by_role("note")).to_contain_text(f"代办: 为 {RESIDENT} 操作")
        page.goto(f"{console.url}/#/care")
        expect(page.get_by_role("heading", name=f"{RESIDENT} 的照护需求")).to_be_visible()
        form = page.locator("form", has_text=f"为 {RESIDENT} 申请照护")
        form.get_by_label("服务类别").select_option(label="生活照料")
        form.get_by_label("服务地点").fill(where)
        form.get_by_label("预计时长（小时）").fill("0.5")
        shoot(page, console, "care-acting-new")
        form.get_by_role("button", name="提交需求").click()
        expect(page.get_by_test_id("care-state")).to_have_text("待审核")
        expect(page.get_by_role("note")).to_contain_text(f"代办: 为 {RESIDENT} 操作")
        expect(page.get_by_role("button", name="取消需求")).to_be_visible()  # the resident may cancel
        expect(page.get_by_role("button", name="审核通过")).to_have_count(0)  # but not approve
        shoot(page, console, "care-acting-created")
        page.get_by_role("note").get_by_role("button", name="结束代办").click()
        expect(page.get_by_role("note")).to_have_count(0)

        open_request(page, console, where)
        expect(page.get_by_role("heading", name=f"生活照料 · {RESIDENT}")).to_be_visible()
        page.get_by_role("button", name="审核通过").click()
        expect(page.get_by_test_id("care-outcome")).to_have_text("已审核通过，当前状态：待接单")
        expect(page.get_by_test_id("care-state")).to_have_text("待接单")
        page.get_by_label(re.compile("查找志愿者")).fill("张秀英")
        page.get_by_role("button", name="查找").click()
        page.get_by_role("button", name="选择").first.click()
        page.get_by_role("button", name="指派给 张秀英").click()
        expect(page.get_by_test_id("care-state")).to_have_text("已指派")
        expect(page.get_by_text("服务者：张秀英")).to_be_visible()
        events = page.get_by_test_id("care-event")
        expect(events).to_have_count(3)
        expect(events.nth(1)).to_contain_text("审核通过")
        expect(events.nth(2)).to_contain_text("指派服务者")
        shoot(page, console, "care-assigned")
        page.locator("ol.history").screenshot(path=console.shots / "care-assigned-history.png")

        page.get_by_role("link", name="← 照护需求").click()
        page.get_by_role("button", name="已指派").click()
        row = page.get_by_test_id("care-request").filter(has_text=where)
        expect(row).to_have_attribute("data-status", "assigned")


class TestReview:
    def test_staff_reject_a_request_with_a_reason(self, page: Page, console: Console) -> None:
        where = place()
        CareApi(console).new_request(where)
        sign_in(page, console, CARE_STAFF)
        open_request(page, console, where)
        page.get_by_role("button", name="驳回", exact=True).click()
        page.get_by_label("驳回原因").fill("该时段无可用服务者")
        page.get_by_role("button", name="确认驳回").click()
        expect(page.get_by_test_id("care-state")).to_have_text("已驳回")
        expect(page.get_by_test_id("care-event").last).to_contain_text("原因：该时段无可用服务者")
        expect(page.get_by_role("button", name="审核通过")).to_have_count(0)

    def test_staff_settle_a_disputed_request_for_fewer_minutes(self, page: Page, console: Console) -> None:
        where = place()
        CareApi(console).disputed(where)
        sign_in(page, console, CARE_STAFF)
        open_request(page, console, where, state="有异议")
        expect(page.get_by_text("上报 0.7 小时，预留 0.5 小时")).to_be_visible()
        settle = page.locator("form", has_text="处理异议并结算")
        settle.get_by_label(re.compile("结算时长")).fill("0.5")
        settle.get_by_label(re.compile("说明")).fill("按双方确认的半小时结算")
        settle.get_by_role("button", name="确认并结算").click()
        expect(page.get_by_test_id("care-state")).to_have_text("已完成")
        expect(page.get_by_text("已结算 0.5 小时")).to_be_visible()
        expect(page.get_by_test_id("care-event").last).to_contain_text("确认并结算")

    def test_a_stale_page_shows_the_conflict_in_chinese(self, page: Page, console: Console) -> None:
        where = place()
        care = CareApi(console)
        request_id = care.new_request(where)
        sign_in(page, console, CARE_STAFF)
        open_request(page, console, where)
        care.approve(request_id)  # someone else was quicker
        page.get_by_role("button", name="审核通过").click()
        problem = page.get_by_role("alert")
        expect(problem.locator(".problem-title")).to_have_text("当前状态不允许此操作")
        expect(problem.locator(".problem-detail")).to_contain_text("状态已经变化，不能审核通过")
        expect(page.get_by_test_id("care-state")).to_have_text("待接单")  # reloaded: what refused it
        assert len(CJK.findall(problem.locator(".problem-detail").inner_text())) >= 10
        shoot(page, console, "care-conflict")


class TestPhone:
    def test_the_care_list_fits_a_small_phone(self, browser: Browser, console: Console) -> None:
        CareApi(console).new_request(place())
        ctx = browser.new_context(viewport=PHONE_SMALL, locale="zh-CN", timezone_id="Asia/Shanghai")
        try:
            page = ctx.new_page()
            sign_in(page, console, CARE_STAFF)
            page.goto(f"{console.url}/#/care")
            page.get_by_role("button", name="全部").click()
            expect(page.get_by_test_id("care-request").first).to_be_visible()
            assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
            shoot(page, console, "care-list-375")
        finally:
            ctx.close()


class TestCareReports:
    def test_staff_download_the_liability_and_clearing_reports(self, page: Page, console: Console) -> None:
        sign_in(page, console, CARE_STAFF)
        page.goto(f"{console.url}/#/care-reports")
        liability = page.get_by_test_id("care-report").filter(has_text="照护时长负债")
        with page.expect_download() as csv:
            liability.get_by_role("button", name="下载 CSV").click()
        body = Path(csv.value.path()).read_bytes()
        assert body.startswith(b"\xef\xbb\xbf") and CJK.search(body.decode("utf-8-sig"))
        clearing = page.get_by_test_id("care-report").filter(has_text="跨社区清算")
        with page.expect_download() as xlsx:
            clearing.get_by_role("button", name="下载 Excel").click()
        assert Path(xlsx.value.path()).read_bytes().startswith(b"PK")  # an Office Open XML zip
        assert xlsx.value.suggested_filename.endswith(".xlsx")
        expect(clearing.get_by_role("status")).to_contain_text("已下载")
        shoot(page, console, "care-reports")


class TestRating:
    def test_staff_see_the_month_leaderboard_and_public_listing(self, page: Page, console: Console) -> None:
        sign_in(page, console, CARE_STAFF)
        page.goto(f"{console.url}/#/rating")
        page.get_by_label(re.compile("^社区")).select_option(label="张园社区")
        # The demo's confirmed records were posted when it was loaded: this month (other tests on
        # the same demo server may add hours, so the figure is not fixed).
        leader = page.get_by_test_id("leader").filter(has_text="张秀英")
        expect(leader).to_contain_text(re.compile(r"\d+\.\d 小时"))
        expect(page.get_by_text("目前没有公示中的星级")).to_be_visible()
        page.get_by_label("月份").fill("2020-01")
        expect(page.get_by_text("这个月还没有服务记录")).to_be_visible()
        shoot(page, console, "rating")


class TestVolunteer:
    def test_a_volunteer_cannot_open_the_care_and_rating_pages(self, page: Page, console: Console) -> None:
        sign_in(page, console, VOLUNTEER)
        for path in ("/care", "/care-reports", "/rating"):
            page.goto(f"{console.url}/#{path}")
            expect(page.get_by_role("heading", name="无权访问此页面")).to_be_visible()
        expect(page.get_by_role("link", name="照护需求")).to_have_count(0)
        expect(page.get_by_role("link", name="星级评定")).to_have_count(0)
