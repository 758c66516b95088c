"""The rules page in a real browser: a region administrator changes a rule of the region.

The change is a real one, so this module serves the demo on a database of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import Console, served_console
from tests.console.test_admin import ADMIN
from tests.console.test_browser import shoot, sign_in
from tests.support import ServerInfo

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def console(
    pg_server: ServerInfo, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    yield from served_console(pg_server, template_db, tmp_path_factory, "console-rules")


class TestRules:
    def test_an_admin_changes_a_rule_and_sees_the_new_value(self, page: Page, console: Console) -> None:
        sign_in(page, console, ADMIN)
        page.get_by_role("button", name="菜单").click()
        page.get_by_role("link", name="区域规则").click()
        rule = page.get_by_test_id("rule").filter(has_text="timebank.storage_cap_hours")
        expect(rule).to_contain_text("个人存储上限 1500 小时")  # the shipped note
        expect(rule.get_by_test_id("rule-value")).to_have_text("1500")
        rule.get_by_role("button", name="修改").click()
        rule.get_by_label("新的值").fill("-5")
        rule.get_by_label("修改原因").fill("试试负数")
        rule.get_by_role("button", name="保存").click()
        expect(rule.get_by_role("alert")).to_contain_text("请检查以下内容：规则值")
        expect(rule.get_by_test_id("rule-value")).to_have_text("1500")
        rule.get_by_label("新的值").fill("2000")
        rule.get_by_label("修改原因").fill("区议会决定提高存储上限")
        rule.get_by_role("button", name="保存").click()
        expect(rule.get_by_test_id("rule-value")).to_have_text("2000")
        expect(rule).to_contain_text("本区已修改")
        expect(rule).to_contain_text("默认值：1500")
        shoot(page, console, "rules-changed")
        page.reload()
        rule = page.get_by_test_id("rule").filter(has_text="timebank.storage_cap_hours")
        expect(rule.get_by_test_id("rule-value")).to_have_text("2000")
