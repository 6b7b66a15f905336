"""The public figures: fiscal years, cuts, counting, and the proof that small-count
suppression holds across a whole year's publications.

The property-based test generates case sets and publishes every month's cut of a fiscal
year (the halves are the cuts of 31 March and 30 September). Against all of them at once
it shows, for every suppressed count, two things:

* linear algebra: the count is not in the row space of the published figures (exact
  integer elimination), even for an attacker who also knows how many cases entered each
  table at each cut;
* an alternative world: a second case set, differing in one attribute of one case, whose
  every published figure in every cut is the same while the suppressed count differs.
  Both are non-negative integer solutions, so the count is not determined.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from whistle import statistics
from whistle.config import Category, Organisation
from whistle.models import Agency, Channel, Outcome
from whistle.statistics import FiscalYear, Group, count, cut_for, publish_sequence, suppress_small_cells

FY = FiscalYear(2569)
ORG = Organisation(categories=tuple(Category(k) for k in ("bribery", "procurement", "personnel", "other")))


class TestFiscalYear:
    @pytest.mark.parametrize(
        "day, year",
        [(dt.date(2025, 10, 1), 2569), (dt.date(2026, 9, 30), 2569), (dt.date(2026, 10, 1), 2570), (dt.date(2026, 1, 15), 2569)],
    )
    def test_fiscal_year_named_by_the_be_year_it_ends_in(self, day, year):
        assert FiscalYear.of(day).year == year

    def test_fiscal_year_bounds_and_halves(self):
        assert (FY.start, FY.first_half_end, FY.end) == (dt.date(2025, 10, 1), dt.date(2026, 3, 31), dt.date(2026, 9, 30))
        assert [FY.quarter(dt.date(2025, m, 1) if m >= 10 else dt.date(2026, m, 1)) for m in (10, 12, 1, 3, 4, 7, 9)] == [1, 1, 2, 2, 3, 4, 4]

    @pytest.mark.parametrize(
        "today, cut",
        [
            (dt.date(2025, 10, 20), None),  # the first month is not over
            (dt.date(2025, 11, 1), dt.date(2025, 10, 31)),
            (dt.date(2026, 3, 31), dt.date(2026, 2, 28)),
            (dt.date(2026, 4, 1), dt.date(2026, 3, 31)),
            (dt.date(2027, 2, 10), dt.date(2026, 9, 30)),  # a past year stays at its end
        ],
    )
    def test_cut_is_the_end_of_the_previous_month(self, today, cut):
        assert cut_for(FY, today) == cut

    def test_month_ends_cover_the_year(self):
        ends = FY.month_ends(FY.end)
        assert len(ends) == 12 and ends[0] == dt.date(2025, 10, 31) and ends[5] == dt.date(2026, 3, 31) and ends[-1] == FY.end


class TestSuppression:
    def test_small_cell_gets_a_partner_preferring_a_non_zero_one(self):
        out = suppress_small_cells({"category": {"a": 0, "b": 2, "c": 9, "d": 6}}, {}, 5)
        assert out["category"] == {"a": 0, "b": None, "c": 9, "d": None}

    def test_partner_may_be_zero_when_nothing_else_is(self):
        out = suppress_small_cells({"outcome": {"a": 1, "b": 0, "c": 0}}, {}, 5)
        assert sorted(k for k, v in out["outcome"].items() if v is None) == ["a", "b"]

    def test_suppressed_cells_stay_suppressed_for_the_year(self):
        out = suppress_small_cells({"category": {"a": 7, "b": 9, "c": 6}}, {"category": {"a", "c"}}, 5)
        assert out["category"] == {"a": None, "b": 9, "c": None}

    def test_quarters_follow_from_the_totals_and_are_never_suppressed(self):
        out = suppress_small_cells({"quarter": {"q1": 1, "q2": 0, "q3": 0, "q4": 0}}, {}, 5)
        assert out["quarter"]["q1"] == 1


# --------------------------------------------------------------------------- generated case sets


@dataclass(frozen=True)
class Case:
    received: dt.date
    category: str
    channel: str
    closed: dt.date | None
    outcome: str | None
    agency: str | None
    referred: dt.date | None
    ack_on_time: bool
    resolve_missed: bool
    rated: dt.date | None
    satisfied: bool | None

    def group(self) -> Group:
        m = statistics._month
        return Group(1, m(self.received), self.category, self.channel, m(self.closed), self.outcome, self.agency,
                     m(self.referred), m(self.received + dt.timedelta(days=7)), self.ack_on_time, self.resolve_missed,
                     m(self.rated), self.satisfied)


DAYS = (FY.end - FY.start).days


@st.composite
def a_case(draw) -> Case:
    received = FY.start + dt.timedelta(days=draw(st.integers(0, DAYS)))
    closed = draw(st.one_of(st.none(), st.integers(0, 150).map(lambda d: received + dt.timedelta(days=d))))
    referred_after = draw(st.one_of(st.none(), st.integers(0, 60)))
    referred = None if referred_after is None else received + dt.timedelta(days=referred_after)
    if closed is not None and referred is not None and referred > closed:
        referred = closed
    rated = None
    if closed is not None and draw(st.booleans()):
        rated = closed + dt.timedelta(days=draw(st.integers(0, 40)))
    return Case(
        received=received,
        category=draw(st.sampled_from([c.key for c in ORG.categories])),
        channel=draw(st.sampled_from([c.value for c in (Channel.WEB, Channel.PHONE, Channel.LETTER)])),
        closed=closed,
        outcome=draw(st.sampled_from([o.value for o in Outcome])) if closed else None,
        agency=draw(st.sampled_from([a.value for a in (Agency.NACC, Agency.PACC, Agency.OMBUDSMAN)])) if referred else None,
        referred=referred,
        ack_on_time=draw(st.booleans()),
        resolve_missed=draw(st.booleans()) if closed else False,
        rated=rated,
        satisfied=draw(st.booleans()) if rated else None,
    )


def publish_year(cases: list[Case], k: int) -> list[statistics.Figures]:
    groups = [c.group() for c in cases]
    counts = [count(groups, FY, ORG, cut) for cut in FY.month_ends(FY.end)]
    return publish_sequence(counts, FY, k)


def raw_by_cut(case: Case) -> list[dict[str, dict[str, int]]]:
    """One case's contribution to every table at every cut."""
    return [count([case.group()], FY, ORG, cut).tables for cut in FY.month_ends(FY.end)]


