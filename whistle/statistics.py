"""The public figures: counting cases per Thai fiscal year, cutting them at month ends,
suppressing small counts, and freezing each publication (DESIGN §8).

A fiscal year runs from 1 October to 30 September and is named by the Buddhist Era year
it ends in (FY 2569: 1 Oct 2025 to 30 Sep 2026); its first half runs October to March.

**Cuts.** What is published on any day is the figure as of the end of the previous month
(the cut), never as of today: every download within a month is the same, so two downloads
a day apart cannot be subtracted to reveal one case. Each cut's figures are stored when
first published (`Publication`) and served from there ever after. The half-year and
whole-year figures are the cuts of 31 March and 30 September, so executive reports add no
figure of their own.

**What is counted** as of a cut C, over the cases received from the year's start to C:
received, completed (closed by C) and in progress, always published, zero included; the
tables below, each a breakdown of one attribute. A case's attribute is fixed once the
case enters the table, so that the tables can be suppressed one by one (docs/statistics.md
gives the reasoning and what the test proves):

| table | counts | over the cases |
|---|---|---|
| quarter | the quarter received | received (follows from the totals of successive cuts: never suppressed) |
| category, channel | the kind of wrongdoing, the channel | received |
| outcome | the outcome | completed |
| referral | the agency referred to | referred by C (from the referral's date) |
| acknowledged | on time or late | whose acknowledgement deadline fell by C |
| resolved | within the deadlines (or each delay explained in time) or not | completed |
| satisfaction | satisfied (4 or 5 of 5) or not | rated by C |

**Counting.** `load_entries` reads the year's cases once, from `reports` alone (the
referral's day and the rating are copied there when written), and counts them by each
table's keys apart; `count_entries` then sums each cell's months up to every cut.
`load_groups` + `group_entries` count the same per group of cases that share every key
(slower: the keys of all tables multiply), the form the property-based test reasons
about; a test checks that both give the same figures on SQLite and PostgreSQL.

**Suppression.** In every table but `quarter`, a count from 1 to k-1 is suppressed, and so
is every cell suppressed in an earlier cut of the same year (a suppressed cell stays so
for the rest of the year); if that leaves a single suppressed cell in a table, the
smallest other cell (a non-zero one if there is one) is suppressed with it. Why this
leaves every suppressed count undetermined by all the year's publications together, and
what the property-based test checks, is in docs/statistics.md.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Iterable, NamedTuple

from sqlalchemy import String, and_, case, func, literal_column, select, tuple_, type_coerce, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .config import Organisation
from .models import Agency, Channel, Outcome, Publication, Report

BE_OFFSET = 543
SCHEMA = "whistle-statistics/1"
#: A rating of 4 or 5 out of 5 counts as satisfied.
SATISFIED_FROM = 4
#: Tables whose every cell follows from the always-published totals.
NEVER_SUPPRESSED = frozenset({"quarter"})
TABLES = ("quarter", "category", "channel", "outcome", "referral", "acknowledged", "resolved", "satisfaction")


# --------------------------------------------------------------------------- fiscal years


@dataclass(frozen=True, order=True)
class FiscalYear:
    """A Thai fiscal year, named by the Buddhist Era year it ends in."""

    year: int

    @classmethod
    def of(cls, day: dt.date) -> FiscalYear:
        return cls(day.year + BE_OFFSET + (1 if day.month >= 10 else 0))

    @property
    def start(self) -> dt.date:
        return dt.date(self.year - BE_OFFSET - 1, 10, 1)

    @property
    def end(self) -> dt.date:
        return dt.date(self.year - BE_OFFSET, 9, 30)

    @property
    def first_half_end(self) -> dt.date:
        return dt.date(self.year - BE_OFFSET, 3, 31)

    def period_end(self, period: str) -> dt.date:
        """The last day of a period: "h1" (October to March) or "year"."""
        return self.first_half_end if period == "h1" else self.end

    def quarter(self, day: dt.date) -> int:
        """1 for October to December, ... 4 for July to September."""
        return (day.month - 10) % 12 // 3 + 1

    def month_ends(self, until: dt.date) -> list[dt.date]:
        """Every month's last day from the year's first to `until` (itself a month end)."""
        ends, day = [], self.start
        while True:
            day = _next_month(day)
            last = day - dt.timedelta(days=1)
            if last > until:
                return ends
            ends.append(last)


PERIODS = ("h1", "year")


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def cut_for(fiscal_year: FiscalYear, today: dt.date) -> dt.date | None:
    """The cut published today for the year: the end of the previous month, at most the
    year's end; None while the year's first month is not over."""
    cut = min(today.replace(day=1) - dt.timedelta(days=1), fiscal_year.end)
    return cut if cut >= fiscal_year.start else None


def _month(day: dt.date | None) -> int | None:
    return None if day is None else day.year * 12 + day.month - 1


# --------------------------------------------------------------------------- counting


class Group(NamedTuple):
    """Cases that share everything the figures read (a row of the one grouped query)."""

    count: int
    received: int  # month index (year * 12 + month - 1) of each date below
    category: str
    channel: str
    closed: int | None
    outcome: str | None
    agency: str | None
    referred: int | None
    ack_due: int
    ack_on_time: bool
    resolve_missed: bool
    rated: int | None
    satisfied: bool | None


class month_key(FunctionElement):
    """A date's "YYYY-MM", cheaply: SQLite keeps dates as ISO text, PostgreSQL formats."""

    type = String()
    inherit_cache = True


