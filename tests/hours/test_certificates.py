"""Certificate PDFs: the font is embedded and every character drawn has an outline in it.

The checks read the PDF's own structure (pypdf) and the embedded TrueType subset (reportlab's
parser), so they need no PDF renderer and no font installed on the machine.
"""

from __future__ import annotations

import io
import logging
import re
import struct
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient
from pypdf import PdfReader
from pypdf.generic import ContentStream, DictionaryObject
from reportlab.pdfbase.ttfonts import TTFontFile

from tests.hours.conftest import World, now
from tests.support import auth
from timebank.hours import certificates
from timebank.hours.schemas import CertificateRequest
from timebank.settings import DEFAULT_CERTIFICATE_FONT

API = "/api/v1"
BFCHAR = re.compile(r"<([0-9A-F]{2})> <([0-9A-F]{4,8})>")


@dataclass
class EmbeddedFont:
    """One font of a page: its embedded TrueType program and what its codes stand for."""

    name: str
    glyph_of: dict[int, int]  # code → glyph in the embedded program
    outline_bytes: list[int]  # glyph → length of its outline (0: nothing is drawn)
    text_of: dict[int, str]  # code → character (the ToUnicode map)


def _font(name: str, font: DictionaryObject) -> EmbeddedFont:
    assert font["/Subtype"] == "/TrueType", f"{name}: {font['/Subtype']} (only embedded TrueType expected)"
    descriptor = font["/FontDescriptor"].get_object()
    assert "/FontFile2" in descriptor, f"{name} ({font['/BaseFont']}) is not embedded"
    program = TTFontFile(io.BytesIO(descriptor["/FontFile2"].get_object().get_data()))
    lengths = [b - a for a, b in zip(program.glyphPos, program.glyphPos[1:], strict=False)]
    cmap = font["/ToUnicode"].get_object().get_data().decode("ascii")
    text_of = {int(code, 16): chr(int(cp, 16)) for code, cp in BFCHAR.findall(cmap)}
    return EmbeddedFont(str(font["/BaseFont"]), _code_to_glyph(program.get_table("cmap")), lengths, text_of)


def _code_to_glyph(cmap: bytes) -> dict[int, int]:
    """The (1, 0) format-6 cmap that reportlab writes into a simple-font subset: code → glyph."""
    (tables,) = struct.unpack_from(">H", cmap, 2)
    for i in range(tables):
        platform, encoding, offset = struct.unpack_from(">HHI", cmap, 4 + 8 * i)
        if (platform, encoding) == (1, 0):
            fmt, _, _, first, count = struct.unpack_from(">5H", cmap, offset)
            assert fmt == 6, f"cmap format {fmt}"
            glyphs = struct.unpack_from(f">{count}H", cmap, offset + 10)
            return {first + n: glyph for n, glyph in enumerate(glyphs)}
    raise AssertionError("no (1, 0) cmap in the embedded font")


def read_pdf(data: bytes) -> tuple[list[EmbeddedFont], str]:
    """The fonts a PDF uses (each checked to be embedded TrueType) and the text it draws, decoded
    through those fonts, checking that every non-blank character drawn has an outline."""
    reader = PdfReader(io.BytesIO(data))
    fonts: dict[str, EmbeddedFont] = {}
    drawn: list[str] = []
    for page in reader.pages:
        resources = page["/Resources"]["/Font"].get_object()
        page_fonts = {key: _font(key, ref.get_object()) for key, ref in resources.items()}
        fonts.update({f.name: f for f in page_fonts.values()})
        current: EmbeddedFont | None = None
        for operands, operator in ContentStream(page.get_contents(), reader).operations:
            if operator == b"Tf":
                current = page_fonts[operands[0]]
            elif operator in (b"Tj", b"TJ"):
                assert current is not None
                strings = operands[0] if operator == b"TJ" else operands
                for string in strings:
                    if isinstance(string, int | float):
                        continue
                    raw = string.get_original_bytes() if hasattr(string, "get_original_bytes") else string
                    drawn.append(_decode(current, bytes(raw)))
            elif operator == b"T*":
                drawn.append("\n")
    return list(fonts.values()), "".join(drawn)


def _decode(font: EmbeddedFont, raw: bytes) -> str:
    chars = []
    for code in raw:
        ch, glyph = font.text_of[code], font.glyph_of.get(code, 0)
        assert glyph != 0, f"{ch!r} is drawn as .notdef (an empty box) in {font.name}"
        assert ch.isspace() or font.outline_bytes[glyph] > 0, f"{ch!r} has no outline in {font.name}"
        chars.append(ch)
    return "".join(chars)


