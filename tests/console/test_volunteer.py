"""The volunteer H5 in a real browser at phone size (375×812): star level and progress, the
redemption code page, care requests; none scrolls sideways; shop and staff pages stay closed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.console.conftest import Console
from tests.console.test_browser import shoot, sign_in
from tests.console.test_shop import SHOP, VOLUNTEER, browser_page

pytestmark = pytest.mark.browser

IPHONE: ViewportSize = {"width": 375, "height": 812}
H5_PAGES = [
    ("/balances", "时间与积分"),
    ("/statement", "收支明细"),
    ("/me/rating", "星级"),
    ("/me/code", "兑换码"),
    ("/me/care", "照护需求"),
]


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    with browser_page(browser, IPHONE, mobile=True) as page:
        yield page


def no_sideways_scrolling(page: Page) -> bool:
    return bool(page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth"))


class TestPhone:
    def test_every_h5_page_fits_a_phone_without_horizontal_scrolling(
        self, phone: Page, console: Console
    ) -> None:
        sign_in(phone, console, VOLUNTEER)
        for path, name in H5_PAGES:
            phone.goto(f"{console.url}/#{path}")
            expect(phone.locator("main h1")).to_be_visible()
            expect(phone.get_by_text("正在加载…")).to_have_count(0)
            assert no_sideways_scrolling(phone), f"{path} scrolls sideways at 375 px"
            shoot(phone, console, f"h5{path.replace('/', '-')}")
        phone.get_by_role("button", name="菜单").click()
        for _, name in H5_PAGES:
            expect(phone.get_by_role("link", name=name, exact=True)).to_be_visible()

    def test_the_code_page_fits_with_its_qr(self, phone: Page, console: Console) -> None:
        sign_in(phone, console, VOLUNTEER)
        phone.goto(f"{console.url}/#/me/code")
        phone.get_by_role("button", name="生成兑换码").click()
        expect(phone.get_by_role("img", name="兑换二维码", exact=False)).to_be_visible()
        expect(phone.get_by_test_id("expiring")).to_contain_text("即将到期的积分")
        assert no_sideways_scrolling(phone)
        shoot(phone, console, "h5-code-shown")


class TestRating:
    def test_the_star_level_shows_progress_to_the_next(self, phone: Page, console: Console) -> None:
        sign_in(phone, console, VOLUNTEER)
        phone.goto(f"{console.url}/#/me/rating")
        rating = phone.get_by_test_id("rating")
        expect(rating.get_by_test_id("level")).to_have_text("未评星")
        expect(rating).to_contain_text("距离一星（100 小时）还差")
        bar = rating.get_by_role("progressbar", name="升级进度")
        expect(bar).to_have_attribute("aria-valuemax", "100")
        served = float(rating.get_by_test_id("service-hours").inner_text())
        left = float(rating.get_by_test_id("hours-to-next").inner_text())
        assert served + left == pytest.approx(100.0)
        assert bar.get_attribute("aria-valuenow") == str(int(served))
        shoot(phone, console, "h5-rating")


class TestCare:
    def test_a_volunteer_sees_their_care_requests_and_their_status(
        self, phone: Page, console: Console
    ) -> None:
        sign_in(phone, console, VOLUNTEER)  # 张秀英 serves 陈桂兰 in the demo
        phone.goto(f"{console.url}/#/me/care")
        rows = phone.get_by_test_id("care-request")
        expect(rows.first).to_be_visible()
        expect(rows.filter(has_text="我服务的").first).to_contain_text("生活照料")
        phone.get_by_role("button", name="已安排").click()
        expect(rows.first).to_have_attribute("data-status", "assigned")
        expect(rows.first).to_contain_text("已安排")


class TestWhoMayOpen:
    def test_a_volunteer_cannot_open_shop_or_staff_pages(self, phone: Page, console: Console) -> None:
        sign_in(phone, console, VOLUNTEER)
        for path in ("/shop/counter", "/shop/receipts", "/shop/statements", "/activities", "/exports"):
            phone.goto(f"{console.url}/#{path}")
            expect(phone.get_by_role("heading", name="无权访问此页面")).to_be_visible()
        phone.get_by_role("button", name="菜单").click()
        for name in ("积分兑换", "兑换记录", "结算单", "活动与考勤"):
            expect(phone.get_by_role("link", name=name, exact=True)).to_have_count(0)
        shoot(phone, console, "h5-denied")

    def test_a_shop_cannot_open_volunteer_pages(self, phone: Page, console: Console) -> None:
        sign_in(phone, console, SHOP)
        phone.goto(f"{console.url}/#/me/code")
        expect(phone.get_by_role("heading", name="无权访问此页面")).to_be_visible()
