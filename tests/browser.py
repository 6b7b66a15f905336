"""Support for the browser journeys of tests/test_browser_journeys.py.

Playwright drives Debian's Chromium (/usr/bin/chromium, which `.ci/run` installs when it is
missing); Playwright never downloads a browser of its own. axe-core comes from the npm
registry at the version pinned in the Makefile (`make axe` puts it in .axe/, git-ignored).

- `JourneyServer`: `whistle init` and `whistle serve` (the reporters' and the officers' app
  on free loopback ports) in a process whose date is read from a file the test moves, so
  that a journey can reach the next month's statistics cut.
- `Recorder`: at each step of a journey, runs axe-core on the page, checks what the page
  loaded, and writes full-page screenshots at 360 and 1280 px under `artefacts_dir()`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import live

ROOT = live.ROOT
CHROMIUM = Path(os.environ.get("WHISTLE_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE = ROOT / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (360, 1280)
HEIGHT = 800

#: A `whistle` command whose idea of today (Thailand's date) is the date in the file named by
#: BROWSER_TEST_TODAY_FILE. It patches i18n.thai_today before anything imports it by name.
_CLOCKED = (
    "import datetime, os, pathlib, sys\n"
    "import whistle.i18n\n"
    "_today = pathlib.Path(os.environ['BROWSER_TEST_TODAY_FILE'])\n"
    "whistle.i18n.thai_today = lambda: datetime.date.fromisoformat(_today.read_text().strip())\n"
    "from whistle.cli import main\n"
    "sys.argv[0] = 'whistle'\n"
    "main()\n"
)


#: How far the page sticks out past the viewport, and the innermost elements that do.
_WIDEST = """() => {
  const over = document.documentElement.scrollWidth - window.innerWidth;
  const out = [];
  const sticksOut = e => e.getBoundingClientRect().right > window.innerWidth + 1;
  if (over > 0) {
    for (const e of document.body.querySelectorAll('*')) {
      if (sticksOut(e) && ![...e.children].some(sticksOut)) {
        const cls = e.getAttribute('class');
        out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (cls ? '.' + cls.trim().split(/\\s+/).join('.') : ''));
      }
    }
  }
  return {over, elements: [...new Set(out)].slice(0, 8)};
}"""


def artefacts_dir() -> Path:
    """Where screenshots go: $WHISTLE_TEST_ARTEFACTS, else test-artefacts/browser (git-ignored)."""
    return Path(os.environ.get("WHISTLE_TEST_ARTEFACTS") or ROOT / "test-artefacts" / "browser")


def axe_source() -> str:
    """axe-core's source, at the version the Makefile pins."""
    if not AXE.exists():
        raise AssertionError(f"axe-core is missing at {AXE}: run `make axe` (make test does it)")
    pinned = re.search(r"^AXE_VERSION := (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    installed = json.loads((AXE.parent / "package.json").read_text())["version"]
    assert installed == pinned, f"axe-core {installed} in .axe/, the Makefile pins {pinned}: run `make axe`"
    return AXE.read_text(encoding="utf-8")


def launch(playwright):
    """Chromium from Debian, headless, no browser download involved."""
    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)


class JourneyServer:
    """`whistle init` then `whistle serve` in `folder`, as live.DevServer runs it, but with
    a date the test sets (`set_today`) and the first officer's one-time passphrase kept."""

    def __init__(self, folder: Path, today: dt.date) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.today_file = folder / "today.txt"
        self.set_today(today)
        self.env = {**live.server_env(folder), "BROWSER_TEST_TODAY_FILE": str(self.today_file)}
        self.instance = folder / "instance"
        init = subprocess.run(
            self.command("init", "--instance", str(self.instance), "--recovery-dir", str(folder / "recovery-key")),
            cwd=folder, env=self.env, capture_output=True, text=True, timeout=60,
        )
        assert init.returncode == 0, init.stderr[-2000:]
        with (self.instance / "config.toml").open("a", encoding="utf-8") as fh:
            fh.write(live.CHEAP_CODE_COST)
        # The first officer's one-time passphrase is the one printed under its key.
        self.officer_passphrase = re.search(r'First officer key.*?passphrase:\s+(\S+)', init.stdout, re.S).group(1)
        self.port, self.officer_port = live.free_port(), live.free_port()
        self.stdout, self.stderr = folder / "serve-stdout.txt", folder / "serve-stderr.txt"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                self.command("serve", "--instance", str(self.instance), "--port", str(self.port),
                             "--officer-port", str(self.officer_port)),
                cwd=folder, env=self.env, stdout=out, stderr=err,
            )
        if not (live.wait_listening(self.port, 30, self.proc) and live.wait_listening(self.officer_port, 30, self.proc)):
            self.stop()
            raise AssertionError(f"whistle serve did not start: {live.tail(self.stderr)}")

    @staticmethod
    def command(*args: str) -> list[str]:
        return [live.whistle_command()[0], "-c", _CLOCKED, *args]

    def set_today(self, day: dt.date) -> None:
        self.today_file.write_text(day.isoformat())

    @property
    def reporter_url(self) -> str:
        return f"http://{live.HOST}:{self.port}"

    @property
    def officer_url(self) -> str:
        return f"http://{live.HOST}:{self.officer_port}"

    def stop(self) -> None:
        live.stop(self.proc)

    def errors(self) -> str:
        text = live.tail(self.stderr, 200)
        return text if "Traceback" in text else ""