# --------------------------------------------------------------------------- the linear algebra


def _reduce(basis: dict, row: dict) -> dict:
    """`row` reduced by an echelon basis {pivot: integer row}, exactly (integers only)."""
    row = dict(row)
    for pivot in sorted(basis):
        if row.get(pivot):
            base = basis[pivot]
            a, b = base[pivot], row[pivot]
            row = {k: a * row.get(k, 0) - b * base.get(k, 0) for k in set(row) | set(base)}
            row = {k: v for k, v in row.items() if v}
    return row


def span(rows: list[dict]) -> dict:
    basis: dict = {}
    for row in rows:
        reduced = _reduce(basis, row)
        if reduced:
            basis[min(reduced)] = reduced
    return basis


def entry_index(per_cut: list[dict], table: str) -> tuple[int, str] | None:
    """(first cut the case counts in `table`, its cell): a case's cell never changes."""
    for i, tables in enumerate(per_cut):
        for key, n in tables[table].items():
            if n:
                return i, key
    return None


def undetermined_by_linear_algebra(figures: list[statistics.Figures], table: str) -> list[tuple[int, str]]:
    """The suppressed cells of `table` that ARE in the row space (should be none).

    Unknowns: x[e, b], the cases entering cell b at cut e. Known to the attacker: every
    published cumulative cell (sum of x[e, b] for e up to the cut) and, generously, how
    many cases entered the table at each cut (sum over b of x[e, b])."""
    keys = list(figures[0].tables[table])
    cuts = range(len(figures))
    rows = [{(e, b): 1 for b in keys} for e in cuts]
    targets = []
    for i, f in enumerate(figures):
        for b, value in f.tables[table].items():
            cell = {(e, b): 1 for e in range(i + 1)}
            (targets if value is None else rows).append((i, b, cell) if value is None else cell)
    basis = span(rows)
    return [(i, b) for i, b, cell in targets if not _reduce(basis, cell)]


# --------------------------------------------------------------------------- alternative worlds


