"""Typed settings, read once at start-up from the instance file and the environment.

Two kinds, kept apart so that one deployment can later serve several organisations:

* `Settings`: the deployment's own (secrets, database, storage, limits, proxies);
* `Organisation` (`settings.organisation`): what one municipality decides (its names, the
  categories of wrongdoing, its deadlines, its links), read from the `[organisation]`
  table of the instance file.

Precedence: `WHISTLE_*` environment variables, then `<instance>/config.toml`, then the
defaults below. There is no default secret key: the service refuses to start without one
(and without recipient keys, checked in `create_app`), naming exactly what is missing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .codes import CEILING, FLOOR, UNSAFE_FLOOR, CodeCost

MiB = 1024 * 1024

#: Kinds of wrongdoing named in the plan (measures 3.2 / 4.3); labels live in templates.
DEFAULT_CATEGORIES = (
    "bribery",
    "procurement",
    "budget_fraud",
    "conflict_of_interest",
    "personnel",
    "public_property",
    "unfair_service",
    "abuse_of_authority",
    "other",
)


#: Kinds of weakness a case may show, for the analysis for prevention (measure 3.2).
DEFAULT_WEAKNESSES = (
    "procedure_unclear",
    "no_separation_of_duties",
    "weak_oversight",
    "discretion_unchecked",
    "information_not_public",
    "conflict_not_declared",
    "other",
)


class ConfigError(RuntimeError):
    """The configuration is unusable; the message says what to fix."""


@dataclass(frozen=True)
class Category:
    key: str
    label_th: str | None = None  # custom categories carry their own labels
    label_en: str | None = None


@dataclass(frozen=True)
class Organisation:
    """One municipality's own settings: the `[organisation]` table of config.toml."""

    name_th: str = "เทศบาล"
    name_en: str = "Municipality"
    #: The organisation's seal, shown in the reporter pages' header and on the poster, the
    #: flyers and the share image: an image file (PNG, JPEG, WebP or SVG, at most
    #: `SEAL_MAX_BYTES`), its path absolute or relative to the instance folder. Served by
    #: this service itself (/seal), never from another site. Empty: no seal.
    seal: str = ""
    #: The general-complaints channel, which the landing page sends everything else to.
    general_complaints_url: str = ""
    categories: tuple[Category, ...] = tuple(Category(k) for k in DEFAULT_CATEGORIES)
    #: Days to acknowledge a tip, and to resolve it or explain why not (plan measure 3.2).
    ack_days: int = 7
    resolve_days: int = 15
    #: How those days are counted: "calendar" days, or "working" days (Monday to Friday,
    #: without the public holidays below). Reporters are told which.
    day_count: str = "calendar"
    #: Public holidays for working days: whistle/data/thai_holidays.toml, plus and minus
    #: the organisation's own changes (holidays_extra, holidays_removed in config.toml).
    holidays: frozenset[dt.date] = frozenset()
    #: Public statistics (DESIGN §8): a breakdown count from 1 to `small_count` - 1 is
    #: suppressed; the satisfaction share is reported against `satisfaction_target` %.
    small_count: int = 5
    satisfaction_target: int = 80
    #: Origins (e.g. "https://www.example.go.th") whose pages may embed the statistics
    #: page: its `frame-ancestors`. No other page may be framed.
    embed_origins: tuple[str, ...] = ()
    #: The ITA items each public page answers, labelled as this year's assessment numbers
    #: them: {"statistics": "O33", "manual": "O32", "reports": "O34"}.
    ita_items: dict[str, str] = field(default_factory=dict)
    #: Analysis for prevention: the units a case concerns and the kinds of weakness it
    #: shows, as officers tag them (never published).
    units: tuple[Category, ...] = ()
    weaknesses: tuple[Category, ...] = tuple(Category(k) for k in DEFAULT_WEAKNESSES)
    #: The handling manual's own words: the `[organisation.manual]` table (Manual below).
    manual: "Manual" = field(default_factory=lambda: Manual())

    def category(self, key: str) -> Category | None:
        return next((c for c in self.categories if c.key == key), None)