@compiles(month_key)
def _month_key_default(element, compiler, **kw):
    return "substr(%s, 1, 7)" % compiler.process(element.clauses, **kw)


@compiles(month_key, "postgresql")
def _month_key_postgresql(element, compiler, **kw):
    return "to_char(%s, 'YYYY-MM')" % compiler.process(element.clauses, **kw)


def _month_index(key: str | None) -> int | None:
    return None if key is None else int(key[:4]) * 12 + int(key[5:7]) - 1


def load_groups(session: Session, fiscal_year: FiscalYear, cut: dt.date) -> list[Group]:
    """The year's cases received by `cut`, grouped by everything the figures read (purged
    cases included: retention keeps these columns). `load_entries` counts the same
    figures faster; this per-case form is what the property-based test reasons about."""
    keys = (
        month_key(Report.received_on).label("received"),
        Report.category,
        type_coerce(Report.channel, String()).label("channel"),
        month_key(Report.closed_on).label("closed"),
        type_coerce(Report.outcome, String()).label("outcome"),
        type_coerce(Report.referred_to, String()).label("referred_to"),
        month_key(Report.referred_on).label("referred"),
        month_key(Report.ack_due).label("ack_due"),
        _ack_on_time().label("ack_on_time"),
        Report.resolve_missed,
        month_key(Report.rated_on).label("rated"),
        Report.rating_score,
    )
    query = (
        select(func.count().label("n"), *keys)
        .where(Report.received_on >= fiscal_year.start, Report.received_on <= cut)
        .group_by(*(literal_column(str(i)) for i in range(2, len(keys) + 2)))
    )
    rows = session.connection().execute(query).all()  # Core rows: no ORM work per row
    m = _month_index
    return [
        Group(n, m(received), category, channel, m(closed), outcome, agency, m(referred) if agency else None, m(ack_due),
              bool(ack_on_time), bool(missed), m(rated), None if score is None else score >= SATISFIED_FROM)
        for n, received, category, channel, closed, outcome, agency, referred, ack_due, ack_on_time, missed, rated, score in rows
    ]


def _ack_on_time():
    # Literal 1 and 0, not parameters: the expression must equal itself in GROUP BY.
    one, zero = literal_column("1"), literal_column("0")
    return case((and_(Report.acknowledged_on.is_not(None), Report.acknowledged_on <= Report.ack_due), one), else_=zero)


def _entered(column):
    """The day a case enters a table keyed by `column`'s date: that date, but never before
    the case was received (None while the date is None)."""
    return case((column < Report.received_on, Report.received_on), else_=column)


#: (table, or "totals" for received and completed; cell) -> {month index: cases}: each
#: case once per table, at the month it enters that table.
Entries = dict[tuple[str, str], dict[int, int]]

#: The breakdowns `load_entries` counts apart, in the order of `_entry_keys`.
_SETS = ("received", "referral", "acknowledged", "completed", "satisfaction")


def _entry_keys(month) -> dict[str, tuple]:
    """Per breakdown, the keys its rows are counted by; `month` makes a date's month."""
    return {
        "received": (month(Report.received_on), Report.category, type_coerce(Report.channel, String())),
        "referral": (month(_entered(Report.referred_on)), type_coerce(Report.referred_to, String())),
        "acknowledged": (month(Report.ack_due), _ack_on_time()),
        "completed": (month(_entered(Report.closed_on)), type_coerce(Report.outcome, String()), Report.resolve_missed),
        "satisfaction": (month(_entered(Report.rated_on)), Report.rating_score),
    }