def _variants(case: Case, table: str):
    """Changes of one attribute of one case that touch `table` only."""
    if table == "category":
        yield from (dataclasses.replace(case, category=k) for k in (c.key for c in ORG.categories) if k != case.category)
    elif table == "channel":
        yield from (dataclasses.replace(case, channel=v.value) for v in Channel if v.value != case.channel)
    elif table == "outcome" and case.closed:
        yield from (dataclasses.replace(case, outcome=o.value) for o in Outcome if o.value != case.outcome)
    elif table == "referral" and case.referred:
        yield from (dataclasses.replace(case, agency=a.value) for a in Agency if a.value != case.agency)
    elif table == "acknowledged":
        yield dataclasses.replace(case, ack_on_time=not case.ack_on_time)
    elif table == "resolved" and case.closed:
        yield dataclasses.replace(case, resolve_missed=not case.resolve_missed)
    elif table == "satisfaction" and case.rated:
        yield dataclasses.replace(case, satisfied=not case.satisfied)


def uncertified(cases: list[Case], figures: list[statistics.Figures], table: str) -> set[tuple[int, str]]:
    """The suppressed cells of `table` for which no alternative world was found."""
    wanted = {(i, b) for i, f in enumerate(figures) for b, v in f.tables[table].items() if v is None}
    for case in cases:
        if not wanted:
            break
        before = raw_by_cut(case)
        for variant in _variants(case, table):
            after = raw_by_cut(variant)
            changed = {
                (name, i, b)
                for i in range(len(figures))
                for name in after[i]
                for b in set(after[i][name]) | set(before[i][name])
                if after[i][name].get(b, 0) != before[i][name].get(b, 0)
            }
            if any(figures[i].tables[name].get(b) is not None for name, i, b in changed):
                continue  # a published figure would differ: not the same publications
            wanted -= {(i, b) for name, i, b in changed if name == table}
    return wanted


SUPPRESSED_TABLES = [t for t in statistics.TABLES if t not in statistics.NEVER_SUPPRESSED]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=st.lists(a_case(), max_size=30), k=st.sampled_from([3, 5]))
def test_suppression_no_hidden_count_is_determined_by_the_years_publications(cases, k):
    figures = publish_year(cases, k)
    for f in figures:
        assert sum(f.totals.values()) == 2 * f.totals["received"]  # totals always published
        for table in SUPPRESSED_TABLES:
            cells = f.tables[table]
            assert not [v for v in cells.values() if v is not None and 0 < v < k], (f.cut_on, table)
    for table in SUPPRESSED_TABLES:
        assert undetermined_by_linear_algebra(figures, table) == [], table
        assert uncertified(cases, figures, table) == set(), table


def test_suppression_proof_fails_without_complementary_cells(monkeypatch):
    """The proof can fail: with the partner rule removed, a lone small cell is recomputed
    from the total less the published others."""
    cases = [Case(FY.start, "bribery", "web", None, None, None, None, True, False, None, None)] + [
        Case(FY.start, "procurement", "web", None, None, None, None, True, False, None, None)
    ] * 6
    original = statistics.suppress_small_cells

    def no_partner(tables, earlier, k):
        return {n: {key: None if 0 < v < k and n not in statistics.NEVER_SUPPRESSED else v for key, v in cells.items()}
                for n, cells in tables.items()}

    monkeypatch.setattr(statistics, "suppress_small_cells", no_partner)
    figures = publish_year(cases, 5)
    assert undetermined_by_linear_algebra(figures, "category") != []
    monkeypatch.setattr(statistics, "suppress_small_cells", original)
    assert undetermined_by_linear_algebra(publish_year(cases, 5), "category") == []


def test_suppression_proof_fails_when_cells_come_back_within_the_year(monkeypatch):
    """Without the year-long stickiness, an earlier month's hidden count is pinned by a
    later month's published zero."""
    case = Case(FY.start, "bribery", "web", None, None, None, None, True, False, None, None)
    later = [dataclasses.replace(case, category="procurement", received=dt.date(2025, 11, 5))] * 6
    cases = [case, *later]  # October hides bribery (1) with "other" (0); November shows "other": 0
    original = statistics.suppress_small_cells
    monkeypatch.setattr(statistics, "suppress_small_cells", lambda tables, earlier, k: original(tables, {}, k))
    figures = publish_year(cases, 5)
    assert uncertified(cases, figures, "category") != set()
