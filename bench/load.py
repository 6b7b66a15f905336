"""Load: many reporters at once against the production stack, with the real Argon2id cost.

Starts gunicorn with deploy/gunicorn.conf.py (its own worker count, threads and timeouts)
on a free loopback port, against PostgreSQL (a schema of its own, dropped afterwards) and
Redis (a database number of its own) for the rate limiter, with the real tracking-code
cost. Then:

1. measures one `whistle.codes.derive` at the real cost in this process (median of a few),
   and from it the machine's bound on derivations per second;
2. phase 1: `--reporters` simulated reporters, each with its own cookie jar and its own
   X-Forwarded-For (so each is a separate client for the limiter), submit a tip and check
   its code in a loop for `--seconds` (and at most `--max-requests` requests);
3. phase 2: the same reporters again, while `--flood` threads send well-formed wrong codes
   (half in the current 32-digit layout with a made-up tag, half in the older 28-digit
   one), each request from a new address (so no per-address limit ever stops them);
4. checks that every code handed out opens its case (POST /status -> 303) and that the
   stored tip, opened with the officer's key, is the one sent with it; then that one
   address going over the status-check limit gets its 429;
5. probes, one check at a time, `--probe` wrong codes (a stored case's lookup, another
   secret, the right tag) against as many unknown ones (a lookup no case has, the right
   tag); then restarts the server with a higher cost (t=4) and probes again while every
   case still has the old one, and opens ten cases to move them to the new cost.

Throughput counts derivations: stored submissions plus status checks that ran Argon2 (an
opened case, or a wrong code's 404). The targets: phase 1 >= 0.8 x the bound; under the
flood, at least 95% of the reporters' status checks open their case and stored tips keep
at least 80% of their phase-1 rate. Exit status 1 if one is missed or any answer other
than the intended ones came back: 429 from the limiter, and on status checks the "busy"
page (a check turned away by the Argon2 gate or a check budget), which is counted apart
and may be at most 2% of phase 1's checks.

    .venv/bin/python bench/load.py [--seconds 60] [--reporters 6] [--flood 16]

Loopback only; every loop is bounded in time and count. Needs PostgreSQL
(WHISTLE_TEST_POSTGRES, default postgresql+psycopg://postgres@127.0.0.1:5432/test) and
Redis (WHISTLE_LOAD_REDIS, default redis://127.0.0.1:6379/14).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (bench/load.py): the project root on the path makes `whistle` and
# `tests.live` (the HTTP test support this shares with the deployment tests) importable.
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from tests import live  # noqa: E402
from whistle import codes, crypto, keyring  # noqa: E402

POSTGRES_URL = os.environ.get("WHISTLE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WHISTLE_LOAD_REDIS", "redis://127.0.0.1:6379/14")
CODE = re.compile(r'<p class="code"[^>]*>([\d ]+)</p>')
TIP = {
    "category": "procurement",
    "people": "Head of procurement, Division of Public Works",
    "when": "March 2569",
    "where": "Town hall, building 2",
    "how_known": "I saw the documents",
    "evidence": "Copies of the purchase orders",
}
TARGET = 0.8
#: Under the flood: the reporters' status checks that must open their case, and the share of
#: phase 1's stored tips per second that must still be stored.
FLOOD_OPEN_TARGET = 0.95
FLOOD_SUBMIT_TARGET = 0.8
#: The Argon2 gate's answer to a check that waited over 2 s for a slot is the status page
#: itself (its code form, with a "busy" notice) with a 503; any other 503 is an error page.
BUSY = 'name="code"'
#: Share of the reporters' status checks that may get "busy" in phase 1 (no flood): at
#: saturation a check occasionally waits past the gate's 2 s; more means the gate, not the
#: CPU, is what limits real reporters.
MAX_BUSY_SHARE = 0.02


# --------------------------------------------------------------------------- HTTP client


class Browser(live.Browser):
    """A reporter's browser: its own cookies, its own (forwarded) address."""

    def __init__(self, port: int, address: str, timeout: float = 60) -> None:
        super().__init__(port, timeout=timeout, forwarded_for=address)

    def check(self, code: str) -> int:
        """The status of POST /status with this code (0 if the form did not load)."""
        token = self.token("/status")
        return self.post("/status", {"code": code, "csrf_token": token})[0] if token else 0


