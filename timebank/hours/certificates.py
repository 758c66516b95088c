"""志愿服务记录证明: verifiable certificates of confirmed service hours.

A certificate lists the volunteer's confirmed service records with one organisation over a period.
Its content is stored as JSON together with the SHA-256 of its canonical form (UTF-8 JSON, sorted
keys, no spaces) and an ES256 signature of that form by the service key — the key that signs access
tokens, whose public half is published at ``/.well-known/jwks.json`` under ``key_id``.
``GET /api/v1/certificates/{id}/verify`` recomputes the canonical bytes from the stored content and
checks both: a certificate altered in the database, even by a superuser, fails verification.
The PDF is rendered from the stored content with a QR code of the verification URL, in one
TrueType font (``TIMEBANK_CERTIFICATE_FONT_FILE``; by default the bundled GBK subset of WenQuanYi
Micro Hei) that reportlab embeds, subsetted, so the page looks the same on a phone or an office PC
without Chinese fonts. A character the font lacks (a rare 生僻字 outside GBK) is printed as its
code point, ``[U+4DAE]``, and logged, rather than as an empty box: the signed content behind the QR
code still holds the exact name.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
from functools import cache
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from timebank.db import Conn
from timebank.hours import errors, repo
from timebank.hours.rows import CertificateRow, OrganisationRow, VolunteerRow
from timebank.hours.schemas import Certificate, CertificateRequest, Verification, hours_display
from timebank.hours.service import region_org, require_org, require_volunteer
from timebank.identity.scope import org_in_scope
from timebank.identity.tokens import KeyRing
from timebank.ids import uuid7
from timebank.kit.dates import local_day, local_days
from timebank.kit.errors import NotInScope
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules

log = logging.getLogger("timebank.certificates")
TITLE = "志愿服务记录证明"
MEDIA_TYPE = "application/pdf"
MAX_PERIOD_DAYS = 3660


def canonical(content: dict[str, Any]) -> bytes:
    """The bytes that are hashed and signed."""
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _stored_content(row: CertificateRow) -> dict[str, Any]:
    """The stored content as a dict (a connection without the pool's JSON codec returns text)."""
    stored = row.content
    content: dict[str, Any] = stored if isinstance(stored, dict) else json.loads(stored)
    return content


def urls(base_url: str, certificate_id: UUID) -> tuple[str, str]:
    """(verification URL, PDF URL) under the API prefix."""
    root = base_url.rstrip("/") + "/api/v1/certificates/" + str(certificate_id)
    return root + "/verify", root + "/pdf"


async def _parties(
    conn: Conn, principal: Principal, data: CertificateRequest
) -> tuple[VolunteerRow, OrganisationRow]:
    """The volunteer and the organisation of a certificate, if the caller may ask for it."""
    vol = await require_volunteer(conn, principal, data.volunteer_id)
    if principal.kind != "volunteer":
        return vol, await require_org(conn, principal, data.organisation_id)
    if data.volunteer_id != principal.sub:
        raise NotInScope("volunteers ask for their own certificates")
    return vol, await region_org(conn, principal, data.organisation_id)


async def issue(
    conn: Conn, principal: Principal, keys: KeyRing, base_url: str, data: CertificateRequest
) -> Certificate:
    """Issue a certificate of the volunteer's confirmed service with the organisation over the period.

    Staff of the organisation (or above it) and administrators issue it; a volunteer may ask for
    their own.
    """
    if data.period_to < data.period_from or (data.period_to - data.period_from).days > MAX_PERIOD_DAYS:
        raise errors.BadTimes("period_to must not be before period_from (and at most ten years later)")
    vol, org = await _parties(conn, principal, data)
    zone = (await region_rules(conn, principal.region_id)).zone
    period = local_days(data.period_from, data.period_to, zone)
    rows = await repo.certificate_records(
        conn, principal.region_id, data.volunteer_id, data.organisation_id, period.since, period.until
    )
    records = [
        {
            "date": local_day(r.served_at, zone).isoformat(),
            "activity": r.title,
            "category": r.category,
            "minutes": r.minutes,
            "hours": hours_display(r.minutes),
        }
        for r in rows
    ]
    total = sum(r.minutes for r in rows)
    certificate_id = uuid7()
    verify_url, pdf_url = urls(base_url, certificate_id)
    issued_at = await repo.db_now(conn)
    content: dict[str, Any] = {
        "type": TITLE,
        "certificate_id": str(certificate_id),
        "volunteer": {
            "id": str(vol.id),
            "name": vol.real_name,
            "id_number_masked": await repo.id_number_masked(conn, vol.region_id, vol.id),
        },
        "organisation": {"id": str(org.id), "name": org.name},
        "period": {"from": data.period_from.isoformat(), "to": data.period_to.isoformat()},
        "records": records,
        "total_minutes": total,
        "total_hours": hours_display(total),
        "issued_at": issued_at.astimezone(zone).isoformat(timespec="seconds"),
        "verify_url": verify_url,
        "key_id": keys.signing_kid,
    }
    body = canonical(content)
    digest = hashlib.sha256(body).digest()
    signature = keys.signing_key.sign(body, ec.ECDSA(hashes.SHA256()))
    await repo.insert_certificate(
        conn,
        certificate_id,
        principal.region_id,
        data.volunteer_id,
        data.organisation_id,
        data.period_from,
        data.period_to,
        content,
        digest,
        signature,
        keys.signing_kid,
        principal.actor,
        issued_at,
    )
    return Certificate(
        id=certificate_id,
        volunteer_id=data.volunteer_id,
        organisation_id=data.organisation_id,
        period_from=data.period_from,
        period_to=data.period_to,
        total_minutes=total,
        total_hours=hours_display(total),
        record_count=len(records),
        verify_url=verify_url,
        pdf_url=pdf_url,
        key_id=keys.signing_kid,
        content_sha256=digest.hex(),
        issued_at=issued_at,
    )


async def verify(conn: Conn, keys: KeyRing, certificate_id: UUID) -> Verification:
    """Check a certificate: the stored content must hash to the stored digest and carry a valid signature."""
    row = await repo.certificate(conn, certificate_id)
    if row is None:
        raise errors.CertificateNotFound(f"no certificate {certificate_id}")
    content = _stored_content(row)
    body = canonical(content)
    digest = hashlib.sha256(body).digest()
    reason = "内容完整，签名有效 (content unchanged, signature valid)"
    valid = True
    key = keys.public_keys.get(row.key_id)
    if digest != row.content_sha256:
        valid, reason = False, "内容已被篡改 (the content does not match its digest)"
    elif key is None:
        valid, reason = False, "签名密钥未知 (the signing key is not among the service's keys)"
    elif content.get("certificate_id") != str(certificate_id) or content.get("key_id") != row.key_id:
        valid, reason = False, "证明编号或密钥不符 (id or key in the content differ)"
    else:
        try:
            key.verify(row.signature, body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            valid, reason = False, "签名无效 (the signature does not match the content)"
    return Verification(
        id=certificate_id,
        valid=valid,
        reason=reason,
        content=content if valid else None,
        content_sha256=digest.hex(),
        key_id=row.key_id,
        signature=_b64(row.signature),
    )


async def reach(conn: Conn, principal: Principal, certificate_id: UUID) -> dict[str, Any]:
    """A certificate's stored content, for its volunteer, staff in scope of its organisation, admins."""
    row = await repo.region_certificate(conn, principal.region_id, certificate_id)
    if row is None:
        raise errors.CertificateNotFound(f"no certificate {certificate_id}")
    if principal.kind == "volunteer":
        if row.volunteer_id != principal.sub or not principal.may("view"):
            raise errors.CertificateNotFound(f"no certificate {certificate_id}")
    elif not await org_in_scope(conn, principal, row.organisation_id):
        # out of reach reads as absent: personal data is not probed for existence
        raise errors.CertificateNotFound(f"no certificate {certificate_id}")
    content = _stored_content(row)
    content["_sha256"] = row.content_sha256.hex()
    return content


@cache
def _font(path: str) -> tuple[str, frozenset[int]]:
    """Register the TrueType font at ``path`` once per process; (font name, characters it has)."""
    name = "TimebankCertificate-" + hashlib.sha256(path.encode()).hexdigest()[:12]
    font = TTFont(name, path)  # about 0.2 s for the bundled font, hence once per process
    pdfmetrics.registerFont(font)
    return name, frozenset(font.face.charToGlyph)


def printable(text: str, covered: frozenset[int]) -> str:
    """``text`` with every character the font lacks written as its code point (``[U+4DAE]``)."""
    if all(ord(ch) in covered for ch in text):
        return text
    return "".join(ch if ord(ch) in covered else f"[U+{ord(ch):04X}]" for ch in text)


class _Writer:
    """Text on the pages of one certificate, in one embedded font."""

    def __init__(self, font_file: str) -> None:
        self.font, self.covered = _font(font_file)
        self.lacking = 0
        self.out = io.BytesIO()
        # initialFontName: otherwise each page's preamble names Helvetica, which reportlab never embeds
        # (types-reportlab declares the argument a float)
        self.pdf = canvas.Canvas(
            self.out,
            pagesize=A4,
            invariant=True,
            initialFontName=self.font,  # type: ignore[arg-type]
        )
        self.pdf.setTitle(TITLE)
        self.left, self.y = 22 * mm, A4[1] - 30 * mm

    def draw(self, x: float, y: float, text: str, size: float, centred: bool = False) -> None:
        shown = printable(text, self.covered)
        if shown != text:
            self.lacking += sum(ord(ch) not in self.covered for ch in text)
        self.pdf.setFont(self.font, size)
        (self.pdf.drawCentredString if centred else self.pdf.drawString)(x, y, shown)

    def room(self, needed: float) -> None:
        """A new page unless ``needed`` fits above the bottom margin."""
        if self.y < needed:
            self.pdf.showPage()
            self.y = A4[1] - 25 * mm

    def line(self, text: str, size: float = 11, gap: float = 7 * mm) -> None:
        self.room(30 * mm)
        self.draw(self.left, self.y, text, size)
        self.y -= gap


def render_pdf(content: dict[str, Any], font_file: str) -> bytes:
    """The certificate as an A4 PDF in Chinese with a QR code of its verification URL.

    Args:
        content: The stored content (with ``_sha256``), as :func:`reach` returns it.
        font_file: A TrueType-outline font (``TIMEBANK_CERTIFICATE_FONT_FILE``), embedded subsetted.
    """
    w = _Writer(font_file)
    left = w.left
    w.draw(A4[0] / 2, w.y, TITLE, 22, centred=True)
    w.y -= 16 * mm
    vol, org, period = content["volunteer"], content["organisation"], content["period"]
    w.line(f"兹证明志愿者 {vol['name']}（身份证号 {vol['id_number_masked']}），")
    w.line(f"于 {period['from']} 至 {period['to']} 期间在 {org['name']} 参加志愿服务，")
    w.line(
        f"经核验的服务时长共计 {content['total_hours']} 小时（{content['total_minutes']} 分钟），明细如下："
    )
    w.y -= 2 * mm
    columns = (left, left + 28 * mm, left + 100 * mm, left + 136 * mm)
    for x, head in zip(columns, ("日期", "活动", "服务类别", "时长（小时）"), strict=True):
        w.draw(x, w.y, head, 10)
    w.y -= 2 * mm
    w.pdf.line(left, w.y, A4[0] - left, w.y)
    w.y -= 5 * mm
    for rec in content["records"]:
        w.room(40 * mm)
        cells = (rec["date"], rec["activity"][:22], rec["category"][:10], rec["hours"])
        for x, cell in zip(columns, cells, strict=True):
            w.draw(x, w.y, cell, 10)
        w.y -= 6 * mm
    if not content["records"]:
        w.line("（该期间无经确认的服务记录）", 10)
    w.y -= 4 * mm
    w.line(f"出具单位：{org['name']}", 11)
    w.line(f"出具时间：{content['issued_at']}", 11)
    w.line(f"证明编号：{content['certificate_id']}", 9, 5 * mm)
    w.line(f"内容摘要（SHA-256）：{content.get('_sha256', '')}", 7, 5 * mm)
    w.line(f"签名密钥：{content['key_id']}（ES256）", 7, 5 * mm)
    qr_size = 38 * mm
    w.room(qr_size + 25 * mm)
    widget = QrCodeWidget(content["verify_url"])
    x0, y0, x1, y1 = widget.getBounds()
    scale = [qr_size / (x1 - x0), 0, 0, qr_size / (y1 - y0), 0, 0]
    drawing = Drawing(qr_size, qr_size, transform=scale, initialFontName=w.font)  # not Helvetica
    drawing.add(widget)
    renderPDF.draw(drawing, w.pdf, left, w.y - qr_size)
    w.draw(left + qr_size + 6 * mm, w.y - 12 * mm, "扫码或访问以下网址核验本证明真伪：", 9)
    w.draw(left + qr_size + 6 * mm, w.y - 18 * mm, content["verify_url"], 7)
    w.pdf.showPage()
    w.pdf.save()
    if w.lacking:
        # Which characters is not logged: a rare character of a name is personal data.
        log.warning(
            "certificate font lacks characters; set TIMEBANK_CERTIFICATE_FONT_FILE to a fuller font",
            extra={"count": w.lacking},
        )
    return w.out.getvalue()


def filename(content: dict[str, Any]) -> str:
    """An ASCII file name for the download."""
    return f"certificate-{content['certificate_id']}.pdf"
