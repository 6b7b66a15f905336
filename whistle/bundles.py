"""Case bundles: a case exported as ciphertext, to be opened offline with a private key.

A bundle is a zip file holding `case.json` (workflow metadata and the sealed items, base64)
and `files/<n>` (each attachment's sealed stream as stored). It contains nothing the
database does not: exporting needs no key, and the bundle is as safe to carry as a backup.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import unicodedata
import zipfile
from pathlib import Path

from sqlalchemy.orm import Session

from . import cases, crypto
from .intake import TIP_FIELDS
from .models import Attachment
from .storage import BlobStore

FORMAT = "whistle-case-bundle"
VERSION = 1


class BundleError(Exception):
    """The bundle is not a readable whistle case bundle."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _file_entry(index: int, attachment: Attachment) -> dict:
    return {"path": f"files/{index}", "wraps": _b64(attachment.wraps), "meta": _b64(attachment.meta)}


def export_case(session: Session, store: BlobStore, case_id: int, out: Path) -> Path:
    try:
        report = cases.get_case(session, case_id)
    except cases.CaseNotFound:
        raise BundleError(f"no case {case_id} (or it was purged under retention; only its statistics remain)") from None
    files: list[tuple[str, Attachment]] = []

    def entry(att: Attachment) -> dict:
        files.append((f"files/{len(files)}", att))
        return _file_entry(len(files) - 1, att)

    doc = {
        "format": FORMAT,
        "version": VERSION,
        "case": report.id,
        "category": report.category,
        "channel": report.channel.value,
        "status": report.status.value,
        "received_on": report.received_on.isoformat(),
        "content": _b64(report.content),
        "files": [entry(a) for a in report.attachments if a.message_id is None],
        "messages": [
            {
                "author": m.author.value,
                "on": m.created_on.isoformat(),
                "body": _b64(m.body),
                "files": [entry(a) for a in m.attachments],
            }
            for m in report.messages
        ],
    }
    out = Path(out)
    with zipfile.ZipFile(out, "x", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("case.json", json.dumps(doc, indent=1))
        for path, att in files:
            with store.open(att.blob_name) as src, zf.open(path, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
    return out


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


def open_bundle(bundle: Path, private_key: crypto.PrivateKey, out_dir: Path) -> list[Path]:
    """Decrypt a bundle into `out_dir`: report.txt, messages.txt and the files.

    Raises `BundleError` for a malformed bundle and `crypto.OpenError` if the key is not a
    recipient (or anything was tampered with).
    """
    try:
        zf = zipfile.ZipFile(bundle)
        doc = json.loads(zf.read("case.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BundleError(f"not a case bundle: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise BundleError("not a case bundle of a version this program reads")
    try:
        return _write_case(zf, doc, private_key, Path(out_dir))
    except (KeyError, TypeError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
        # binascii.Error and JSON errors are ValueErrors; OpenError passes through.
        raise BundleError(f"the bundle is damaged ({type(exc).__name__})") from None


def _write_case(zf: zipfile.ZipFile, doc: dict, private_key: crypto.PrivateKey, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    fields = json.loads(crypto.open_sealed(base64.b64decode(doc["content"], validate=True), private_key))
    if not isinstance(fields, dict):
        raise ValueError("content is not a record")
    lines = [
        f"Case {doc['case']} · category: {doc['category']} · channel: {doc['channel']}",
        f"Received on {doc['received_on']} · status: {doc['status']}",
        "",
    ]
    for name in TIP_FIELDS:
        lines += [f"## {name}", fields.get(name, ""), ""]
    report_txt = out_dir / "report.txt"
    report_txt.write_text("\n".join(lines), "utf-8")
    written.append(report_txt)

    used: set[str] = set()

    def write_file(entry: dict) -> str:
        meta = json.loads(crypto.open_sealed(base64.b64decode(entry["meta"]), private_key))
        name = safe_filename(meta.get("name", ""), "file")
        while name in used:
            name = "_" + name
        used.add(name)
        target = out_dir / "files" / name
        target.parent.mkdir(exist_ok=True)
        try:
            with zf.open(entry["path"]) as src, open(target, "wb") as dst:
                for chunk in crypto.open_file_stream(src, base64.b64decode(entry["wraps"]), private_key):
                    dst.write(chunk)
        except BaseException:
            # Chunks are written as they authenticate, so a truncated or altered stream
            # would leave a plausible prefix behind: remove it.
            target.unlink(missing_ok=True)
            raise
        written.append(target)
        return name

    attached = [write_file(e) for e in doc.get("files", [])]
    if attached:
        report_txt.write_text(report_txt.read_text("utf-8") + "## files\n" + "\n".join(attached) + "\n", "utf-8")
    thread = []
    for m in doc.get("messages", []):
        text = crypto.open_sealed(base64.b64decode(m["body"]), private_key).decode("utf-8")
        names = [write_file(e) for e in m.get("files", [])]
        thread.append(f"--- {m['author']} · {m['on']}" + (f" · files: {', '.join(names)}" if names else ""))
        thread.append(text)
        thread.append("")
    if thread:
        messages_txt = out_dir / "messages.txt"
        messages_txt.write_text("\n".join(thread), "utf-8")
        written.append(messages_txt)
    return written