def wrong_code(n: int) -> str:
    """A well-formed code (right length, right check digit) that opens nothing: every other
    one in the current layout (with a made-up tag), the others in the 28-digit layout."""
    length = codes.CODE_DIGITS if n % 2 else codes.V1_CODE_DIGITS
    body = "".join(secrets.choice("0123456789") for _ in range(length - 1))
    return body + codes.damm_digit(body)


# --------------------------------------------------------------------------- recording


class Recorder:
    def __init__(self, max_requests: int) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, Counter] = defaultdict(Counter)
        self.count = 0
        self.max_requests = max_requests

    def take(self) -> bool:
        with self.lock:
            if self.count >= self.max_requests:
                return False
            self.count += 1
            return True

    def add(self, kind: str, status: int | str, seconds: float) -> None:
        with self.lock:
            self.status[kind][status] += 1
            if status in (200, 303, 404):
                self.latency[kind].append(seconds)


def timed(rec: Recorder, kind: str, call):
    started = time.perf_counter()
    try:
        status, _, page = call()
    except (OSError, http.client.HTTPException) as exc:
        rec.add(kind, type(exc).__name__, time.perf_counter() - started)
        return None, ""
    if status == 503 and BUSY in page:  # the Argon2 gate turned a check away (by design)
        rec.add(kind, "503 busy", time.perf_counter() - started)
    else:
        rec.add(kind, status, time.perf_counter() - started)
    return status, page


def reporter_loop(port: int, index: int, phase: str, until: float, rec: Recorder, given: list, lock: threading.Lock):
    browser = Browser(port, f"10.{1 + index // 250}.{index % 250}.{7 if phase == 'base' else 9}")
    n = 0
    while time.monotonic() < until and rec.take():
        n += 1
        status, page = timed(rec, "GET /report", lambda: browser.get("/report"))
        match = live.CSRF.search(page) if status == 200 else None
        if not match:
            time.sleep(0.2)
            continue
        marker = f"load {phase} reporter {index} tip {n} {uuid.uuid4().hex}"
        fields = {**TIP, "what": marker, "csrf_token": match.group(1)}
        status, page = timed(rec, "submit", lambda: browser.post("/report", fields))
        code_match = CODE.search(page) if status == 200 else None
        if not code_match:
            time.sleep(0.2)
            continue
        code = code_match.group(1)
        with lock:
            given.append((code, marker))
        if time.monotonic() >= until or not rec.take():
            break
        status, page = timed(rec, "GET /status", lambda: browser.get("/status"))
        match = live.CSRF.search(page) if status == 200 else None
        if not match:
            continue
        token = match.group(1)
        timed(rec, "status", lambda: browser.post("/status", {"code": code, "csrf_token": token}))


def flood_loop(port: int, index: int, until: float, rec: Recorder, addresses: itertools.count, malformed: bool):
    browser = Browser(port, f"172.16.{index}.1", timeout=60)
    token = browser.token("/status")
    while token and time.monotonic() < until and rec.take():
        n = next(addresses)
        address = f"100.{64 + (n >> 16) % 64}.{(n >> 8) & 255}.{n & 255}"  # a new one each time
        code = "0000" if malformed else wrong_code(n)
        timed(rec, "flood", lambda: browser.post("/status", {"code": code, "csrf_token": token}, forwarded_for=address))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (all their threads) so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def server_pids(master: int) -> list[int]:
    return [master, *live.children(master)]


