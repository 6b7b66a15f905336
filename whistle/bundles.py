"""Case bundles: a case exported as ciphertext, to be opened offline with a private key.

A bundle is a zip file holding `case.json` (workflow metadata, what binds the case's items
to it, and the sealed items, base64) and `files/<n>` (each attachment's sealed stream as
stored). It contains nothing the database does not: exporting needs no key, and the
bundle is as safe to carry as a backup. Version 2 (docs/crypto.md §15) carries each
item's place, so that it opens only where it belongs, and the officers' certificates, so
that `whistle decrypt --anchor` can check who signed each officer's message; version 1
bundles (made before) still open.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import unicodedata
import zipfile
from pathlib import Path
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, cases, crypto, items, keyring
from .intake import TIP_FIELDS
from .models import Attachment, Author, Channel, KeyRole, Message, Note, RecipientKey, Report
from .storage import BlobStore

FORMAT = "whistle-case-bundle"
VERSION = 2
READABLE_VERSIONS = (1, 2)


class BundleError(Exception):
    """The bundle is not a readable whistle case bundle."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text, validate=True)


def export_case(session: Session, store: BlobStore, case_id: int, out: Path) -> Path:
    """Write the case's bundle to `out` (which must not exist); the export is on the audit
    trail once the bundle is whole. Commits."""
    try:
        report = cases.get_case(session, case_id)
    except cases.CaseNotFound:
        raise BundleError(f"no case {case_id} (or it was purged under retention; only its statistics remain)") from None
    files: list[tuple[str, Attachment]] = []

    def entry(att: Attachment) -> dict:
        files.append((f"files/{len(files)}", att))
        return {"path": files[-1][0], "blob": att.blob_name, "wraps": _b64(att.wraps), "meta": _b64(att.meta)}

    certificates = session.scalars(
        select(RecipientKey.certificate).where(RecipientKey.role == KeyRole.OFFICER, RecipientKey.certificate.is_not(None))
    )
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "case": report.id,
        "category": report.category,
        "channel": report.channel.value,
        "status": report.status.value,
        "received_on": report.received_on.isoformat(),
        "uid": _b64(report.uid),
        "reporter_public_key": _b64(report.reporter_public_key),
        "content": _b64(report.content),
        "files": [entry(a) for a in report.attachments if a.message_id is None],
        "messages": [
            {
                "seq": m.seq,
                "author": m.author.value,
                "on": m.created_on.isoformat(),
                "body": _b64(m.body),
                "files": [entry(a) for a in m.attachments],
            }
            for m in report.messages
        ],
        "notes": [{"seq": n.seq, "on": n.created_on.isoformat(), "body": _b64(n.body)} for n in report.notes],
        "rating": None if report.rating is None else {
            "score": report.rating.score,
            "on": report.rating.rated_on.isoformat(),
            "comment": None if report.rating.comment is None else _b64(report.rating.comment),
        },
        "certificates": [_b64(c) for c in certificates],
    }
    out = Path(out)
    with zipfile.ZipFile(out, "x", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("case.json", json.dumps(doc, indent=1))
        for path, att in files:
            with store.open(att.blob_name) as src, zf.open(path, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
    audit.record(session, "case_export", None, report.id, files=len(files), via="command line")
    session.commit()
    return out


# Windows refuses these names, whatever their extension, in any case.
_DEVICE_NAMES = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)


def _keeps(ch: str) -> bool:
    # Letters, digits and combining marks: Thai vowel and tone marks are marks (Mn), not
    # letters, and dropping them would garble every Thai file name.
    return ch.isalnum() or ch in "_.- " or unicodedata.category(ch) in ("Mn", "Mc")


#: Names Windows gives to devices, whatever the extension and case: a file saved as
#: `CON.txt` or `com1.pdf` would open a device, or fail to save, on an officer's PC.
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"}
)


def safe_filename(name: str, fallback: str) -> str:
    """A file name that cannot escape the output folder, hide as a dotfile, or name a
    Windows device."""
    base = Path(name.replace("\\", "/")).name
    name = re.sub("\0+", "_", "".join(ch if _keeps(ch) else "\0" for ch in base)).strip(" .")
    if name.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        name = "_" + name
    return (name or fallback)[:120]


