"""The console in a real browser (Debian's Chromium, phone-sized), against the real service.

Each key page is saved as a screenshot in the session's temporary directory
(``--basetemp``/``console-screenshots*``) and checked: not blank, no horizontal scrolling, and its
heading's Chinese characters rendered as distinct glyphs (without a CJK font every character is
the same empty box).
"""

from __future__ import annotations

import itertools
import re
import secrets
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import Console

pytestmark = pytest.mark.browser

STAFF = ("社区工作人员", "13900000011", "tb-demo-staff")  # 王晓红, 南京西路街道
VOLUNTEER = ("志愿者", "13800000002", "tb-demo-volunteer")  # 陈建国, 武定坊社区
OTHER_VOLUNTEER = ("志愿者", "13800000001", "tb-demo-volunteer")  # 张秀英
CJK = re.compile(r"[\u4e00-\u9fff]")

# The run of Chinese characters at the start of a text node of the page's heading, and its box.
_HEADING_CJK = """() => {
  const heading = document.querySelector("h1");
  const walker = document.createTreeWalker(heading, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const match = /[\\u4e00-\\u9fff]{2,}/.exec(node.data);
    if (!match) continue;
    const range = document.createRange();
    range.setStart(node, match.index);
    range.setEnd(node, match.index + match[0].length);
    const box = range.getBoundingClientRect();
    return { text: match[0], x: box.x, y: box.y, width: box.width, height: box.height };
  }
  return null;
}"""


def sign_in(page: Page, console: Console, who: tuple[str, str, str]) -> None:
    kind, phone, password = who
    page.goto(f"{console.url}/#/signin")
    page.get_by_text(kind, exact=True).click()
    page.get_by_label("手机号").fill(phone)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("header.top")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="菜单").click()
    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_role("heading", name="时间银行 · 登录")).to_be_visible()


