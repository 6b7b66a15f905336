"""Benchmark: the real server's memory while a 1 GiB file is uploaded to it.

Uploads are sealed as Werkzeug's multipart parser streams them, so the server's memory
should stay flat whatever the file's size, and no plaintext byte should reach the disk.
This starts the real thing and checks both:

1. `whistle init` into a temporary folder (WHISTLE_UNSAFE_FAST_KDF=1: cheap key files),
   then `whistle serve` on a free loopback port, with WHISTLE_MAX_FILE_BYTES above the
   upload's size and TMPDIR pointed at an empty folder of its own.
2. One small warm-up submission (with a small file), so that what a first request loads
   once (templates, translations, the database connection) is not counted as upload
   memory. Then the idle resident memory (VmRSS), and the peak counter (VmHWM) reset.
3. GET /report with a cookie-keeping client for the CSRF token, then POST /report as
   multipart/form-data with every required field and a 1 GiB file, the body generated on
   the fly in 1 MiB blocks (the client never holds the file), with a Content-Length as a
   browser sends it. Meanwhile the server's VmRSS and open files are sampled.
4. Checks: HTTP 200 with a tracking code on the receipt; one new blob of exactly the
   sealed size of 1 GiB; that blob opens with the officer key to the bytes sent; no new
   file in the server's temp folder and no other file opened by the server during the
   upload; the bytes the server wrote (wchar) about one copy of the file, not two.

The reference is the server's own idle memory, measured in the same run. Target: peak
(VmHWM) at most 64 MiB above idle. Exits 1 on a missed target or a failed check.

The tracking code's Argon2id derivation allocates its own memory (m = 64 MiB in
production), once per submission whatever the files, and capped by argon2_concurrency.
It is not upload memory, so by default this instance uses a cheap code cost; with
--real-code-cost the production cost is used and the allowance grows by m.

    .venv/bin/python bench/upload_memory.py [--mib 1024] [--real-code-cost] [--no-verify]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MiB = 1024 * 1024
TARGET_MIB = 64
BLOCK = MiB
#: Argon2 memory of the cheap code cost used by default (KiB).
CHEAP_CODE_COST = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
PRODUCTION_CODE_MEMORY_MIB = 64

TIP = {
    "category": "procurement",
    "what": "หัวหน้าฝ่ายพัสดุแบ่งซื้อแบ่งจ้างโครงการซ่อมถนนเป็นหกสัญญาเพื่อเลี่ยงการประกวดราคา "
    "และผู้รับจ้างทุกสัญญาเป็นห้างหุ้นส่วนเดียวกัน",
    "people": "หัวหน้าฝ่ายพัสดุ กองช่าง; รองนายกเทศมนตรีคนที่หนึ่ง",
    "when": "มีนาคม 2569",
    "where": "สำนักงานเทศบาล อาคาร 2",
    "how_known": "เห็นเอกสารด้วยตนเอง",
    "evidence": "สำเนาใบสั่งจ้าง และวิดีโอการตรวจรับงาน (ไฟล์แนบ)",
}

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
_RECEIPT = re.compile(r'<p class="code"[^>]*>([\d ]+)</p>')
_PASSPHRASE = re.compile(r'First officer key.*?passphrase:\s+(\S+)', re.S)


# --------------------------------------------------------------------------- process


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and the like from /proc/PID/status, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Vm"):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def proc_wchar(pid: int) -> int:
    with open(f"/proc/{pid}/io") as fh:
        for line in fh:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise RuntimeError("no wchar")


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current VmRSS (Linux 4.0+: write 5 to clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def open_files(pid: int) -> set[str]:
    found = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return found
    for name in names:
        try:
            found.add(os.readlink(f"{fd_dir}/{name}"))
        except OSError:
            pass
    return found


def files_under(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def whistle_command() -> list[str]:
    script = Path(sys.executable).parent / "whistle"
    return [str(script)] if script.exists() else [sys.executable, "-m", "whistle.cli"]


class Sampler(threading.Thread):
    """Samples the server's VmRSS and open files while the upload runs."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.max_rss_kib = 0
        self.files: set[str] = set()
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.max_rss_kib = max(self.max_rss_kib, proc_status(self.pid)["VmRSS"])
                self.files |= open_files(self.pid)
                self.samples += 1
            except (OSError, KeyError):
                pass
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# --------------------------------------------------------------------------- client


