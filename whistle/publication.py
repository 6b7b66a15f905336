"""The forms the public figures take: labels, CSV, JSON and SVG charts.

Everything here is drawn from a suppressed `statistics.Figures`, never from raw counts,
so nothing a form adds can reveal a suppressed cell. The JSON is the stored document
itself (schema `whistle-statistics/1`, docs/statistics.md); the CSV has one row per
figure, the suppressed ones empty; the charts are plain SVG drawn on the server (no
script, no font or file from elsewhere), so that the page works under the strict CSP.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from xml.sax.saxutils import escape

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .config import Organisation
from .labels import AGENCY_LABELS, CHANNEL_LABELS, OUTCOME_LABELS, category_label
from .statistics import Figures

TABLE_TITLES = {
    "quarter": _l("Received, by quarter of the fiscal year"),
    "category": _l("Received, by kind of wrongdoing"),
    "channel": _l("Received, by channel"),
    "outcome": _l("Completed, by outcome"),
    "referral": _l("Referred to another agency"),
    "acknowledged": _l("Acknowledged within the deadline"),
    "resolved": _l("Resolved, or the delay explained, within the deadline"),
    "satisfaction": _l("Reporters satisfied with the handling (4 or 5 out of 5)"),
}

TOTAL_LABELS = {
    "received": _l("Complaints received"),
    "completed": _l("Completed"),
    "in_progress": _l("In progress"),
}

_CELL_LABELS = {
    "quarter": {
        "q1": _l("October to December"),
        "q2": _l("January to March"),
        "q3": _l("April to June"),
        "q4": _l("July to September"),
    },
    "acknowledged": {"on_time": _l("On time"), "late": _l("Late")},
    "resolved": {"on_time": _l("On time"), "late": _l("A deadline was missed")},
    "satisfaction": {"satisfied": _l("Satisfied"), "not_satisfied": _l("Not satisfied")},
}


def cell_label(organisation: Organisation, table: str, key: str) -> str:
    if table == "category":
        return category_label(organisation, key)
    fixed = {"channel": CHANNEL_LABELS, "outcome": OUTCOME_LABELS, "referral": AGENCY_LABELS}
    labels = fixed.get(table) or _CELL_LABELS.get(table, {})
    return str(labels.get(key, key))


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    value: int | None  # None: suppressed


def rows(figures: Figures, organisation: Organisation, table: str) -> list[Row]:
    return [Row(key, cell_label(organisation, table, key), value) for key, value in figures.tables[table].items()]


def percent(share: tuple[int, int] | None) -> float | None:
    return None if share is None else round(100 * share[0] / share[1], 1)


def shares(figures: Figures) -> dict[str, tuple[int, int] | None]:
    """The three shares the page states: acknowledged in time, resolved in time, satisfied."""
    return {
        "acknowledged": figures.share("acknowledged", "on_time", "late"),
        "resolved": figures.share("resolved", "on_time", "late"),
        "satisfaction": figures.share("satisfaction", "satisfied", "not_satisfied"),
    }


# --------------------------------------------------------------------------- CSV and JSON


CSV_COLUMNS = ("fiscal_year", "cut_on", "table", "key", "label", "count", "suppressed")


def to_csv(figures: Figures, organisation: Organisation) -> str:
    """One row per figure; a suppressed count is empty with `suppressed` = 1."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    head = (figures.fiscal_year, figures.cut_on.isoformat())
    for key, value in figures.totals.items():
        writer.writerow((*head, "totals", key, str(TOTAL_LABELS[key]), value, 0))
    for table in figures.tables:
        for row in rows(figures, organisation, table):
            writer.writerow((*head, table, row.key, row.label, "" if row.value is None else row.value, int(row.value is None)))
    return out.getvalue()


def to_json(figures: Figures) -> dict:
    return figures.to_json()


# --------------------------------------------------------------------------- SVG


WIDTH = 640
ROW = 44
BAR_X = 8
BAR_MAX = 520


def bar_chart(title: str, chart_rows: list[Row], suppressed_note: str) -> str:
    """A horizontal bar chart: each row's label, then its bar and count. A suppressed row
    shows no bar, only `suppressed_note`."""
    height = 36 + ROW * max(1, len(chart_rows))
    top = max((r.value or 0 for r in chart_rows), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(title, {chr(34): "&quot;"})}" font-family="sans-serif" font-size="14">',
        f"<title>{escape(title)}</title>",
        f'<text x="{BAR_X}" y="20" font-weight="bold">{escape(title)}</text>',
    ]
    for i, row in enumerate(chart_rows):
        y = 36 + i * ROW
        parts.append(f'<text x="{BAR_X}" y="{y + 14}">{escape(row.label)}</text>')
        if row.value is None:
            parts.append(f'<text x="{BAR_X}" y="{y + 32}" fill="#555" font-style="italic">{escape(suppressed_note)}</text>')
            continue
        width = round(BAR_MAX * row.value / top)
        parts.append(f'<rect x="{BAR_X}" y="{y + 20}" width="{max(width, 1) if row.value else 0}" height="16" fill="#1f5f8b"/>')
        parts.append(f'<text x="{BAR_X + width + 6}" y="{y + 33}">{row.value:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def table_chart(figures: Figures, organisation: Organisation, table: str) -> str:
    note = _("not published: fewer than %(k)d, or hidden with one that is", k=figures.small_count)
    return bar_chart(str(TABLE_TITLES[table]), rows(figures, organisation, table), note)
