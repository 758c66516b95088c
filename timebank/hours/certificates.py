"""志愿服务记录证明: verifiable certificates of confirmed service hours.

A certificate lists the volunteer's confirmed service records with one organisation over a period.
Its content is stored as JSON together with the SHA-256 of its canonical form (UTF-8 JSON, sorted
keys, no spaces) and an ES256 signature of that form by the service key — the key that signs access
tokens, whose public half is published at ``/.well-known/jwks.json`` under ``key_id``.
``GET /api/v1/certificates/{id}/verify`` recomputes the canonical bytes from the stored content and
checks both: a certificate altered in the database, even by a superuser, fails verification.
The PDF is rendered from the stored content (reportlab, the built-in CID font STSong-Light) with a
QR code of the verification URL.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
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
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
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

FONT = "STSong-Light"
TITLE = "志愿服务记录证明"
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
        conn, data.volunteer_id, data.organisation_id, period.since, period.until
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
            "id_number_masked": await repo.id_number_masked(conn, vol.id),
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
    row = await repo.certificate(conn, certificate_id)
    if row is None or row.region_id != principal.region_id:
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


def render_pdf(content: dict[str, Any]) -> bytes:
    """The certificate as an A4 PDF in Chinese with a QR code of its verification URL."""
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, invariant=True)
    pdf.setTitle(TITLE)
    width, height = A4
    left, y = 22 * mm, height - 30 * mm

    def line(text: str, size: float = 11, gap: float = 7 * mm, x: float = left) -> None:
        nonlocal y
        if y < 30 * mm:
            pdf.showPage()
            y = height - 25 * mm
        pdf.setFont(FONT, size)
        pdf.drawString(x, y, text)
        y -= gap

    pdf.setFont(FONT, 22)
    pdf.drawCentredString(width / 2, y, TITLE)
    y -= 16 * mm
    vol, org, period = content["volunteer"], content["organisation"], content["period"]
    line(f"兹证明志愿者 {vol['name']}（身份证号 {vol['id_number_masked']}），")
    line(f"于 {period['from']} 至 {period['to']} 期间在 {org['name']} 参加志愿服务，")
    line(f"经核验的服务时长共计 {content['total_hours']} 小时（{content['total_minutes']} 分钟），明细如下：")
    y -= 2 * mm
    columns = (left, left + 28 * mm, left + 100 * mm, left + 136 * mm)
    pdf.setFont(FONT, 10)
    for x, head in zip(columns, ("日期", "活动", "服务类别", "时长（小时）"), strict=True):
        pdf.drawString(x, y, head)
    y -= 2 * mm
    pdf.line(left, y, width - left, y)
    y -= 5 * mm
    for rec in content["records"]:
        if y < 40 * mm:
            pdf.showPage()
            y = height - 25 * mm
        pdf.setFont(FONT, 10)
        pdf.drawString(columns[0], y, rec["date"])
        pdf.drawString(columns[1], y, rec["activity"][:22])
        pdf.drawString(columns[2], y, rec["category"][:10])
        pdf.drawString(columns[3], y, rec["hours"])
        y -= 6 * mm
    if not content["records"]:
        line("（该期间无经确认的服务记录）", 10)
    y -= 4 * mm
    line(f"出具单位：{org['name']}", 11)
    line(f"出具时间：{content['issued_at']}", 11)
    line(f"证明编号：{content['certificate_id']}", 9, 5 * mm)
    line(f"内容摘要（SHA-256）：{content.get('_sha256', '')}", 7, 5 * mm)
    line(f"签名密钥：{content['key_id']}（ES256）", 7, 5 * mm)
    qr_size = 38 * mm
    if y < qr_size + 25 * mm:
        pdf.showPage()
        y = height - 25 * mm
    widget = QrCodeWidget(content["verify_url"])
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(qr_size, qr_size, transform=[qr_size / (x1 - x0), 0, 0, qr_size / (y1 - y0), 0, 0])
    drawing.add(widget)
    renderPDF.draw(drawing, pdf, left, y - qr_size)
    pdf.setFont(FONT, 9)
    pdf.drawString(left + qr_size + 6 * mm, y - 12 * mm, "扫码或访问以下网址核验本证明真伪：")
    pdf.setFont("Helvetica", 7)
    pdf.drawString(left + qr_size + 6 * mm, y - 18 * mm, content["verify_url"])
    pdf.showPage()
    pdf.save()
    return out.getvalue()


def filename(content: dict[str, Any]) -> str:
    """An ASCII file name for the download."""
    return f"certificate-{content['certificate_id']}.pdf"