async def issue(app: Litestar, world: World, client: AsyncTestClient[Litestar], name: str) -> bytes:
    """A certificate of confirmed service for a volunteer named ``name`` + "0", as PDF."""
    (vid,) = await world.add_volunteers(1, name=name)
    aid = await world.activity(starts_at=now() - timedelta(hours=3), status="closed", title="敬老院探访")
    await world.sign_up_all(aid, [vid])
    await world.attend_all(aid, [vid], minutes=100)
    staff = auth(app, world.staff())
    confirmed = await client.post(
        f"{API}/activities/{aid}/confirm", headers={**staff, "Idempotency-Key": f"confirm-{aid}"}
    )
    assert confirmed.status_code == 200, confirmed.text
    today = now().date()  # UTC; the region's day may be a later one
    request = CertificateRequest(
        volunteer_id=vid,
        organisation_id=world.orgs["zhangyuan"],
        period_from=today - timedelta(days=2),
        period_to=today + timedelta(days=1),
    )
    resp = await client.post(f"{API}/certificates", json=msgspec.to_builtins(request), headers=staff)
    assert resp.status_code == 201, resp.text
    pdf = await client.get(
        f"{API}/certificates/{resp.json()['id']}/pdf", headers=auth(app, world.volunteer(vid))
    )
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    return pdf.content


class TestCertificatePdf:
    @pytest.mark.asyncio
    async def test_font_is_embedded_and_every_character_has_an_outline(
        self, app: Litestar, world: World
    ) -> None:
        async with AsyncTestClient(app) as client:
            data = await issue(app, world, client, "朱镕玥")  # 镕 and 玥 are not in GB 2312
        fonts, text = read_pdf(data)
        assert fonts and all("WenQuanYiMicroHei" in f.name for f in fonts)
        assert certificates.TITLE in text
        assert "兹证明志愿者 朱镕玥0（身份证号 310***********1234）" in text
        assert "敬老院探访" in text and "1.7" in text and "/verify" in text

    @pytest.mark.asyncio
    async def test_character_outside_the_font_prints_its_code_point(
        self, app: Litestar, world: World, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="timebank.certificates"):
            async with AsyncTestClient(app) as client:
                data = await issue(app, world, client, "刘䶮")  # U+4DAE, CJK Extension A: not in GBK
        _, text = read_pdf(data)  # no .notdef box anywhere
        assert "兹证明志愿者 刘[U+4DAE]0（" in text
        (record,) = [r for r in caplog.records if r.name == "timebank.certificates"]
        assert record.count == 1 and "TIMEBANK_CERTIFICATE_FONT_FILE" in record.getMessage()  # type: ignore[attr-defined]
        assert "䶮" not in record.getMessage()  # a character of a name is personal data


class TestRenderPdf:
    def content(self, **changes: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "type": certificates.TITLE,
            "certificate_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "volunteer": {"id": "v", "name": "欧阳玥", "id_number_masked": "310***********1234"},
            "organisation": {"id": "o", "name": "张园社区"},
            "period": {"from": "2025-01-01", "to": "2025-12-31"},
            "records": [
                {
                    "date": f"2025-03-{d:02d}",
                    "activity": "助老",
                    "category": "助老服务",
                    "minutes": 90,
                    "hours": "1.5",
                }
                for d in range(1, 31)
            ],
            "total_minutes": 2700,
            "total_hours": "45.0",
            "issued_at": "2025-12-31T10:00:00+08:00",
            "verify_url": "https://timebank.example/api/v1/certificates/x/verify",
            "key_id": "k1",
            "_sha256": "ab" * 32,
        }
        return {**base, **changes}

    def test_pages_after_the_first_embed_the_font_too(self) -> None:
        data = certificates.render_pdf(self.content(), str(DEFAULT_CERTIFICATE_FONT))
        _, text = read_pdf(data)
        assert len(PdfReader(io.BytesIO(data)).pages) == 2
        assert text.count("助老服务") == 30 and "扫码或访问以下网址核验本证明真伪" in text

    def test_another_configured_font_is_used(self, tmp_path: Any) -> None:
        copy = tmp_path / "other.ttf"
        copy.write_bytes(DEFAULT_CERTIFICATE_FONT.read_bytes())
        data = certificates.render_pdf(self.content(records=[]), str(copy))
        fonts, text = read_pdf(data)
        assert "（该期间无经确认的服务记录）" in text and fonts

    @given(st.text(max_size=30))
    def test_printable_keeps_covered_text_and_marks_the_rest(self, text: str) -> None:
        covered = frozenset(map(ord, "[]U+0123456789ABCDEF志愿者")) | frozenset(range(0x20, 0x7F))
        shown = certificates.printable(text, covered)
        assert all(ord(ch) in covered for ch in shown)
        restored = re.sub(r"\[U\+([0-9A-F]{4,6})\]", lambda m: chr(int(m.group(1), 16)), shown)
        if "[U+" not in text:  # a name that itself looks like a marker cannot be told apart
            assert restored == text