def load_entries(session: Session, fiscal_year: FiscalYear, cut: dt.date) -> Entries:
    """What `count_entries` counts every cut of the year from, as `group_entries` would
    make it from `load_groups`: one statement that reads the year's cases received by
    `cut` once and counts them by each table's few keys apart, so that a case's keys in
    one table never multiply the rows of another's (a few hundred rows in all).

    PostgreSQL counts by GROUPING SETS (a small hash table each; a month is the index of
    its start among the year's, by `width_bucket`). SQLite has no grouping sets: the year's
    keys are read once into a temporary table (a CTE read five times), then counted by
    each table's keys (UNION ALL), each a sort of small keys."""
    where = (Report.received_on >= fiscal_year.start, Report.received_on <= cut)
    first = _month(fiscal_year.start)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        starts, day = [], fiscal_year.start
        while day <= cut:  # each later month's start, to the one after the cut's month
            day = _next_month(day)
            starts.append(day)
        bounds = literal_column("ARRAY[%s]::date[]" % ", ".join(f"DATE '{d.isoformat()}'" for d in starts))
        sets = _entry_keys(lambda column: func.width_bucket(column, bounds))
    else:
        sets = _entry_keys(month_key)
    spans, columns = [], []
    for keys in sets.values():
        spans.append((len(columns), len(columns) + len(keys)))
        columns.extend(keys)
    year = select(*(c.label(f"k{i}") for i, c in enumerate(columns))).where(*where)
    if postgres:
        # In a subquery that the planner keeps (OFFSET 0), the keys are columns it knows
        # nothing of, so it expects few groups and hashes them; computed on the table,
        # each month's distinct values would be guessed from its dates' and PostgreSQL
        # would sort the year's rows once per set instead, on disk.
        keyed = year.offset(0).subquery("year_keys")
        k = [keyed.c[f"k{i}"] for i in range(len(columns))]
        query = (
            select(func.grouping(*(k[a] for a, _ in spans)), *k, func.count())
            .group_by(func.grouping_sets(*(tuple_(*k[a:b]) for a, b in spans)))
        )
        width = len(spans)
        raw = []
        for row in session.connection().execute(query):
            which = next(i for i in range(width) if not row[0] >> (width - 1 - i) & 1)  # the set grouped
            a, b = spans[which]
            month = row[1 + a]
            raw.append((which, None if month is None else first + month, *row[2 + a : 1 + b], row[-1]))
    else:
        keyed = year.cte("year_keys")
        parts = []
        for which, (a, b) in enumerate(spans):
            keys = [keyed.c[f"k{i}"] for i in range(a, b)]
            padding = [literal_column("NULL")] * (3 - len(keys))
            parts.append(select(literal_column(str(which)), *keys, *padding, func.count()).group_by(*keys))
        raw = [
            (which, _month_index(month), *rest)
            for which, month, *rest in session.connection().execute(union_all(*parts))
        ]
    entries: Entries = {}
    for which, month, *keys, n in raw:
        if month is None:
            continue
        name = _SETS[which]
        if name == "received":
            category, channel = keys[:2]
            _add(entries, "totals", "received", month, n)
            _add(entries, "quarter", f"q{(month % 12 - 9) % 12 // 3 + 1}", month, n)
            _add(entries, "category", category, month, n)
            _add(entries, "channel", channel, month, n)
        elif name == "referral":
            if keys[0] is not None:
                _add(entries, "referral", keys[0], month, n)
        elif name == "acknowledged":
            _add(entries, "acknowledged", "on_time" if keys[0] else "late", month, n)
        elif name == "completed":
            outcome, missed = keys[:2]
            _add(entries, "totals", "completed", month, n)
            if outcome:
                _add(entries, "outcome", outcome, month, n)
            _add(entries, "resolved", "late" if missed else "on_time", month, n)
        elif keys[0] is not None:  # satisfaction, by score
            _add(entries, "satisfaction", "satisfied" if keys[0] >= SATISFIED_FROM else "not_satisfied", month, n)
    return entries


def _add(entries: Entries, table: str, key: str, month: int, n: int) -> None:
    by_month = entries.setdefault((table, key), {})
    by_month[month] = by_month.get(month, 0) + n


def _int(value) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class Counts:
    """The raw figures of one cut: totals and tables, before any suppression."""

    cut: dt.date
    totals: dict[str, int]
    tables: dict[str, dict[str, int]]