def open_bundle(bundle: Path, private_key: crypto.PrivateKey, out_dir: Path, anchor: keyring.Anchor | None = None) -> list[Path]:
    """Decrypt a bundle into `out_dir`: report.txt, messages.txt, notes.txt and the files.

    With the instance's `anchor`, each officer's message and note is checked against the
    certificates the bundle carries; without one, they are marked "signature not checked".
    Raises `BundleError` for a malformed bundle and `crypto.OpenError` if the key is not a
    recipient (or anything was tampered with).
    """
    try:
        zf = zipfile.ZipFile(bundle)
        doc = json.loads(zf.read("case.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BundleError(f"not a case bundle: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") not in READABLE_VERSIONS:
        raise BundleError("not a case bundle of a version this program reads")
    try:
        return _write_case(zf, doc, private_key, Path(out_dir), anchor)
    except (KeyError, TypeError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
        # binascii.Error and JSON errors are ValueErrors; OpenError passes through.
        raise BundleError(f"the bundle is damaged ({type(exc).__name__})") from None


def _case_of(doc: dict) -> Report:
    """The case as the bundle describes it, to open its items where they belong. A version
    1 bundle has no binding: its items are version 1 and open without one."""
    if doc["version"] == 1:
        return Report(id=doc.get("case"), uid=b"v1", reporter_public_key=bytes(crypto.PUBLIC_KEY_LEN), channel=Channel.WEB, received_on=dt.date(2000, 1, 1))
    return Report(
        id=doc.get("case"),
        uid=_unb64(doc["uid"]),
        reporter_public_key=_unb64(doc["reporter_public_key"]),
        channel=Channel(doc["channel"]),
        received_on=dt.date.fromisoformat(doc["received_on"]),
    )


def _signers(doc: dict, anchor: keyring.Anchor | None) -> Sequence[crypto.VerifyKey] | None:
    if anchor is None:
        return None
    signers = []
    for cert in doc.get("certificates", []):
        try:
            certified = crypto.check_certificate(anchor.verify_key, _unb64(cert))
        except crypto.BadSignature:
            continue
        if certified.public_key.key_id not in anchor.revoked:
            signers.append(certified.verify_key)
    return signers


def _signature_note(opened: items.Opened, legacy: bool) -> str:
    if opened.verified is True:
        return ""
    if legacy:
        return " · written before messages were signed"
    if opened.verified is None:
        return " · signature not checked (no --anchor given)"
    return " · SIGNATURE DOES NOT CHECK: not written by a certified officer"


def _write_case(zf: zipfile.ZipFile, doc: dict, private_key: crypto.PrivateKey, out_dir: Path, anchor: keyring.Anchor | None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = _case_of(doc)
    report.content = _unb64(doc["content"])
    signers = _signers(doc, anchor)
    written: list[Path] = []
    fields = items.open_tip(report, private_key)
    lines = [
        f"Case {doc['case']} · category: {doc['category']} · channel: {doc['channel']}",
        f"Received on {doc['received_on']} · status: {doc['status']}",
        "",
    ]
    for name in TIP_FIELDS:
        lines += [f"## {name}", str(fields.get(name, "")), ""]
    report_txt = out_dir / "report.txt"
    report_txt.write_text("\n".join(lines), "utf-8")
    written.append(report_txt)

    used: set[str] = set()

    def write_file(entry: dict, message: Message | None) -> str:
        attachment = Attachment(blob_name=entry.get("blob") or "", meta=_unb64(entry["meta"]), wraps=_unb64(entry["wraps"]))
        if doc["version"] == 1:
            original, context = json.loads(crypto.open_sealed(attachment.meta, private_key)).get("name"), None
        else:
            original = items.open_file_meta(report, attachment, private_key, items.parent_slot(message)).name
            context = items.file_context(report, attachment)
        name = safe_filename(str(original or ""), "file")
        while name in used:
            name = "_" + name
        used.add(name)
        target = out_dir / "files" / name
        target.parent.mkdir(exist_ok=True)
        try:
            with zf.open(entry["path"]) as src, open(target, "wb") as dst:
                for chunk in crypto.open_file_stream(src, attachment.wraps, private_key, context):
                    dst.write(chunk)
        except BaseException:
            # Chunks are written as they authenticate, so a truncated or altered stream
            # would leave a plausible prefix behind: remove it.
            target.unlink(missing_ok=True)
            raise
        written.append(target)
        return name

    attached = [write_file(e, None) for e in doc.get("files", [])]
    if attached:
        report_txt.write_text(report_txt.read_text("utf-8") + "## files\n" + "\n".join(attached) + "\n", "utf-8")
    thread = []
    for m in doc.get("messages", []):
        message = Message(seq=int(m.get("seq") or 0), author=Author(m["author"]), body=_unb64(m["body"]))
        opened = items.open_message(report, message, private_key, signers)
        if not opened.readable:
            raise crypto.OpenError()
        names = [write_file(e, message) for e in m.get("files", [])]
        note = _signature_note(opened, opened.legacy) if message.author is Author.OFFICER else ""
        if opened.adds and message.author is Author.REPORTER:
            note += " · added to the report"
        thread.append(f"--- {m['author']} · {m['on']}{note}" + (f" · files: {', '.join(names)}" if names else ""))
        thread.append(opened.text)
        thread.append("")
    if thread:
        messages_txt = out_dir / "messages.txt"
        messages_txt.write_text("\n".join(thread), "utf-8")
        written.append(messages_txt)
    notes = []
    for n in doc.get("notes", []):
        opened = items.open_note(report, Note(seq=int(n["seq"]), body=_unb64(n["body"])), private_key, signers)
        if not opened.readable:
            raise crypto.OpenError()
        notes += [f"--- note · {n['on']}{_signature_note(opened, opened.legacy)}", opened.text, ""]
    if notes:
        notes_txt = out_dir / "notes.txt"
        notes_txt.write_text("\n".join(notes), "utf-8")
        written.append(notes_txt)
    rating = doc.get("rating")
    if rating:
        lines = [f"The reporter rated the handling {int(rating['score'])} out of 5 on {rating['on']}."]
        if rating.get("comment"):
            lines += ["", items.open_rating_comment(report, _unb64(rating["comment"]), private_key)]
        rating_txt = out_dir / "rating.txt"
        rating_txt.write_text("\n".join(lines) + "\n", "utf-8")
        written.append(rating_txt)
    return written