@dataclass(frozen=True)
class Manual:
    """What the handling manual says of this organisation (`[organisation.manual]`).

    Every text comes in Thai and English (`*_th`, `*_en`); an empty one is left out of
    the page, never shown as a placeholder.
    """

    unit_th: str = ""  # the responsible unit, e.g. "ศูนย์ปฏิบัติการต่อต้านการทุจริต สำนักปลัดเทศบาล"
    unit_en: str = ""
    officer_title_th: str = ""  # who handles the complaints, by title
    officer_title_en: str = ""
    supervisor_title_th: str = ""  # who oversees them and signs the reports off
    supervisor_title_en: str = ""
    phone: str = ""
    email: str = ""
    address_th: str = ""  # where letters go and walk-in reports are taken
    address_en: str = ""
    office_hours_th: str = ""
    office_hours_en: str = ""
    website: str = ""  # this channel's public address, as printed on the manual


@dataclass(frozen=True)
class Settings:
    """The deployment's settings, with the organisation it serves."""

    instance_path: Path
    secret_key: str
    database_url: str
    blob_dir: Path
    organisation: Organisation = field(default_factory=Organisation)
    onion_address: str = ""
    #: The address of the reporters' site (e.g. https://whistle.example.go.th), printed on
    #: the reporter's receipt and on the receipts officers hand to reporters of tips
    #: received by other channels.
    site_url: str = ""
    max_files: int = 5
    max_file_bytes: int = 20 * MiB
    #: The parser's cap on one text field (each also has its own, smaller, character cap).
    #: Werkzeug applies it to its read buffer too, so it must stay well above 128 KiB.
    max_field_bytes: int = 256 * 1024
    code_cost: CodeCost = field(default_factory=CodeCost)
    #: The least `code_cost`, and the least cost read from a case's row, that is accepted:
    #: `codes.FLOOR`, lowered only by a test's `unsafe_code_cost` (never by a config file).
    code_cost_floor: CodeCost = FLOOR
    #: Wrong codes with a right tag that may run Argon2 per lookup part per hour; then the
    #: lookup answers "busy" until the hour is over (docs/crypto.md section 12).
    code_lookup_budget: int = 10
    #: Wrong codes without a right tag (28-digit codes, codes issued under an earlier
    #: secret key) that may run Argon2 per minute, all lookups together.
    code_untagged_budget: int = 20
    argon2_concurrency: int = 2
    ratelimit_storage_uri: str = "memory://"
    #: Where short-lived shared state lives (officer sessions' server half, sign-in
    #: throttles, closed case views): memory:// for one process, redis:// for several.
    #: Empty: the same storage as the rate limiter.
    state_storage_uri: str = ""
    ratelimit_submit: str = "10 per hour"
    ratelimit_status: str = "30 per hour"
    ratelimit_reply: str = "20 per hour"
    ratelimit_signin: str = "20 per hour"
    #: Each page where officers change a case, per client address (an office may share one).
    ratelimit_officer: str = "600 per hour"
    #: Every other POST: the receipt's two steps, closing a case view, an officer's
    #: sign-out and first-sign-in steps (each page counted apart).
    ratelimit_other: str = "60 per hour"
    #: IPv6 clients are limited per network of this prefix length (one household or phone
    #: usually holds a whole /64); IPv4 clients per address.
    ratelimit_ipv6_prefix: int = 64
    status_view_minutes: int = 15
    #: An officer's session ends after this long without a request, and after this long in all.
    officer_idle_minutes: int = 30
    officer_session_hours: int = 10
    #: Argon2id cost of sign-in passphrases (never lower it in production).
    password_cost: CodeCost = field(default_factory=CodeCost)
    secure_cookies: bool = False
    #: Reverse proxies in front of the app (nginx: 1). Their X-Forwarded-For gives the
    #: address the rate limiter hashes; 0 trusts no header.
    trusted_proxies: int = 0
    #: When the rate limiter's storage is unreachable: refuse the costly pages with a 503
    #: (True), or serve them without limits (False).
    ratelimit_fail_closed: bool = True
    #: Days after closing that a case's content, messages and files are purged, keeping
    #: the row's statistics fields (docs/operations.md says why 730); 0 never purges.
    retention_days: int = 730
    #: The officers' workspace address, given in notices (`whistle notify`).
    workspace_url: str = ""
    #: The mail server notices go through. Empty host: no notices are sent.
    smtp_host: str = ""
    smtp_port: int = 587
    #: Upgrade the connection with STARTTLS before anything else (refusing a server that
    #: cannot); false only for a relay on the same machine.
    smtp_starttls: bool = True
    smtp_user: str = ""
    #: Read from WHISTLE_SMTP_PASSWORD only, never from config.toml.
    smtp_password: str = field(default="", repr=False)
    smtp_sender: str = ""
    #: A CA certificate file to trust for the mail server (a municipal CA); empty: the system's.
    smtp_ca_file: str = ""

    @property
    def max_content_length(self) -> int:
        """The largest request body accepted: every file at its cap plus the text fields."""
        return self.max_files * self.max_file_bytes + 1 * MiB


