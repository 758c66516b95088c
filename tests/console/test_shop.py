"""The shop operator's pages in a real browser: redeem a volunteer's code (stock and balance
change), a wrong code's problem in Chinese, receipts with a refund, monthly statements.

The volunteer shows the code on their phone (one browser context) while the shop redeems it at
the counter (another context, desktop-sized), as at a real counter.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.console.conftest import Console
from tests.console.test_browser import CJK, shoot, sign_in

pytestmark = pytest.mark.browser

SHOP = ("门店", "13700000001", "tb-demo-shop")  # 周店长, 张园爱心超市 (refund window 24 h)
VOLUNTEER = ("志愿者", "13800000001", "tb-demo-volunteer")  # 张秀英: 3 points, 2 h served in the demo
ADMIN = ("管理员", "13600000001", "tb-demo-admin")
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


def token(console: Console, who: tuple[str, str, str]) -> str:
    kinds = {"门店": "shop", "志愿者": "volunteer", "管理员": "admin"}
    kind, phone, password = who
    resp = httpx.post(
        f"{console.base_url}/api/v1/auth/login",
        json={"phone": phone, "password": password, "kind": kinds[kind]},
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def call(
    console: Console,
    who: tuple[str, str, str],
    method: str,
    path: str,
    *,
    json: object = None,
    params: dict[str, int] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One API call as `who`, as the mini-program would make it; the test's setup, not under test."""
    resp = httpx.request(
        method,
        f"{console.base_url}/api/v1{path}",
        json=json,
        params=params,
        headers={"authorization": f"Bearer {token(console, who)}", **(headers or {})},
    )
    resp.raise_for_status()
    return resp


@pytest.fixture(scope="module")
def shop_id(console: Console) -> str:
    return str(call(console, SHOP, "GET", "/me").json()["shop"]["id"])


@pytest.fixture(scope="module")
def served(console: Console) -> None:
    """The region lets only volunteers with 5 h of service redeem: 4 h of honour hours (no points)."""
    me = call(console, VOLUNTEER, "GET", "/me").json()
    call(
        console,
        ADMIN,
        "POST",
        "/honour-hours",
        json={
            "volunteer_id": me["id"],
            "organisation_id": me["community"]["id"],
            "minutes": 240,
            "reason": "演示：补录荣誉时长",
        },
        headers={"idempotency-key": f"test-{secrets.token_hex(8)}"},
    )


@pytest.fixture(scope="module")
def bag(console: Console, shop_id: str, served: None) -> str:
    """A one-point item with 20 in stock (the demo volunteers hold only a few points); its name."""
    name = f"环保购物袋 {secrets.token_hex(2)}"
    call(
        console,
        SHOP,
        "POST",
        f"/shops/{shop_id}/items",
        json={"name": name, "kind": "goods", "price_points": 1, "stock": 20},
    )
    return name


@contextlib.contextmanager
def browser_page(
    browser: Browser, viewport: ViewportSize, zone: str = "Asia/Shanghai", *, mobile: bool = False
) -> Iterator[Page]:
    """A page in a browser context of its own (its own session), closed afterwards."""
    ctx = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id=zone, is_mobile=mobile)
    ctx.set_default_timeout(15_000)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture
def counter(browser: Browser) -> Iterator[Page]:
    with browser_page(browser, DESKTOP) as page:
        yield page


def points_on_code_page(page: Page) -> int:
    return int(page.get_by_test_id("code-points").inner_text())