def run_phase(port: int, args, phase: str, seconds: float, flood: int, given: list) -> tuple[Recorder, float]:
    rec = Recorder(args.max_requests)
    lock = threading.Lock()
    started = time.monotonic()
    until = started + seconds
    addresses = itertools.count(1 if phase == "base" else 1 << 20)
    threads = [
        threading.Thread(target=reporter_loop, args=(port, i, phase, until, rec, given, lock), daemon=True)
        for i in range(args.reporters)
    ]
    threads += [
        threading.Thread(target=flood_loop, args=(port, i, until, rec, addresses, args.malformed_flood), daemon=True)
        for i in range(flood)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 90)
    elapsed = time.monotonic() - started
    if any(t.is_alive() for t in threads):
        rec.add("client", "thread still running", 0.0)
    return rec, elapsed


# --------------------------------------------------------------------------- probes


def time_wrong_and_unknown(port: int, server_key: bytes, given: list[tuple[str, str]], stored: set[str], n: int, round_: int) -> dict:
    """Time `n` wrong codes against `n` unknown ones, interleaved, one at a time, each from
    an address of its own. Wrong: a stored case's lookup (a different case each time, so no
    lookup's budget runs out), another secret, the right tag. Unknown: a lookup no case
    has, the right tag. `auc` is the chance that a wrong code took longer than an unknown
    one: 0.5 when they cannot be told apart, 0 or 1 when fully separated."""
    cases = [codes.parse_code(code) for code, _marker in given][:n]
    times: dict[str, list[float]] = {"wrong": [], "unknown": []}
    statuses: Counter = Counter()
    for i, case in enumerate(cases):
        secret = "".join(secrets.choice("0123456789") for _ in range(codes.SECRET_DIGITS))
        lookup = case.lookup
        while lookup in stored:
            lookup = "".join(secrets.choice("0123456789") for _ in range(codes.LOOKUP_DIGITS))
        made = {
            "wrong": codes.TrackingCode(case.lookup, secret, codes.code_tag(server_key, case.lookup, secret)),
            "unknown": codes.TrackingCode(lookup, case.secret, codes.code_tag(server_key, lookup, case.secret)),
        }
        for kind in ("wrong", "unknown") if i % 2 else ("unknown", "wrong"):
            browser = Browser(port, f"198.19.{round_ * 16 + i // 250}.{i % 250 + 1}")
            token = browser.token("/status")
            started = time.perf_counter()
            status = browser.post("/status", {"code": made[kind].display(), "csrf_token": token})[0]
            times[kind].append(time.perf_counter() - started)
            statuses[f"{kind} {status}"] += 1
    pairs = [(w, u) for w in times["wrong"] for u in times["unknown"]]
    auc = sum(1.0 if w > u else 0.5 if w == u else 0.0 for w, u in pairs) / max(1, len(pairs))
    return {
        "wrong_ms": [percentile(times["wrong"], p) * 1000 for p in (10, 50, 90)],
        "unknown_ms": [percentile(times["unknown"], p) * 1000 for p in (10, 50, 90)],
        "auc": auc,
        "statuses": dict(statuses),
    }


def print_probe(label: str, result: dict) -> None:
    w, u = result["wrong_ms"], result["unknown_ms"]
    print(f"{label}: wrong {w[0]:.0f} / {w[1]:.0f} / {w[2]:.0f} ms, unknown {u[0]:.0f} / {u[1]:.0f} / {u[2]:.0f} ms"
          f" (p10 / p50 / p90); P(wrong slower) = {result['auc']:.2f}; answers {result['statuses']}")


# --------------------------------------------------------------------------- set-up


def start_server(env: dict[str, str], work: Path, port: int) -> tuple[subprocess.Popen | None, Path]:
    """gunicorn with the shipped config; None if it did not answer within a minute."""
    log = work / "gunicorn.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
         "--error-logfile", str(log)],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if Browser(port, "10.0.0.1", timeout=10).get("/")[0] == 200:
                return server, log
        except OSError:
            time.sleep(0.2)
    live.stop(server, timeout=10, kill_timeout=5)
    return None, log