def _env(name: str) -> str | None:
    value = os.environ.get("WHISTLE_" + name)
    return value if value not in (None, "") else None


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def load(instance_path: Path, overrides: dict[str, Any] | None = None) -> Settings:
    """Read the instance file and the environment; raise `ConfigError` naming what is wrong."""
    instance_path = Path(instance_path).resolve()
    data: dict[str, Any] = {}
    config_file = instance_path / "config.toml"
    if config_file.exists():
        try:
            data = tomllib.loads(config_file.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_file} is not valid TOML: {exc}") from None
    data.update(overrides or {})

    def pick(key: str, default: Any = None) -> Any:
        env = _env(key.upper())
        return env if env is not None else data.get(key, default)

    secret_key = pick("secret_key")
    if not secret_key:
        raise ConfigError(
            "No secret key: set WHISTLE_SECRET_KEY or secret_key in "
            f"{config_file} (`whistle init` writes a random one)."
        )
    if len(str(secret_key)) < 32:
        raise ConfigError("The secret key is shorter than 32 characters; use `whistle init` to make one.")

    database_url = pick("database_url") or f"sqlite:///{instance_path / 'whistle.sqlite3'}"
    blob_dir = Path(pick("blob_dir") or instance_path / "blobs")

    code_cost, code_cost_floor = _code_cost(data, overrides or {})
    password_cost = data.get("password_cost", {})
    try:
        settings = Settings(
            instance_path=instance_path,
            secret_key=str(secret_key),
            database_url=str(database_url),
            blob_dir=blob_dir,
            organisation=_organisation(data),
            onion_address=str(pick("onion_address", "")),
            site_url=str(pick("site_url", "")).rstrip("/"),
            max_files=int(pick("max_files", Settings.max_files)),
            max_file_bytes=int(pick("max_file_bytes", Settings.max_file_bytes)),
            code_cost=code_cost,
            code_cost_floor=code_cost_floor,
            code_lookup_budget=int(pick("code_lookup_budget", Settings.code_lookup_budget)),
            code_untagged_budget=int(pick("code_untagged_budget", Settings.code_untagged_budget)),
            argon2_concurrency=int(pick("argon2_concurrency", Settings.argon2_concurrency)),
            ratelimit_storage_uri=str(pick("ratelimit_storage_uri", Settings.ratelimit_storage_uri)),
            ratelimit_submit=str(pick("ratelimit_submit", Settings.ratelimit_submit)),
            ratelimit_status=str(pick("ratelimit_status", Settings.ratelimit_status)),
            ratelimit_reply=str(pick("ratelimit_reply", Settings.ratelimit_reply)),
            ratelimit_signin=str(pick("ratelimit_signin", Settings.ratelimit_signin)),
            ratelimit_officer=str(pick("ratelimit_officer", Settings.ratelimit_officer)),
            ratelimit_other=str(pick("ratelimit_other", Settings.ratelimit_other)),
            ratelimit_ipv6_prefix=int(pick("ratelimit_ipv6_prefix", Settings.ratelimit_ipv6_prefix)),
            state_storage_uri=str(pick("state_storage_uri", "") or pick("ratelimit_storage_uri", Settings.ratelimit_storage_uri)),
            officer_idle_minutes=int(pick("officer_idle_minutes", Settings.officer_idle_minutes)),
            officer_session_hours=int(pick("officer_session_hours", Settings.officer_session_hours)),
            password_cost=password_cost if isinstance(password_cost, CodeCost) else CodeCost(**password_cost),
            status_view_minutes=int(pick("status_view_minutes", Settings.status_view_minutes)),
            secure_cookies=_flag(pick("secure_cookies", False)),
            trusted_proxies=int(pick("trusted_proxies", 0)),
            ratelimit_fail_closed=_flag(pick("ratelimit_fail_closed", True)),
            retention_days=int(pick("retention_days", Settings.retention_days)),
            workspace_url=str(pick("workspace_url", "")),
            smtp_host=str(pick("smtp_host", "")),
            smtp_port=int(pick("smtp_port", Settings.smtp_port)),
            smtp_starttls=_flag(pick("smtp_starttls", True)),
            smtp_user=str(pick("smtp_user", "")),
            # The environment only (or a test's overrides): config.toml is no place for it.
            smtp_password=_env("SMTP_PASSWORD") or str((overrides or {}).get("smtp_password", "")),
            smtp_sender=str(pick("smtp_sender", "")),
            smtp_ca_file=str(pick("smtp_ca_file", "")),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"A setting has the wrong type: {exc}") from None
    if settings.max_files < 0 or settings.max_file_bytes <= 0:
        raise ConfigError("max_files must be 0 or more and max_file_bytes more than 0.")
    if settings.site_url and not settings.site_url.startswith(("https://", "http://")):
        raise ConfigError("site_url must be the reporters' site address, starting with https://.")
    if settings.organisation.seal:
        seal_path(settings)  # refuse to start with a seal that cannot be served
    if settings.retention_days < 0:
        raise ConfigError("retention_days must be 0 (never purge) or a number of days.")
    if settings.code_lookup_budget < 1 or settings.code_untagged_budget < 1:
        raise ConfigError("code_lookup_budget and code_untagged_budget must be 1 or more.")
    if not 32 <= settings.ratelimit_ipv6_prefix <= 128:
        raise ConfigError("ratelimit_ipv6_prefix must be a prefix length from 32 to 128 (64: one network per client).")
    return settings