# --------------------------------------------------------------------------- recording


@dataclass
class Finding:
    step: str
    url: str
    rule: str
    impact: str | None
    help: str
    targets: list[str]

    def __str__(self) -> str:
        return f"{self.step} ({self.url}): {self.rule} [{self.impact}] {self.help}: {', '.join(self.targets[:5])}"


@dataclass
class Recorder:
    """What a journey saw: axe findings, requests a reporter page should not make, and
    the screenshots written. One per journey (one language)."""

    browser: object
    lang: str
    folder: Path
    reporter_origin: str
    officer_origin: str
    findings: list[Finding] = field(default_factory=list)
    bad_requests: list[str] = field(default_factory=list)
    scripts_in_pages: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    rules_passed: list[int] = field(default_factory=list)
    overflows: list[str] = field(default_factory=list)
    _count: int = 0

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.axe = axe_source()
        # The audit context: JavaScript on (axe needs it), its own cookies, never the
        # journey's. A reporter page is replayed into it from what the JS-off page shows.
        self.audit_context = self.browser.new_context(viewport={"width": WIDTHS[0], "height": HEIGHT}, bypass_csp=True)
        self.audit_page = self.audit_context.new_page()

    def reporter_context(self):
        """A reporter's browser: JavaScript off, a 360 px phone; every request recorded."""
        context = self.browser.new_context(
            java_script_enabled=False, viewport={"width": WIDTHS[0], "height": HEIGHT}, accept_downloads=True,
            locale="th-TH" if self.lang == "th" else "en-GB",
        )
        context.on("request", lambda request: self._watch_reporter(request))
        return context

    def officer_context(self):
        context = self.browser.new_context(
            viewport={"width": WIDTHS[0], "height": HEIGHT}, accept_downloads=True,
            locale="th-TH" if self.lang == "th" else "en-GB",
        )
        context.on("request", lambda request: self._watch_officer(request))
        return context

    def _watch_reporter(self, request) -> None:
        origin = _origin(request.url)
        if request.resource_type == "script" or origin != self.reporter_origin:
            self.bad_requests.append(f"{request.resource_type} {request.url} (from {request.frame.url})")

    def _watch_officer(self, request) -> None:
        if _origin(request.url) not in (self.officer_origin,):
            self.bad_requests.append(f"officer page: {request.resource_type} {request.url}")

    # ----------------------------------------------------------------------- a step

    def step(self, page, name: str, *, reporter: bool) -> None:
        """Audit the page as it stands, then photograph it at each width."""
        page.wait_for_load_state("load")
        self.pages.append(f"{name}: {page.url}")
        if reporter:
            html = page.content()
            if re.search(r"<script\b", html, re.I):
                self.scripts_in_pages.append(f"{name}: {page.url}")
            violations = self._audit_replayed(page.url, html)
            assert self.audit_page.title() == page.title(), f"{name}: the audit saw another page"
            self._check_width(self.audit_page, name, page.url)
        else:
            violations = self._audit_in_place(page)
            self._check_width(page, name, page.url)
        for v in violations:
            self.findings.append(Finding(
                name, page.url, v["id"], v.get("impact"), v["help"],
                [" ".join(map(str, n["target"])) for n in v["nodes"]],
            ))
        self._count += 1
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": HEIGHT})
            shot = self.folder / f"{self._count:02d}-{name}-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
            self.shots.append(shot)
        page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})

    def _check_width(self, page, name: str, url: str) -> None:
        """At 360 px nothing may stick out sideways: on a phone one scrolls down only."""
        wide = page.evaluate(_WIDEST)
        if wide["over"] > 0:
            self.overflows.append(f"{name}: {url} is {wide['over']} px wider than {WIDTHS[0]} px: {wide['elements']}")

    def _run_axe(self, page) -> list[dict]:
        page.evaluate(self.axe)
        result = json.loads(page.evaluate(
            "async () => JSON.stringify(await axe.run(document, {resultTypes: ['violations']}))"
        ))
        # A page where axe checked (almost) nothing is an audit that did not happen.
        self.rules_passed.append(len(result["passes"]))
        return result["violations"]

    def _audit_replayed(self, url: str, html: str) -> list[dict]:
        """The reporter page's document, exactly as the JS-off page holds it, served at its
        own address in the JS-on audit context; its style sheets and images come from the
        live server as they did for the reporter."""
        page = self.audit_page

        def only_this(request_url: str) -> bool:
            return request_url == url

        page.route(only_this, lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html))
        try:
            page.goto(url, wait_until="load")
            return self._run_axe(page)
        finally:
            page.unroute(only_this)

    def _audit_in_place(self, page) -> list[dict]:
        return self._run_axe(page)

    def close(self) -> None:
        self.audit_context.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return parts.scheme
    return f"{parts.scheme}://{parts.netloc}"
