"""The volunteer's statement names each line by the title its domain declares for the ledger code
(the API sends the code, not the title): the console's table must follow every declaration."""

from __future__ import annotations

import re

from timebank.console.assets import STATIC_DIR
from timebank.domains import domains
from timebank.kit.domain import DECLARED_TRANSFERS

LEDGER_PAGE = STATIC_DIR / "js" / "pages" / "ledger.js"


def console_titles() -> dict[str, str]:
    text = LEDGER_PAGE.read_text(encoding="utf-8")
    table = re.search(r"const CODES = \{(.*?)\n\};", text, re.S)
    assert table is not None, "ledger.js has no CODES table"
    return dict(re.findall(r"^\s+([a-z_]+): \"([^\"]+)\",$", table.group(1), re.M))


class TestStatementTitles:
    def test_every_declared_transfer_code_has_its_declared_title(self) -> None:
        domains()
        titles = console_titles()
        declared = {code: transfer.title for code, transfer in DECLARED_TRANSFERS.items()}
        assert declared, "no transfer codes declared"
        assert {code: titles.get(code) for code in declared} == declared