def empty_tables(organisation: Organisation) -> dict[str, dict[str, int]]:
    """Every table with every cell at 0, in the order pages show them."""
    return {
        "quarter": {f"q{i}": 0 for i in range(1, 5)},
        "category": {c.key: 0 for c in organisation.categories},
        "channel": {c.value: 0 for c in Channel},
        "outcome": {o.value: 0 for o in Outcome},
        "referral": {a.value: 0 for a in Agency},
        "acknowledged": {"on_time": 0, "late": 0},
        "resolved": {"on_time": 0, "late": 0},
        "satisfaction": {"satisfied": 0, "not_satisfied": 0},
    }


def count(groups: Iterable[Group], fiscal_year: FiscalYear, organisation: Organisation, cut: dt.date) -> Counts:
    """The raw figures as of `cut` (a month end), from `load_groups` of any later cut."""
    return count_cuts(groups, fiscal_year, organisation, [cut])[0]


def count_cuts(groups: Iterable[Group], fiscal_year: FiscalYear, organisation: Organisation, cuts: list[dt.date]) -> list[Counts]:
    """The raw figures as of each cut, in one pass over the groups."""
    return count_entries(group_entries(groups), organisation, cuts)


def group_entries(groups: Iterable[Group]) -> Entries:
    """Each group added to each table and cell at the month it enters them."""
    entries: Entries = {}
    for g in groups:
        n = g.count
        _add(entries, "totals", "received", g.received, n)
        _add(entries, "quarter", f"q{(g.received % 12 - 9) % 12 // 3 + 1}", g.received, n)
        _add(entries, "category", g.category, g.received, n)
        _add(entries, "channel", g.channel, g.received, n)
        if g.agency is not None and g.referred is not None:
            _add(entries, "referral", g.agency, max(g.referred, g.received), n)
        _add(entries, "acknowledged", "on_time" if g.ack_on_time else "late", g.ack_due, n)
        if g.closed is not None:
            closed = max(g.closed, g.received)
            _add(entries, "totals", "completed", closed, n)
            if g.outcome:
                _add(entries, "outcome", g.outcome, closed, n)
            _add(entries, "resolved", "late" if g.resolve_missed else "on_time", closed, n)
        if g.rated is not None and g.satisfied is not None:
            _add(entries, "satisfaction", "satisfied" if g.satisfied else "not_satisfied", max(g.rated, g.received), n)
    return entries


def count_entries(entries: Entries, organisation: Organisation, cuts: list[dt.date]) -> list[Counts]:
    """The raw figures as of each cut: each cell's months summed up to the cut's."""
    out = []
    for cut in cuts:
        c = _month(cut)
        tables = empty_tables(organisation)
        totals = {"received": 0, "completed": 0}
        for (table, key), by_month in entries.items():
            n = sum(v for month, v in by_month.items() if month <= c)
            if table == "totals":
                totals[key] = n
            elif n or key not in tables[table]:
                tables[table][key] = tables[table].get(key, 0) + n
        totals["in_progress"] = totals["received"] - totals["completed"]
        out.append(Counts(cut, {"received": totals["received"], "completed": totals["completed"],
                                "in_progress": totals["in_progress"]}, tables))
    return out


# --------------------------------------------------------------------------- suppression


Cells = dict[str, int | None]


def suppress_small_cells(tables: dict[str, dict[str, int]], earlier: dict[str, set[str]], k: int) -> dict[str, Cells]:
    """The tables as published: None for each suppressed cell.

    `earlier` names, per table, the cells suppressed in the year's previous cut: they stay
    suppressed. A table left with one suppressed cell gets a second (the smallest other,
    preferring a non-zero one), so that no cell equals the table's total less the others.
    """
    published: dict[str, Cells] = {}
    for name, cells in tables.items():
        if name in NEVER_SUPPRESSED or len(cells) < 2:
            published[name] = dict(cells)
            continue
        hidden = {key for key in earlier.get(name, ()) if key in cells}
        hidden |= {key for key, value in cells.items() if 0 < value < k}
        if len(hidden) == 1:
            others = sorted((value == 0, value, key) for key, value in cells.items() if key not in hidden)
            hidden.add(others[0][2])
        published[name] = {key: None if key in hidden else value for key, value in cells.items()}
    return published


def hidden_cells(tables: dict[str, Cells]) -> dict[str, set[str]]:
    return {name: {key for key, value in cells.items() if value is None} for name, cells in tables.items()}


# --------------------------------------------------------------------------- publications