def _code_cost(data: dict[str, Any], overrides: dict[str, Any]) -> tuple[CodeCost, CodeCost]:
    """The tracking-code cost and the floor it (and every case's stored cost) must meet.

    The floor is `codes.FLOOR` (RFC 9106's second option) unless a test passes
    `unsafe_code_cost` in the settings it gives `create_app`, or the environment says
    WHISTLE_UNSAFE_FAST_KDF=1 (the test suite's and benchmarks' servers). A config file
    can do neither: `unsafe_code_cost` there is refused.
    """
    if "unsafe_code_cost" in data and "unsafe_code_cost" not in overrides:
        raise ConfigError("unsafe_code_cost is for tests only; set code_cost (at least t=3, m=64 MiB) instead.")
    unsafe = overrides.get("unsafe_code_cost")
    if unsafe is not None:
        if not isinstance(unsafe, CodeCost) or not unsafe.within(UNSAFE_FLOOR):
            raise ConfigError("unsafe_code_cost must be a CodeCost that Argon2id can run.")
        return unsafe, UNSAFE_FLOOR
    raw = data.get("code_cost", {})
    try:
        cost = raw if isinstance(raw, CodeCost) else CodeCost(**raw)
    except TypeError:
        raise ConfigError("code_cost takes time_cost, memory_cost (KiB) and parallelism.") from None
    floor = UNSAFE_FLOOR if os.environ.get("WHISTLE_UNSAFE_FAST_KDF") == "1" else FLOOR
    if not cost.within(floor):
        raise ConfigError(
            f"code_cost {cost.as_tuple()} (time_cost, memory_cost KiB, parallelism) is outside "
            f"{floor.as_tuple()}..{CEILING.as_tuple()}: tracking codes need at least "
            "RFC 9106's second option (t=3, m=64 MiB)."
        )
    return cost, floor


#: Organisation settings: (name in the [organisation] table, WHISTLE_ variable, name used at
#: the top level of config.toml before the table existed, still read).
_ORGANISATION_KEYS = (
    ("name_th", "ORGANISATION_TH", "organisation_th"),
    ("name_en", "ORGANISATION_EN", "organisation_en"),
    ("seal", "ORGANISATION_SEAL", "organisation_seal"),
    ("general_complaints_url", "GENERAL_COMPLAINTS_URL", "general_complaints_url"),
    ("ack_days", "ACK_DAYS", "ack_days"),
    ("resolve_days", "RESOLVE_DAYS", "resolve_days"),
    ("day_count", "DAY_COUNT", "day_count"),
)

HOLIDAYS_FILE = Path(__file__).resolve().parent / "data" / "thai_holidays.toml"


#: The seal is on every reporter page, which must stay light on a slow phone.
SEAL_MAX_BYTES = 20 * 1024
SEAL_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".svg": "image/svg+xml"}