def measure_derivation(runs: int) -> tuple[float, float]:
    """Median wall and CPU (all threads of this process) seconds of one real derivation."""
    cost = codes.DEFAULT_COST
    salt = codes.new_salt()
    codes.derive("1" * codes.SECRET_DIGITS, salt, cost)  # warm-up
    walls, cpus = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        codes.derive(secrets.token_hex(10), salt, cost)
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="length of each phase (default 60)")
    parser.add_argument("--reporters", type=int, default=6, help="concurrent simulated reporters, each always busy (default 6)")
    parser.add_argument("--flood", type=int, default=16, help="threads sending wrong codes in phase 2 (default 16; 0: skip)")
    parser.add_argument("--max-requests", type=int, default=40_000, help="cap on requests per phase (default 40000)")
    parser.add_argument("--derivations", type=int, default=7, help="derivations timed for the bound (default 7)")
    parser.add_argument("--status-limit", type=int, default=300, help="status checks per hour per address (default 300)")
    parser.add_argument("--malformed-flood", action="store_true",
                        help="the flood sends a malformed code (answered 400 by the form): what any flood of requests costs")
    parser.add_argument("--probe", type=int, default=30, help="wrong and unknown codes timed at each cost (default 30; 0: skip)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 600 or not 1 <= args.reporters <= 200 or not 0 <= args.flood <= 200:
        parser.error("--seconds 1..600, --reporters 1..200, --flood 0..200")

    import redis

    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="whistle-load-"))
    schema = f"whistle_load_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 5})
    store = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)

    def clear_limiter() -> None:
        for key in store.scan_iter("LIMITER*", count=500):
            store.delete(key)

    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        store.ping()
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL ({POSTGRES_URL}) and Redis ({REDIS_URL}) must both be running: {type(exc).__name__}: {exc}")
        shutil.rmtree(work, ignore_errors=True)
        return 2
    clear_limiter()
    sep = "&" if "?" in POSTGRES_URL else "?"
    db_url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    port = live.free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "LANG": "C.UTF-8",
        # Only the key files' passphrase KDF is cheap; the tracking-code cost stays real.
        "WHISTLE_UNSAFE_FAST_KDF": "1",
        "WHISTLE_INSTANCE": str(work / "instance"),
        "WHISTLE_DATABASE_URL": db_url,
        "WHISTLE_RATELIMIT_STORAGE_URI": REDIS_URL,
        "WHISTLE_TRUSTED_PROXIES": "1",
        "WHISTLE_RATELIMIT_SUBMIT": "1000 per hour",
        "WHISTLE_RATELIMIT_STATUS": f"{args.status_limit} per hour",
        "WHISTLE_GUNICORN_BIND": f"127.0.0.1:{port}",
    }
    whistle = [sys.executable, "-c", "from whistle.cli import main; main()"]
    server = None
    failures: list[str] = []
    try:
        init = subprocess.run([*whistle, "init", "--recovery-dir", str(work / "recovery")], env=env, cwd=work,
                              capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            print(init.stdout, init.stderr)
            return 2
        subprocess.run([*whistle, "db", "upgrade"], env=env, cwd=work, capture_output=True, text=True, timeout=120, check=True)
        passphrase = re.search(r"officer-1.*?passphrase:\s+(\S+)", init.stdout, re.S).group(1)
        officer = keyring.unlock(keyring.read_document(work / "instance" / "private-keys" / "officer-1.key"), passphrase)

        server, log = start_server(env, work, port)
        if server is None:
            print("gunicorn did not start:\n" + (log.read_text(errors="replace")[-3000:] if log.exists() else ""))
            return 2
        workers = sum(1 for line in log.read_text(errors="replace").splitlines() if "Booting worker" in line)
        # Warm every worker (imports, templates, first connection) outside the timing.
        warm = [threading.Thread(target=lambda: Browser(port, "10.0.0.2").get("/report")) for _ in range(8)]
        for t in warm:
            t.start()
        for t in warm:
            t.join(timeout=30)

        wall, cpu = measure_derivation(args.derivations)
        bound_cpu = cores / cpu  # derivations per second if every core did nothing else
        bound_wall = cores / wall  # the same formula with one derivation's wall time
        load_before = os.getloadavg()
        print(f"machine: {machine()}")
        threads = re.search(r"(?m)^threads = (\d+)", (ROOT / "deploy" / "gunicorn.conf.py").read_text()).group(1)
        print(f"gunicorn: {workers} workers (shipped config: gthread, {threads} threads), argon2_concurrency 2 per worker")
        print(f"derivation (t=3, m=64 MiB, p=4), median of {args.derivations}: {wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU")
        print(f"bound: {cores} cores / {cpu * 1000:.1f} ms CPU = {bound_cpu:.2f} derivations/s"
              f"  (cores / wall time: {bound_wall:.2f}/s; load average before: {load_before[0]:.2f})")

        given: list[tuple[str, str]] = []
        results = {}
        phases = [("base", 0)] + ([("flood", args.flood)] if args.flood else [])
        for phase, flood in phases:
            clear_limiter()
            print(f"\nphase {phase}: {args.reporters} reporters" + (f" + {flood} flood threads" if flood else "")
                  + f" for {args.seconds:.0f} s ...", flush=True)
            pids = server_pids(server.pid)
            server0, client0 = cpu_seconds(pids), cpu_seconds([os.getpid()])
            rec, elapsed = run_phase(port, args, phase, args.seconds, flood, given)
            rec.cpu = ((cpu_seconds(pids) - server0) / elapsed, (cpu_seconds([os.getpid()]) - client0) / elapsed)
            results[phase] = (rec, elapsed, os.getloadavg()[0])

        # ---------------------------------------------------------------- report
        def derived(rec: Recorder) -> int:
            return rec.status["submit"][200] + rec.status["status"][303] + rec.status["status"][404]

        print("\n| phase | kind | requests | p50 ms | p95 ms | statuses |")
        print("| --- | --- | --- | --- | --- | --- |")
        for phase, (rec, elapsed, _) in results.items():
            for kind in ("GET /report", "submit", "GET /status", "status", "flood"):
                if rec.status.get(kind):
                    lat = rec.latency.get(kind, [])
                    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(rec.status[kind].items(), key=str))
                    print(f"| {phase} | {kind} | {sum(rec.status[kind].values())} | {percentile(lat, 50) * 1000:.0f} |"
                          f" {percentile(lat, 95) * 1000:.0f} | {statuses} |")
        print("\n| phase | seconds | load avg | server / client CPU (cores) | reporters' derivations/s | flood derivations/s | total/s | x bound |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        summary = {}
        for phase, (rec, elapsed, load) in results.items():
            real = derived(rec) / elapsed
            flood_rate = rec.status["flood"][404] / elapsed
            total = real + flood_rate
            summary[phase] = {
                "seconds": elapsed, "load": load, "real_per_s": real, "flood_per_s": flood_rate, "ratio": total / bound_cpu,
                "submit_p50": percentile(rec.latency["submit"], 50), "submit_p95": percentile(rec.latency["submit"], 95),
                "status_p50": percentile(rec.latency["status"], 50), "status_p95": percentile(rec.latency["status"], 95),
                "statuses": {k: dict(v) for k, v in rec.status.items()},
            }
            summary[phase]["cpu"] = rec.cpu
            print(f"| {phase} | {elapsed:.1f} | {load:.2f} | {rec.cpu[0]:.2f} / {rec.cpu[1]:.2f} | {real:.2f} | {flood_rate:.2f} | {total:.2f} | {total / bound_cpu:.2f} |")

        # Unexpected answers: reporters get only 200/303 (429 would be the limiter, allowed),
        # and on a status check the gate's "busy" page (counted apart, bounded in phase 1);
        # the flood gets 404 (wrong code) or "busy" (400 with --malformed-flood). Anything
        # else (a 500, a bare 503, a dropped connection, a timeout) is a failure.
        allowed = {"GET /report": {200}, "GET /status": {200}, "submit": {200, 429},
                   "status": {303, 429, "503 busy"}, "flood": {400} if args.malformed_flood else {404, 429, "503 busy"}}
        for phase, (rec, _, _) in results.items():
            for kind, counter in rec.status.items():
                bad = {k: v for k, v in counter.items() if k not in allowed.get(kind, set())}
                if bad:
                    failures.append(f"{phase}: unexpected answers to {kind}: {bad}")
        checks = results["base"][0].status["status"]
        busy_share = checks["503 busy"] / max(1, sum(checks.values()))
        summary["base"]["busy_share"] = busy_share
        if busy_share > MAX_BUSY_SHARE:
            failures.append(f"phase 1: {busy_share:.1%} of status checks got 'busy' (at most {MAX_BUSY_SHARE:.0%})")
        ratio = summary["base"]["ratio"]
        if ratio < TARGET:
            failures.append(f"throughput {ratio:.2f} x bound, below the target {TARGET}")
        if "flood" in summary:
            base, fl = summary["base"], summary["flood"]
            print(f"\nflood impact on reporters: submissions {base['submit_p95'] * 1000:.0f} -> {fl['submit_p95'] * 1000:.0f} ms p95,"
                  f" status checks {base['status_p95'] * 1000:.0f} -> {fl['status_p95'] * 1000:.0f} ms p95,"
                  f" reporters' derivations/s {base['real_per_s']:.2f} -> {fl['real_per_s']:.2f}"
                  f" ({(fl['real_per_s'] / base['real_per_s'] - 1) * 100:+.0f}%)")
            stored = {p: results[p][0].status["submit"][200] / results[p][1] for p in results}
            print(f"stored tips/s: {stored['base']:.2f} -> {stored['flood']:.2f}"
                  f" ({(stored['flood'] / max(stored['base'], 1e-9) - 1) * 100:+.0f}%)")
            summary["stored_per_s"] = stored
            checks = results["flood"][0].status["status"]
            opened_share = checks[303] / max(1, sum(checks.values()))
            submit_ratio = stored["flood"] / max(stored["base"], 1e-9)
            summary["flood_open_share"], summary["flood_submit_ratio"] = opened_share, submit_ratio
            print(f"under the flood: {opened_share:.1%} of the reporters' status checks opened their case"
                  f" (target >= {FLOOD_OPEN_TARGET:.0%}); stored tips at {submit_ratio:.2f} x phase 1"
                  f" (target >= {FLOOD_SUBMIT_TARGET})")
            if opened_share < FLOOD_OPEN_TARGET:
                failures.append(f"under the flood only {opened_share:.1%} of status checks opened their case")
            if submit_ratio < FLOOD_SUBMIT_TARGET:
                failures.append(f"under the flood stored tips fell to {submit_ratio:.2f} x phase 1")

        # ---------------------------------------------------------------- verification
        print(f"\nverifying {len(given)} codes ...", flush=True)
        opened, bad_codes = Counter(), []
        queue = list(enumerate(given))
        qlock = threading.Lock()

        def verify() -> None:
            while True:
                with qlock:
                    if not queue:
                        return
                    i, (code, _marker) = queue.pop()
                browser = Browser(port, f"192.168.{i // 250 % 250}.{i % 250 + 1}")
                for attempt in range(6):
                    status = browser.check(code)
                    if status != 503:
                        break
                    time.sleep(0.5 * (attempt + 1))
                with qlock:
                    opened[status] += 1
                    if status != 303:
                        bad_codes.append((code[:4], status))

        verifiers = [threading.Thread(target=verify, daemon=True) for _ in range(max(1, workers))]
        deadline = time.monotonic() + 30 + 2 * len(given)
        for t in verifiers:
            t.start()
        for t in verifiers:
            t.join(timeout=max(1, deadline - time.monotonic()))
        if bad_codes or opened[303] != len(given):
            failures.append(f"codes that did not open their case: {len(given) - opened[303]} ({bad_codes[:5]})")

        engine = create_engine(db_url)
        with engine.connect() as conn:
            rows = {lookup: content for lookup, content in conn.execute(text("select lookup, content from reports"))}
        engine.dispose()
        mismatched = 0
        for code, marker in given:
            content = rows.get(codes.parse_code(code).lookup)
            if content is None or json.loads(crypto.open_sealed(content, officer))["what"] != marker:
                mismatched += 1
        if mismatched or len(rows) != len(given):
            failures.append(f"{len(rows)} rows for {len(given)} codes given; {mismatched} codes without their own tip")
        print(f"{opened[303]}/{len(given)} codes opened their case (303); {len(rows)} rows stored;"
              f" {len(given) - mismatched} tips opened with the officer's key and matched what was sent")

        # One address over its limit gets a 429: the limiter (in Redis) held under load.
        probe = Browser(port, "198.18.0.1")
        token = probe.token("/status")
        statuses = Counter()
        for _ in range(args.status_limit + 2):
            status = probe.post("/status", {"code": "0000", "csrf_token": token or ""})[0]
            statuses[status] += 1
            if status == 429:
                break
        if statuses[429] != 1 or statuses[400] != args.status_limit:
            failures.append(f"limit probe: expected {args.status_limit} x 400 then 429, got {dict(statuses)}")
        print(f"limit probe: {statuses[400]} malformed checks answered 400, then {statuses[429]} x 429 (intended)")

        if args.probe and given:
            server_key = crypto.hkdf(
                tomllib.loads((work / "instance" / "config.toml").read_text("utf-8"))["secret_key"].encode(),
                b"whistle v1 server key",
            )
            lookups = {codes.parse_code(code).lookup for code, _marker in given}
            n = min(args.probe, len(given) // 2)
            print(f"\nprobing {n} wrong against {n} unknown codes, one at a time ...", flush=True)
            summary["probe_same_cost"] = same = time_wrong_and_unknown(port, server_key, given, lookups, n, 0)
            print_probe("one cost (t=3)", same)
            # The operator raises the cost: every case still has t=3, new checks know t=4 too.
            live.stop(server, timeout=30, kill_timeout=10)
            with (work / "instance" / "config.toml").open("a", encoding="utf-8") as fh:
                fh.write("\n[code_cost]\ntime_cost = 4\nmemory_cost = 65536\nparallelism = 4\n")
            server, log = start_server(env, work, port)
            if server is None:
                failures.append("gunicorn did not start again with the higher cost")
            else:
                summary["probe_cost_raised"] = raised = time_wrong_and_unknown(port, server_key, given[n:], lookups, n, 1)
                print_probe("after raising the cost to t=4, every case at t=3", raised)
                moved = Counter(Browser(port, f"198.18.1.{i + 1}").check(code) for i, (code, _m) in enumerate(given[:10]))
                engine = create_engine(db_url)
                with engine.connect() as conn:
                    at_new = conn.execute(text("select count(*) from reports where code_time_cost = 4")).scalar_one()
                engine.dispose()
                print(f"opened 10 cases with their codes: {dict(moved)}; cases now at t=4: {at_new}")
                summary["moved"] = {"answers": dict(moved), "at_new_cost": at_new}
                if moved[303] != 10 or at_new != 10:
                    failures.append(f"moving cases to the new cost: {dict(moved)}, {at_new} at t=4")
                for result in (same, raised):
                    if not 0.25 <= result["auc"] <= 0.75:
                        failures.append(f"wrong and unknown codes told apart by time: P(wrong slower) = {result['auc']:.2f}")

        summary.update(machine=machine(), cores=cores, workers=workers, wall=wall, cpu=cpu, bound=bound_cpu,
                       bound_wall=bound_wall, codes=len(given), rows=len(rows), reporters=args.reporters, flood=args.flood)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    finally:
        if server is not None:
            live.stop(server, timeout=30, kill_timeout=10)
        try:
            clear_limiter()
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            admin.dispose()
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nthroughput {summary['base']['ratio']:.2f} x bound (target >= {TARGET})")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