class TestRedeem:
    def test_a_shop_redeems_a_code_and_stock_and_balance_change(
        self, page: Page, counter: Page, console: Console, bag: str
    ) -> None:
        sign_in(page, console, VOLUNTEER)
        page.goto(f"{console.url}/#/me/code")
        before = points_on_code_page(page)
        page.get_by_role("button", name="生成兑换码").click()
        code = page.get_by_test_id("code").get_attribute("data-code")
        assert code is not None and re.fullmatch(r"\d{8}", code)
        qr = page.get_by_role("img", name=re.compile("兑换二维码"))
        expect(qr).to_be_visible()
        assert page.evaluate("document.querySelector('img.qr').naturalWidth") > 0
        shoot(page, console, "volunteer-code")

        sign_in(counter, console, SHOP)
        expect(counter.get_by_role("heading", name="积分兑换")).to_be_visible()
        item = counter.get_by_test_id("item").filter(has_text=bag)
        expect(item.get_by_test_id("stock")).to_have_text("库存 20")
        counter.get_by_label("兑换码").fill(code)
        item.get_by_role("button", name="增加").click()
        item.get_by_role("button", name="增加").click()
        counter.get_by_role("button", name="核验并预览").click()
        preview = counter.get_by_test_id("preview")
        expect(preview).to_contain_text("张*英")  # the API masks the name at the counter
        expect(preview.get_by_test_id("available-points")).to_have_text(f"{before} 分")
        expect(preview.get_by_test_id("total-points")).to_have_text("2 分")
        expect(preview.get_by_test_id("points-after")).to_have_text(f"{before - 2} 分")
        expect(preview.get_by_test_id("points-after")).to_be_in_viewport()
        counter.screenshot(path=str(console.shots / "shop-preview-in-view.png"))
        shoot(counter, console, "shop-preview")
        counter.get_by_role("button", name="确认兑换 2 分").click()
        receipt = counter.get_by_test_id("receipt")
        expect(receipt).to_contain_text(f"{bag} × 2")
        expect(receipt.get_by_test_id("receipt-total")).to_have_text("2")
        expect(item.get_by_test_id("stock")).to_have_text("库存 18")
        shoot(counter, console, "shop-receipt")

        page.reload()
        expect(page.get_by_test_id("code-points")).to_have_text(str(before - 2))
        page.goto(f"{console.url}/#/balances")
        expect(page.get_by_test_id("points-balance")).to_contain_text(f"{before - 2} 分")

    def test_a_wrong_code_shows_its_problem_in_chinese(
        self, counter: Page, console: Console, bag: str
    ) -> None:
        sign_in(counter, console, SHOP)
        counter.get_by_label("兑换码").fill("00000000")
        counter.get_by_test_id("item").filter(has_text=bag).get_by_role("button", name="增加").click()
        counter.get_by_role("button", name="核验并预览").click()
        problem = counter.get_by_role("alert")
        expect(problem.locator(".problem-title")).to_have_text("兑换码无效")
        detail = problem.locator(".problem-detail").inner_text()
        assert "请核对 8 位数字" in detail and len(CJK.findall(detail)) >= 10, detail
        expect(counter.get_by_test_id("preview")).to_have_count(0)
        expect(problem).to_be_in_viewport()  # below a long catalogue, brought into view
        counter.screenshot(path=str(console.shots / "shop-wrong-code-in-view.png"))
        shoot(counter, console, "shop-wrong-code")

    def test_a_scanned_qr_payload_is_checked_like_the_digits(
        self, counter: Page, console: Console, bag: str
    ) -> None:
        payload = call(console, VOLUNTEER, "POST", "/me/redemption-codes").json()["qr_payload"]
        sign_in(counter, console, SHOP)
        counter.get_by_label("兑换码").fill(payload)
        counter.get_by_test_id("item").filter(has_text=bag).get_by_role("button", name="增加").click()
        counter.get_by_label("兑换码").press("Enter")  # a scanner types the payload and Enter
        expect(counter.get_by_test_id("preview")).to_contain_text("张*英")
        expect(counter.get_by_test_id("total-points")).to_have_text("1 分")


class TestReceipts:
    def test_a_receipt_is_refunded_with_a_reason_and_times_are_the_regions(
        self, browser: Browser, console: Console, shop_id: str, bag: str
    ) -> None:
        items = call(console, SHOP, "GET", f"/shops/{shop_id}/items", params={"limit": 100}).json()["items"]
        item_id = next(i["id"] for i in items if i["name"] == bag)
        code = call(console, VOLUNTEER, "POST", "/me/redemption-codes").json()["code"]
        redeemed = call(
            console,
            SHOP,
            "POST",
            f"/shops/{shop_id}/redemptions",
            json={"code": code, "items": [{"item_id": item_id, "quantity": 1}]},
            headers={"idempotency-key": f"test-{secrets.token_hex(8)}"},
        ).json()
        # A PC whose clock is set to New York still shows the region's (Shanghai) time.
        with browser_page(browser, DESKTOP, "America/New_York") as page:
            sign_in(page, console, SHOP)
            page.goto(f"{console.url}/#/shop/receipts")
            receipt = page.get_by_test_id("receipt").filter(has_text=redeemed["id"][-8:])
            at = datetime.fromisoformat(redeemed["created_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
            expect(receipt).to_contain_text(f"{at.month}月{at.day}日 {at:%H:%M}")
            receipt.get_by_role("button", name="退回").click()
            receipt.get_by_label("退回原因").fill("顾客退货")
            shoot(page, console, "shop-receipts")
            receipt.get_by_role("button", name="确认退回").click()
            expect(receipt).to_have_attribute("data-status", "refunded")
            expect(receipt).to_contain_text("顾客退货")

    def test_a_month_statement_is_downloaded(self, counter: Page, console: Console, shop_id: str) -> None:
        month = (date.today().replace(day=1) - timedelta(days=1)).isoformat()  # last month: over
        call(console, ADMIN, "POST", f"/shops/{shop_id}/statements", json={"month": month})
        sign_in(counter, console, SHOP)
        counter.goto(f"{console.url}/#/shop/statements")
        statement = counter.get_by_test_id("statement").first
        expect(statement.get_by_role("heading")).to_have_text(f"{int(month[:4])}年{int(month[5:7])}月")
        expect(statement).to_contain_text("结算金额")
        with counter.expect_download() as downloaded:
            statement.get_by_role("button", name="下载 CSV").click()
        assert downloaded.value.suggested_filename.endswith(".csv")
        expect(counter.get_by_role("status")).to_contain_text("已下载")
        shoot(counter, console, "shop-statements")