def shoot(page: Page, console: Console, name: str) -> Path:
    """Screenshot of the viewport, checked: no sideways scrolling, ink, and real Chinese glyphs."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
        f"{name}: the page scrolls sideways at phone width"
    )
    page.evaluate("window.scrollTo(0, 0)")
    box = page.evaluate(_HEADING_CJK)
    assert box is not None, f"{name}: the heading has no Chinese text"
    path = console.shots / f"{name}.png"
    page.screenshot(path=str(path))
    image = Image.open(path).convert("L")
    assert max(ImageStat.Stat(image).stddev) > 10, f"{name}: the screenshot is blank"
    count = len(box["text"])
    cell = int(box["width"] / count)
    top, bottom = round(box["y"]), round(box["y"] + box["height"])
    lefts = [round(box["x"] + i * box["width"] / count) for i in range(count)]
    cells = [image.crop((left, top, left + cell, bottom)) for left in lefts]
    for index, glyph in enumerate(cells):
        assert ImageStat.Stat(glyph).stddev[0] > 20, f"{name}: {box['text'][index]} left no ink"
    # Without a CJK font every character is the same empty box: neighbouring cells of different
    # characters must differ (two distinct glyphs differ by ~70 grey levels on average here).
    text = box["text"]
    pairs = [(a, b) for i, (a, b) in enumerate(itertools.pairwise(cells)) if text[i] != text[i + 1]]
    if pairs:
        differences = [ImageStat.Stat(ImageChops.difference(a, b)).mean[0] for a, b in pairs]
        assert max(differences) > 20, f"{name}: {box['text']} rendered as identical boxes (no CJK font?)"
    return path


def time_balance(page: Page) -> float:
    tile = page.get_by_test_id("time-balance")
    expect(tile).to_be_visible()
    return float(re.search(r"([\d.]+)\s*小时", tile.inner_text()).group(1))  # type: ignore[union-attr]


def id_number(birth: str = "19400101") -> str:
    """A made-up 身份证号 with a valid GB 11643 check character."""
    body = f"310106{birth}{secrets.randbelow(1000):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


class TestSignIn:
    def test_a_wrong_password_shows_the_problem_in_chinese(self, page: Page, console: Console) -> None:
        page.goto(console.url)
        shoot(page, console, "signin")
        page.get_by_text("社区工作人员", exact=True).click()
        page.get_by_label("手机号").fill("13900000013")
        page.get_by_label("密码").fill("not-the-password")
        page.get_by_role("button", name="登录").click()
        problem = page.get_by_role("alert")
        expect(problem.locator(".problem-title")).to_have_text("手机号、密码或验证码错误")
        detail = problem.locator(".problem-detail").inner_text()
        assert len(CJK.findall(detail)) >= 10, detail
        shoot(page, console, "signin-problem")


class TestStaffConfirms:
    def test_staff_confirm_an_activity_and_the_volunteer_balance_grows(
        self, page: Page, console: Console
    ) -> None:
        sign_in(page, console, VOLUNTEER)
        before = time_balance(page)
        shoot(page, console, "volunteer-balances")
        page.get_by_role("link", name="查看明细").click()
        expect(page.locator(".statement-line").first).to_contain_text("志愿服务时长确认")
        shoot(page, console, "volunteer-statement")
        sign_out(page)

        sign_in(page, console, STAFF)
        expect(page.get_by_role("heading", name="活动与考勤")).to_be_visible()
        page.get_by_role("button", name="近 7 天").click()
        page.get_by_role("link", name=re.compile("文明劝导")).click()
        record = page.get_by_test_id("record").filter(has_text="陈建国")
        expect(record).to_have_attribute("data-status", "attended")
        expect(record.get_by_test_id("counted-hours")).to_have_text("1.0")
        expect(page.get_by_test_id("pending-hours")).to_have_text("1.0")
        shoot(page, console, "staff-activity")
        page.get_by_role("button", name="全部确认").click()
        expect(page.get_by_test_id("outcome")).to_contain_text("已确认 1 条，共 1.0 小时")
        expect(record).to_have_attribute("data-status", "confirmed")
        shoot(page, console, "staff-activity-confirmed")
        page.get_by_role("link", name="← 活动列表").click()
        shoot(page, console, "staff-activities")
        sign_out(page)

        sign_in(page, console, VOLUNTEER)
        assert time_balance(page) == pytest.approx(before + 1.0)

    def test_staff_reverse_a_confirmed_record_with_a_reason(self, page: Page, console: Console) -> None:
        sign_in(page, console, STAFF)
        page.get_by_role("button", name="近 7 天").click()
        page.get_by_role("link", name=re.compile("文明劝导")).click()
        record = page.get_by_test_id("record").filter(has_text="陈建国")
        if record.get_attribute("data-status") == "attended":  # run alone: confirm it first
            record.get_by_role("button", name="确认").click()
        expect(record).to_have_attribute("data-status", "confirmed")
        record.get_by_role("button", name="冲正").click()
        record.get_by_label("冲正原因").fill("签到时间登记错误")
        record.get_by_role("button", name="确认冲正").click()
        expect(page.get_by_test_id("outcome")).to_contain_text("已冲正 陈建国：1.0 小时")
        expect(record).to_have_attribute("data-status", "reversed")


class TestVolunteer:
    def test_a_volunteer_cannot_open_staff_pages(self, page: Page, console: Console) -> None:
        sign_in(page, console, OTHER_VOLUNTEER)
        page.goto(f"{console.url}/#/activities")
        expect(page.get_by_role("heading", name="无权访问此页面")).to_be_visible()
        expect(page.get_by_role("link", name="活动与考勤")).to_have_count(0)


class TestActingFor:
    def test_staff_register_a_resident_and_act_for_them(self, page: Page, console: Console) -> None:
        sign_in(page, console, STAFF)
        page.goto(f"{console.url}/#/residents")
        form = page.locator("form", has_text="登记线下居民")
        form.get_by_label("姓名").fill("周阿婆")
        form.get_by_label("身份证号").fill(id_number())
        form.get_by_label("所属社区").select_option(label="张园社区")
        form.get_by_role("button", name="登记").click()
        expect(page.get_by_role("status")).to_contain_text("已登记 周阿婆")
        shoot(page, console, "staff-residents")
        page.get_by_test_id("grant").filter(has_text="周阿婆").get_by_role("button", name="为其代办").click()
        expect(page.get_by_role("note")).to_have_text(re.compile("代办: 为 周阿婆 操作"))
        assert time_balance(page) == 0.0
        shoot(page, console, "acting-balances")
        page.goto(f"{console.url}/#/activities")
        expect(page.get_by_role("note")).to_contain_text("代办: 为 周阿婆 操作")
        page.get_by_role("note").get_by_role("button", name="结束代办").click()
        expect(page.get_by_role("note")).to_have_count(0)


class TestDownloads:
    def test_staff_download_an_export_and_a_certificate(self, page: Page, console: Console) -> None:
        sign_in(page, console, STAFF)
        page.goto(f"{console.url}/#/exports")
        with page.expect_download() as exported:
            page.get_by_role("button", name="下载 CSV").click()
        csv = Path(exported.value.path()).read_bytes()
        assert csv.startswith(b"\xef\xbb\xbf") and CJK.search(csv.decode("utf-8-sig"))
        shoot(page, console, "staff-exports")

        page.goto(f"{console.url}/#/certificates")
        page.get_by_label(re.compile("查找志愿者")).fill("陈建国")
        page.get_by_role("button", name="查找").click()
        page.get_by_role("button", name="选择").first.click()
        page.get_by_label("出具组织").select_option(label="武定坊社区")
        page.get_by_role("button", name="生成证明").click()
        expect(page.get_by_role("status")).to_contain_text("已生成")
        with page.expect_download() as pdf:
            page.get_by_role("button", name="下载 PDF").click()
        assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF")
        shoot(page, console, "staff-certificate")


class TestDesktop:
    def test_the_menu_is_a_row_of_links_on_a_desktop(self, browser: Browser, console: Console) -> None:
        ctx = browser.new_context(
            viewport={"width": 1280, "height": 800}, locale="zh-CN", timezone_id="Asia/Shanghai"
        )
        try:
            page = ctx.new_page()
            sign_in(page, console, STAFF)
            expect(page.get_by_role("button", name="菜单")).to_be_hidden()
            expect(page.get_by_role("link", name="服务证明")).to_be_visible()
            shoot(page, console, "desktop-staff-activities")
        finally:
            ctx.close()


class TestSession:
    def _tokens(self, page: Page) -> dict[str, str]:
        stored = page.evaluate("sessionStorage.getItem('timebank.console.session')")
        assert stored is not None, "no session stored"
        return dict(re.findall(r'"(access|refresh)":"([^"]+)"', stored))

    def test_the_token_is_refreshed_quietly_before_it_expires(self, page: Page, console: Console) -> None:
        page.clock.install()
        sign_in(page, console, OTHER_VOLUNTEER)
        before = time_balance(page)
        first = self._tokens(page)
        with page.expect_response(re.compile(r"/api/v1/auth/refresh$")) as refreshed:
            page.clock.fast_forward("15:00")
        assert refreshed.value.status == 200
        second = self._tokens(page)
        assert second["refresh"] != first["refresh"] and second["access"] != first["access"]
        expect(page.get_by_role("alert")).to_have_count(0)
        page.reload()
        assert time_balance(page) == before

    def test_a_refused_access_token_is_refreshed_and_the_request_retried(
        self, page: Page, console: Console
    ) -> None:
        sign_in(page, console, OTHER_VOLUNTEER)
        before = time_balance(page)
        page.evaluate(
            """() => {
              const s = JSON.parse(sessionStorage.getItem('timebank.console.session'));
              s.access = 'not-a-token';
              sessionStorage.setItem('timebank.console.session', JSON.stringify(s));
            }"""
        )
        with page.expect_response(re.compile(r"/api/v1/auth/refresh$")) as refreshed:
            page.reload()
        assert refreshed.value.status == 200
        assert time_balance(page) == before
        expect(page.get_by_role("alert")).to_have_count(0)

    def test_sign_out_ends_the_session(self, page: Page, console: Console) -> None:
        sign_in(page, console, OTHER_VOLUNTEER)
        refresh_token = self._tokens(page)["refresh"]
        sign_out(page)
        assert page.evaluate("sessionStorage.length") == 0
        page.goto(f"{console.url}/#/balances")
        expect(page.get_by_role("heading", name="时间银行 · 登录")).to_be_visible()
        # The login is over on the server too: its refresh token no longer works.
        resp = httpx.post(f"{console.base_url}/api/v1/auth/refresh", json={"refresh_token": refresh_token})
        assert resp.status_code == 401