@dataclass(frozen=True)
class Figures:
    """One publication: a fiscal year's figures as of a cut, suppressed."""

    fiscal_year: int
    cut_on: dt.date
    small_count: int
    totals: dict[str, int]
    tables: dict[str, Cells]

    @property
    def year(self) -> FiscalYear:
        return FiscalYear(self.fiscal_year)

    def share(self, table: str, good: str, bad: str) -> tuple[int, int] | None:
        """(good, good + bad) when both cells are published and some case counted."""
        cells = self.tables.get(table, {})
        a, b = cells.get(good), cells.get(bad)
        if a is None or b is None or a + b == 0:
            return None
        return a, a + b

    def to_json(self) -> dict:
        fy = self.year
        return {
            "schema": SCHEMA,
            "fiscal_year": self.fiscal_year,
            "period": {"start": fy.start.isoformat(), "end": fy.end.isoformat()},
            "cut_on": self.cut_on.isoformat(),
            "small_count": self.small_count,
            "totals": dict(self.totals),
            "tables": {name: dict(cells) for name, cells in self.tables.items()},
        }

    @classmethod
    def from_json(cls, doc: dict) -> Figures:
        return cls(
            fiscal_year=int(doc["fiscal_year"]),
            cut_on=dt.date.fromisoformat(doc["cut_on"]),
            small_count=int(doc["small_count"]),
            totals={k: int(v) for k, v in doc["totals"].items()},
            tables={name: dict(cells) for name, cells in doc["tables"].items()},
        )


def publish_sequence(counts: list[Counts], fiscal_year: FiscalYear, k: int, earlier: dict[str, set[str]] | None = None) -> list[Figures]:
    """The publications of successive cuts of one year, each suppressed consistently with
    those before it (`earlier`: what the last stored cut before them hid)."""
    hidden = {name: set(keys) for name, keys in (earlier or {}).items()}
    out = []
    for c in counts:
        tables = suppress_small_cells(c.tables, hidden, k)
        hidden = hidden_cells(tables)
        out.append(Figures(fiscal_year.year, c.cut, k, dict(c.totals), tables))
    return out


def stored(session: Session, fiscal_year: FiscalYear) -> dict[dt.date, Figures]:
    rows = session.scalars(select(Publication).where(Publication.fiscal_year == fiscal_year.year))
    return {row.cut_on: Figures.from_json(json.loads(row.figures)) for row in rows}


def stored_cut(session: Session, fiscal_year: FiscalYear, cut: dt.date) -> Figures | None:
    row = session.scalar(
        select(Publication.figures).where(Publication.fiscal_year == fiscal_year.year, Publication.cut_on == cut)
    )
    return None if row is None else Figures.from_json(json.loads(row))


def publication(session: Session, organisation: Organisation, fiscal_year: FiscalYear, cut: dt.date, today: dt.date) -> Figures:
    """The year's figures as of `cut` (a month end no later than the year's end), from
    the store, or counted now, with every earlier cut of the year that was never
    published, suppressed in order and stored. Commits what it stores."""
    found = stored_cut(session, fiscal_year, cut)
    if found is not None:
        return found
    known = stored(session, fiscal_year)
    missing = [c for c in fiscal_year.month_ends(cut) if c not in known]
    before = [c for c in known if c < missing[0]]
    earlier = hidden_cells(known[max(before)].tables) if before else {}
    counts = count_entries(load_entries(session, fiscal_year, cut), organisation, missing)
    made = publish_sequence(counts, fiscal_year, organisation.small_count, earlier)
    for figures in made:
        session.add(Publication(
            fiscal_year=fiscal_year.year, cut_on=figures.cut_on, made_on=today,
            figures=json.dumps(figures.to_json(), ensure_ascii=False),
        ))
    try:
        session.commit()
    except IntegrityError:  # another process published the same cut first: theirs stands
        session.rollback()
        found = stored_cut(session, fiscal_year, cut)
        if found is None:
            raise
        return found
    return made[-1]


def current(session: Session, organisation: Organisation, fiscal_year: FiscalYear, today: dt.date) -> Figures | None:
    """What is published today for the year; None while its first month is not over."""
    cut = cut_for(fiscal_year, today)
    return None if cut is None else publication(session, organisation, fiscal_year, cut, today)


def years_published(session: Session, today: dt.date) -> list[FiscalYear]:
    """The fiscal years a page may be asked for: from the first case's to this one."""
    first = session.scalar(select(func.min(Report.received_on)))
    this = FiscalYear.of(today)
    start = FiscalYear.of(first).year if first is not None else this.year
    return [FiscalYear(y) for y in range(min(start, this.year), this.year + 1)]