def seal_path(settings: "Settings") -> Path | None:
    """The organisation's seal file, checked (kind, size), or None when none is set."""
    seal = settings.organisation.seal
    if not seal:
        return None
    path = Path(seal) if Path(seal).is_absolute() else settings.instance_path / seal
    if path.suffix.lower() not in SEAL_TYPES:
        raise ConfigError(f"seal: {path.name} is not a PNG, JPEG, WebP or SVG image.")
    if not path.is_file():
        raise ConfigError(f"seal: no file at {path}.")
    if path.stat().st_size > SEAL_MAX_BYTES:
        raise ConfigError(f"seal: {path.name} is larger than {SEAL_MAX_BYTES // 1024} KiB; reporters' pages must stay light.")
    return path


def _dates(values: Any, where: str) -> set[dt.date]:
    try:
        return {v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in values or ()}
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _holidays(table: dict[str, Any]) -> frozenset[dt.date]:
    shipped: set[dt.date] = set()
    for year, entry in tomllib.loads(HOLIDAYS_FILE.read_text("utf-8")).items():
        shipped |= _dates(entry.get("days"), f"{HOLIDAYS_FILE.name} [{year}]")
    extra = _dates(table.get("holidays_extra"), "holidays_extra")
    removed = _dates(table.get("holidays_removed"), "holidays_removed")
    return frozenset((shipped | extra) - removed)


def _organisation(data: dict[str, Any]) -> Organisation:
    table = data.get("organisation", {})
    if not isinstance(table, dict):
        raise ConfigError("`organisation` in config.toml must be a table: [organisation].")
    values: dict[str, Any] = {}
    for key, env_name, legacy in _ORGANISATION_KEYS:
        value = _env(env_name)
        if value is None:
            value = table.get(key, data.get(legacy))
        if value is not None:
            values[key] = type(getattr(Organisation, key))(value)
    raw_categories = table.get("categories", data.get("categories"))
    if raw_categories is not None:
        values["categories"] = tuple(
            Category(c["key"], c.get("label_th"), c.get("label_en")) if isinstance(c, dict) else Category(str(c))
            for c in raw_categories
        )
        if not values["categories"]:
            raise ConfigError("`categories` in config.toml is empty.")
    values["holidays"] = _holidays(table)
    values.update(_transparency(table))
    organisation = Organisation(**values)
    if organisation.ack_days < 1 or organisation.resolve_days < organisation.ack_days:
        raise ConfigError("ack_days must be 1 or more, and resolve_days at least ack_days.")
    if organisation.day_count not in ("calendar", "working"):
        raise ConfigError('day_count must be "calendar" or "working".')
    if organisation.small_count < 2:
        raise ConfigError("small_count must be 2 or more: counts below it are suppressed.")
    return organisation


def _choices(raw: Any, name: str) -> tuple[Category, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"`{name}` in config.toml must be a list of keys or tables {{key, label_th, label_en}}.")
    return tuple(
        Category(str(c["key"]), c.get("label_th"), c.get("label_en")) if isinstance(c, dict) else Category(str(c)) for c in raw
    )


def _transparency(table: dict[str, Any]) -> dict[str, Any]:
    """The settings of the public statistics, the manual and the analysis for prevention."""
    values: dict[str, Any] = {}
    for key in ("small_count", "satisfaction_target"):
        if key in table:
            values[key] = int(table[key])
    origins = _env("EMBED_ORIGINS")
    raw_origins = origins.split() if origins is not None else table.get("embed_origins", [])
    for origin in raw_origins:
        if not isinstance(origin, str) or not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"embed_origins: {origin!r} is not an origin such as https://www.example.go.th")
    values["embed_origins"] = tuple(raw_origins)
    items = table.get("ita_items", {})
    if not isinstance(items, dict):
        raise ConfigError("`ita_items` in config.toml must be a table: [organisation.ita_items].")
    values["ita_items"] = {str(k): str(v) for k, v in items.items()}
    for key in ("units", "weaknesses"):
        if key in table:
            values[key] = _choices(table[key], key)
    manual = table.get("manual", {})
    if not isinstance(manual, dict):
        raise ConfigError("`manual` in config.toml must be a table: [organisation.manual].")
    unknown = set(manual) - set(Manual.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"[organisation.manual] has unknown settings: {', '.join(sorted(unknown))}.")
    values["manual"] = Manual(**{k: str(v) for k, v in manual.items()})
    return values


#: A scheme, a host and an optional port: what a frame-ancestors source may be here.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def with_changes(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)