class Browser:
    """Just enough of a browser: one connection at a time, keeps cookies."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.cookies: dict[str, str] = {}

    def _headers(self) -> dict[str, str]:
        h = {"Host": f"127.0.0.1:{self.port}", "Accept-Language": "th"}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return h

    def _keep(self, response: http.client.HTTPResponse) -> None:
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]

    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request("GET", path, headers=self._headers())
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            self._keep(response)
            return response.status, body
        finally:
            conn.close()

    def csrf(self) -> str:
        status, page = self.get("/report")
        match = _CSRF.search(page)
        if status != 200 or not match:
            raise SystemExit(f"GET /report: HTTP {status}, no CSRF token")
        return match.group(1)

    def post_report(self, fields: dict[str, str], filename: str, blocks, file_size: int) -> tuple[int, str, float]:
        """POST /report with one file whose bytes come from the iterable `blocks`."""
        boundary = "----whistlebench" + os.urandom(12).hex()
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
            for name, value in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.putrequest("POST", "/report", skip_host=True, skip_accept_encoding=True)
            for k, v in self._headers().items():
                conn.putheader(k, v)
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(len(head) + file_size + len(tail)))
            conn.endheaders()
            start = time.perf_counter()
            sent = 0
            try:
                conn.send(head)
                for block in blocks:
                    conn.send(block)
                    sent += len(block)
                conn.send(tail)
            except OSError as exc:  # the server answered early; read what it said
                print(f"  (send stopped after {sent} file bytes: {exc})")
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            elapsed = time.perf_counter() - start
            self._keep(response)
            if sent != file_size:
                return -1, body, elapsed
            return response.status, body, elapsed
        finally:
            conn.close()


# --------------------------------------------------------------------------- run


def file_blocks(pool: list[bytes], size: int):
    """`size` bytes, generated block by block from a small pool of random blocks."""
    sent, i = 0, 0
    while sent < size:
        block = pool[i % len(pool)][: size - sent]
        yield block
        sent += len(block)
        i += 1


def expected_at(pool: list[bytes], offset: int, length: int) -> bytes:
    """The plaintext bytes at `offset` (a read must not cross a block boundary)."""
    block = pool[(offset // BLOCK) % len(pool)]
    start = offset % BLOCK
    assert start + length <= BLOCK
    return block[start : start + length]


def verify_blob(instance: Path, blob: Path, passphrase: str, pool: list[bytes], size: int) -> bool:
    """Open the stored blob with the officer's key and compare it with what was sent."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from whistle import crypto, keyring
    from whistle.models import Attachment

    key = keyring.unlock(keyring.read_document(instance / "private-keys" / "officer-1.key"), passphrase)
    engine = create_engine(f"sqlite:///{instance / 'whistle.sqlite3'}")
    try:
        with Session(engine) as session:
            wraps = session.scalar(select(Attachment.wraps).where(Attachment.blob_name == blob.name))
    finally:
        engine.dispose()
    if wraps is None:
        print("  no attachment row names the blob")
        return False
    offset = 0
    with open(blob, "rb") as fh:
        first_sealed = fh.read(len(crypto.MAGIC) + 3 + 64)
        if pool[0][:64] in first_sealed:
            print("  plaintext visible at the start of the blob")
            return False
        fh.seek(0)
        for chunk in crypto.open_file_stream(fh, wraps, key):
            if chunk != expected_at(pool, offset, len(chunk)):
                print(f"  content differs at offset {offset}")
                return False
            offset += len(chunk)
    return offset == size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="upload size in MiB (default 1024)")
    parser.add_argument("--real-code-cost", action="store_true", help="keep the production Argon2 cost (adds its m to the allowance)")
    parser.add_argument("--no-verify", action="store_true", help="skip decrypting the stored blob")
    parser.add_argument("--timeout", type=int, default=900, help="give up after this many seconds (default 900)")
    args = parser.parse_args()

    from whistle import crypto

    size = args.mib * MiB
    allowance_mib = TARGET_MIB + (PRODUCTION_CODE_MEMORY_MIB if args.real_code_cost else 0)

    def on_alarm(*_):
        raise TimeoutError(f"gave up after {args.timeout} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.timeout)

    tmp = Path(tempfile.mkdtemp(prefix="whistle-bench-upload-"))
    server: subprocess.Popen | None = None
    failures: list[str] = []
    try:
        instance, recovery, server_tmp = tmp / "instance", tmp / "recovery", tmp / "server-tmp"
        server_tmp.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHISTLE_")}
        env.update(
            WHISTLE_UNSAFE_FAST_KDF="1",
            WHISTLE_MAX_FILE_BYTES=str(size + 64 * MiB),
            TMPDIR=str(server_tmp),
            PYTHONUNBUFFERED="1",
        )
        init = subprocess.run(
            [*whistle_command(), "init", "--instance", str(instance), "--recovery-dir", str(recovery)],
            env=env, capture_output=True, text=True, timeout=120,
        )
        if init.returncode != 0:
            raise SystemExit(f"whistle init failed:\n{init.stdout}\n{init.stderr}")
        passphrase = _PASSPHRASE.search(init.stdout)
        if not args.real_code_cost:
            with open(instance / "config.toml", "a", encoding="utf-8") as fh:
                fh.write("\n[code_cost]\n" + "".join(f"{k} = {v}\n" for k, v in CHEAP_CODE_COST.items()))

        port = free_port()
        log = open(tmp / "server.log", "w")
        server = subprocess.Popen(
            [*whistle_command(), "serve", "--instance", str(instance), "--port", str(port), "--officer-port", "0"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        browser = Browser(port, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"whistle serve exited:\n{(tmp / 'server.log').read_text()}")
            try:
                if browser.get("/")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("whistle serve did not answer within 60 s")
            time.sleep(0.2)
        pid = server.pid
        cold_idle = proc_status(pid)["VmRSS"]

        # Warm-up: a small submission with a small file, through the same path.
        warm = [os.urandom(256 * 1024)]
        status, body, _ = browser.post_report({**TIP, "csrf_token": browser.csrf()}, "warmup.bin", warm, len(warm[0]))
        if status != 200 or not _RECEIPT.search(body):
            raise SystemExit(f"warm-up submission failed: HTTP {status}\n{body[:1500]}")

        fields = {**TIP, "csrf_token": browser.csrf()}
        blobs_dir = instance / "blobs"
        blobs_before = {p.name for p in blobs_dir.iterdir() if p.is_file()}
        tmp_before = files_under(server_tmp)
        instance_before = files_under(instance)
        pool = [os.urandom(BLOCK) for _ in range(4)]
        time.sleep(1.0)
        idle = proc_status(pid)
        peak_was_reset = reset_peak(pid)
        hwm_start = proc_status(pid)["VmHWM"]
        wchar_before = proc_wchar(pid)

        sampler = Sampler(pid)
        sampler.start()
        status, body, elapsed = browser.post_report(fields, "evidence-video.bin", file_blocks(pool, size), size)
        after = proc_status(pid)
        sampler.stop()
        wchar = proc_wchar(pid) - wchar_before

        idle_kib = idle["VmRSS"]
        # Without a reset, VmHWM still holds start-up's and warm-up's peaks: compare anyway.
        peak_kib = after["VmHWM"]
        above_mib = (peak_kib - idle_kib) / 1024
        sealed = crypto.sealed_file_size(size)

        # ---- checks
        code = _RECEIPT.search(body)
        if status != 200 or not code:
            failures.append(f"upload answered HTTP {status} without a receipt: {body[:500]!r}")
        new_blobs = [blobs_dir / n for n in {p.name for p in blobs_dir.iterdir() if p.is_file()} - blobs_before]
        if len(new_blobs) != 1:
            failures.append(f"expected one new blob, found {len(new_blobs)}")
        elif new_blobs[0].stat().st_size != sealed:
            failures.append(f"blob is {new_blobs[0].stat().st_size} bytes, expected {sealed}")
        left_incoming = list((blobs_dir / "incoming").iterdir())
        if left_incoming:
            failures.append(f"{len(left_incoming)} file(s) left in blobs/incoming")
        new_tmp = files_under(server_tmp) - tmp_before
        if new_tmp:
            failures.append(f"new files in the server's temp folder: {sorted(new_tmp)}")
        allowed_new = {str(p) for p in new_blobs} | {str(instance / "whistle.sqlite3-wal"), str(instance / "whistle.sqlite3-shm")}
        new_instance = files_under(instance) - instance_before - allowed_new
        if new_instance:
            failures.append(f"unexpected new files in the instance: {sorted(new_instance)}")
        stray = sorted(
            f for f in sampler.files
            if f.startswith("/")
            and not f.startswith(("/dev/", "/proc/"))
            and not f.startswith(str(blobs_dir / "incoming") + "/")
            and not f.startswith(str(instance / "whistle.sqlite3"))
            and f != str(tmp / "server.log")  # its own stdout, opened by this script
        )
        if stray:
            failures.append(f"the server had other files open during the upload: {stray}")
        if wchar > sealed * 1.1 + 8 * MiB:
            failures.append(f"the server wrote {wchar / MiB:.0f} MiB for a {size / MiB:.0f} MiB file: a second copy?")
        verified = None
        if not args.no_verify and not failures:
            if passphrase is None:
                failures.append("could not read the officer passphrase from `whistle init`")
            else:
                verified = verify_blob(instance, new_blobs[0], passphrase.group(1), pool, size)
                if not verified:
                    failures.append("the stored blob does not open to the bytes sent")

        # ---- report
        kdf = "production (t=3, m=64 MiB, p=4)" if args.real_code_cost else "cheap (m=1 MiB; see docstring)"
        print(f"upload_memory: {size / MiB:.0f} MiB file to `whistle serve` on loopback; tracking-code Argon2 cost {kdf}")
        print(f"  server RSS: cold idle {cold_idle / 1024:.1f} MiB, idle after warm-up {idle_kib / 1024:.1f} MiB "
              f"(VmHWM reset: {'yes' if peak_was_reset else 'no'}, at {hwm_start / 1024:.1f} MiB)")
        print(f"  peak during the upload: VmHWM {peak_kib / 1024:.1f} MiB, sampled VmRSS max "
              f"{sampler.max_rss_kib / 1024:.1f} MiB ({sampler.samples} samples), RSS after {after['VmRSS'] / 1024:.1f} MiB")
        print(f"  upload: {elapsed:.1f} s, {size / MiB / elapsed:.0f} MiB/s; server wrote {wchar / MiB:.1f} MiB "
              f"(sealed file {sealed / MiB:.1f} MiB)")
        if new_blobs:
            print(f"  stored blob: {new_blobs[0].stat().st_size} bytes (expected {sealed}); "
                  f"opens to the bytes sent: {'yes' if verified else 'not checked' if verified is None else 'NO'}")
        print(f"  receipt: HTTP {status}, tracking code {'shown' if code else 'MISSING'}; "
              f"new temp files: {len(new_tmp)}; other files opened: {len(stray)}")
        ok = above_mib <= allowance_mib and not failures
        print(f"  peak above idle = {above_mib:.1f} MiB (target <= {allowance_mib} MiB) "
              f"= {above_mib / allowance_mib:.2f} of the allowance; file/peak-above-idle = "
              f"{size / MiB / max(above_mib, 0.1):.0f}x {'OK' if ok else 'MISSED'}")
        for failure in failures:
            print(f"  FAILED: {failure}")
        return 0 if ok else 1
    finally:
        signal.alarm(0)
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
