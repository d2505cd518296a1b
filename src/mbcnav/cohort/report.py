"""A self-contained HTML report of cohort results, for a quality team.

One file, no scripts, no web fonts, no CDN: the charts are inline SVG drawn here, each with the
numbers beside it in a table (screen readers and print get the same content). Aggregation is
done by Polars over the results file, so the report is as quick for 10^7 patients as for 10^3.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mbcnav.cohort.local import atomic
from mbcnav.cohort.rules import OUTPUT_COLUMNS
from mbcnav.knowledge.loader import Knowledge, knowledge

TIER_COLOURS = {"preferred": "#1b6e3a", "alternative": "#2f6fae", "selected_cases": "#8a6d1f"}
CONCORDANCE_COLOURS = {"concordant": "#1b6e3a", "discordant": "#b23a2b", "unknown": "#9aa3ab"}
BAR = "#2f6fae"
SUBTYPE_NAMES = {
    "hr_positive_her2_negative": "HR+/HER2-", "hr_positive_her2_positive": "HR+/HER2+",
    "hr_negative_her2_positive": "HR-/HER2+", "triple_negative": "Triple negative", "unknown": "Unknown",
}


class ReportError(ValueError):
    """RESULTS is not a results file of `mbcnav cohort evaluate`; the message says what it lacks."""


def scan(results: Path) -> pl.LazyFrame:
    """Results from the local engine (one file) or Spark (a directory of part files)."""
    frame = pl.scan_parquet(results / "*.parquet" if results.is_dir() else results)
    try:
        columns = frame.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as err:
        raise ReportError(f"{results}: not a Parquet results file ({str(err).splitlines()[0]})") from None
    missing = [c for c in OUTPUT_COLUMNS if c not in columns]
    if missing:
        raise ReportError(f"{results}: not a results file of `mbcnav cohort evaluate` (it has no "
                          f"{', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''} column); "
                          "evaluate the cohort first, then report on its results")
    return frame


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    colour: str = BAR
    note: str = ""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _short(text: str, limit: int = 46) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def bar_chart(title: str, bars: Sequence[Bar], total: int, width: int = 760) -> str:
    """Horizontal bars, longest scale = largest value; each bar labelled with count and share."""
    label_w, row_h, pad = 320, 24, 6
    top = max((b.value for b in bars), default=0) or 1
    plot_w = width - label_w - 140
    height = len(bars) * row_h + 2 * pad
    rows = []
    for i, b in enumerate(bars):
        y = pad + i * row_h
        w = max(1.0, plot_w * b.value / top) if b.value else 0.0
        rows.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" class="lab">{_esc(_short(b.label))}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{b.colour}"><title>'
            f'{_esc(b.label)}: {b.value:,} ({_pct(b.value, total)})</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" class="num">{b.value:,} ({_pct(b.value, total)})</text>'
        )
    return _chart(title, width, height, "".join(rows))


def stacked_chart(title: str, rows: Sequence[tuple[str, dict[str, int]]], colours: dict[str, str],
                  width: int = 760) -> str:
    """100 % stacked bars, one per row label; segments in `colours` order, with a legend."""
    label_w, row_h, pad, legend_h = 170, 26, 6, 26
    plot_w = width - label_w - 70
    height = len(rows) * row_h + 2 * pad + legend_h
    parts = []
    for i, (label, counts) in enumerate(rows):
        y = legend_h + pad + i * row_h
        total = sum(counts.values())
        x = float(label_w)
        parts.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" class="lab">{_esc(label)}</text>')
        for key, colour in colours.items():
            value = counts.get(key, 0)
            w = plot_w * value / total if total else 0
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}">'
                             f'<title>{_esc(label)} - {_esc(key)}: {value:,} ({_pct(value, total)})</title></rect>')
                if w > 38:
                    parts.append(f'<text x="{x + w / 2:.1f}" y="{y + 17}" text-anchor="middle" class="in">'
                                 f'{_pct(value, total)}</text>')
            x += w
        parts.append(f'<text x="{label_w + plot_w + 6}" y="{y + 17}" class="num">n={total:,}</text>')
    legend, lx = [], label_w
    for key, colour in colours.items():
        legend.append(f'<rect x="{lx}" y="6" width="12" height="12" fill="{colour}"/>'
                      f'<text x="{lx + 16}" y="16" class="lab">{_esc(key)}</text>')
        lx += 16 + 9 * len(key) + 24
    return _chart(title, width, height, "".join(legend) + "".join(parts))


def _chart(title: str, width: int, height: int, body: str) -> str:
    """An SVG chart that keeps a readable size on a phone: below 600 px it scrolls sideways in its
    own region (focusable, so keys scroll it too) instead of shrinking its text."""
    return (f'<div class="scroll chart" role="region" tabindex="0" aria-label="{_esc(title)} (chart)">'
            f'<svg role="img" aria-label="{_esc(title)}" viewBox="0 0 {width} {height}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{_esc(title)}</title>{body}</svg></div>')


def _table(label: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A table in a region that scrolls sideways on a narrow screen (focusable, so keys scroll it too)."""
    head = "".join(f'<th scope="col">{_esc(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<div class="scroll" role="region" tabindex="0" aria-label="{_esc(label)}"><table>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _counts(frame: pl.LazyFrame, column: str) -> list[tuple[str, int]]:
    out = frame.group_by(pl.col(column).cast(pl.String)).agg(pl.len()).sort("len", descending=True).collect()
    return [(str(k), int(v)) for k, v in out.iter_rows()]


def _exploded(frame: pl.LazyFrame, column: str) -> list[tuple[str, int]]:
    out = (frame.select(pl.col(column).explode().cast(pl.String)).drop_nulls()
           .group_by(column).agg(pl.len()).sort("len", descending=True).collect())
    return [(str(k), int(v)) for k, v in out.iter_rows()]


def _concordance_by(frame: pl.LazyFrame, key: pl.Expr) -> list[tuple[str, dict[str, int]]]:
    data = (frame.filter(pl.col("given_drugs").is_not_null())
            .group_by(key.alias("key"), pl.col("concordance").cast(pl.String)).agg(pl.len()).collect())
    rows: dict[str, dict[str, int]] = {}
    for k, c, n in data.sort("key").iter_rows():
        rows.setdefault(str(k), {})[str(c)] = int(n)
    return list(rows.items())


def _questions(frame: pl.LazyFrame, kb: Knowledge) -> list[tuple[str, int, int, str]]:
    """The population questions from the issue, answered from the results columns."""
    cdk = {r.id for r in kb.rules if r.kind == "option"
           and kb.drug_classes.classes_of({d for c in r.drugs for d in c}) & {"cdk46_inhibitor"}}
    cdk_drugs = sorted(d.id for d in kb.drugs.values() if "cdk46_inhibitor" in d.classes)
    offered = pl.any_horizontal([
        pl.col(c).list.eval(pl.element().cast(pl.String).is_in(sorted(cdk))).list.any()
        for c in ("options_preferred", "options_alternative", "options_selected_cases")
    ])
    on_cdk = pl.col("given_drugs").list.eval(pl.element().cast(pl.String).is_in(cdk_drugs)).list.any()
    hr_neg = pl.col("subtype").cast(pl.String) == "hr_positive_her2_negative"
    esr1 = pl.col("tests_to_consider").list.eval(pl.element().cast(pl.String) == "esr1_ctdna").list.any()
    stats = frame.select(
        pl.len().alias("n"),
        offered.sum().alias("cdk_offered"),
        (offered & pl.col("given_drugs").is_not_null() & ~on_cdk).sum().alias("cdk_not_given"),
        (offered & pl.col("given_drugs").is_not_null()).sum().alias("cdk_recorded"),
        hr_neg.sum().alias("hr_neg"),
        (hr_neg & esr1).sum().alias("esr1_gap"),
        (pl.col("concordance").cast(pl.String) != "unknown").sum().alias("judged"),
        (pl.col("concordance").cast(pl.String) == "concordant").sum().alias("concordant"),
    ).collect().row(0, named=True)
    return [
        ("Offered a CDK4/6 inhibitor option but given something else (of those offered one, with the "
         "treatment recorded)", stats["cdk_not_given"], stats["cdk_recorded"],
         "options_* holds a rule with a CDK4/6 inhibitor; given_drugs has none"),
        ("HR+/HER2- patients for whom an ESR1 test (blood ctDNA) could open options (of all HR+/HER2-)",
         stats["esr1_gap"], stats["hr_neg"],
         "tests_to_consider contains esr1_ctdna: progression on endocrine therapy and no ESR1 mutation known"),
        ("Treatment given was one of the options offered (of patients whose concordance could be judged)",
         stats["concordant"], stats["judged"], "concordance = concordant"),
    ]


CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2327;max-width:980px;margin:24px auto;
padding:0 16px}h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #d7dde2;
padding-bottom:4px}.meta{color:#5b6670}.tiles{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}.tile{flex:1 1 170px;
border:1px solid #d7dde2;border-radius:8px;padding:10px 14px}.tile b{display:block;font-size:1.6em}
.tile span{color:#5b6670}
svg .lab{font-size:12px;fill:#1d2327}svg .num{font-size:12px;fill:#5b6670}svg .in{font-size:11px;fill:#fff}
table{border-collapse:collapse;margin:8px 0 4px;font-size:13px}
td,th{border:1px solid #d7dde2;padding:3px 8px;text-align:left}
th{background:#f3f5f7}details{margin:4px 0 12px}.note{color:#5b6670;font-size:13px}
.scroll{overflow-x:auto;max-width:100%}.scroll:focus-visible{outline:2px solid #1a5fb4}.chart svg{min-width:600px}
@media print{details{display:none}.scroll{overflow:visible}.chart svg{min-width:0}}
"""


def render(results: Path, kb: Knowledge | None = None) -> str:
    kb = kb or knowledge()
    frame = scan(results)
    n = int(frame.select(pl.len()).collect().item())
    titles = {r.id: r.title for r in kb.rules}
    tests = {t.id: t.test for t in kb.tests.values()}

    subtypes = _counts(frame, "subtype")
    her2 = _counts(frame, "her2_category")
    points = _counts(frame, "decision_point")
    options = [(i, c, "preferred") for i, c in _exploded(frame, "options_preferred")] + \
        [(i, c, "alternative") for i, c in _exploded(frame, "options_alternative")] + \
        [(i, c, "selected_cases") for i, c in _exploded(frame, "options_selected_cases")]
    options.sort(key=lambda x: -x[1])
    gaps = _exploded(frame, "tests_to_consider")
    safety = _exploded(frame, "safety_flags")
    local = _exploded(frame, "local_and_supportive")
    concordance = _counts(frame, "concordance")
    by_subtype = [(SUBTYPE_NAMES.get(k, k), v) for k, v in _concordance_by(frame, pl.col("subtype").cast(pl.String))]
    line = pl.when(pl.col("line") >= 4).then(pl.lit("line 4+")).otherwise(
        pl.format("line {}", pl.col("line").cast(pl.String)))
    by_line = _concordance_by(frame, line)
    with_option = int(frame.select(
        (pl.col("options_preferred").list.len() + pl.col("options_alternative").list.len()
         + pl.col("options_selected_cases").list.len() > 0).sum()).collect().item())
    with_gap = int(frame.select((pl.col("tests_to_consider").list.len() > 0).sum()).collect().item())
    judged = sum(v for k, v in concordance if k != "unknown")
    concordant = dict(concordance).get("concordant", 0)

    def section(title: str, svg: str, headers: Sequence[str], rows: Sequence[Sequence[object]], note: str = "") -> str:
        text = f'<p class="note">{_esc(note)}</p>' if note else ""
        return (f"<h2>{_esc(title)}</h2>{text}{svg}<details><summary>Numbers</summary>"
                f"{_table(f'{title}: numbers', headers, rows)}</details>")

    top_options = options[:20]
    parts = [
        f"<h1>Cohort report</h1><p class=meta>{_esc(results.name)} &middot; {n:,} patients &middot; knowledge "
        f"{_esc(kb.version)} &middot; generated {dt.date.today().isoformat()}</p>",
        '<p class="note">Options are what the knowledge base offers for each patient\'s recorded facts; unknown facts '
        "never count as positive, they show up as tests to consider. Information for quality review, not "
        "medical advice.</p>",
        '<div class="tiles">'
        f'<div class="tile"><b>{n:,}</b><span>patients evaluated</span></div>'
        f'<div class="tile"><b>{_pct(with_option, n)}</b><span>with at least one systemic option</span></div>'
        f'<div class="tile"><b>{_pct(with_gap, n)}</b><span>with a test that could open options</span></div>'
        f'<div class="tile"><b>{_pct(concordant, judged)}</b><span>treatment given among the options '
        f"(n={judged:,} judged)</span></div></div>",
        "<h2>Questions</h2>" + _table(
            "Questions", ["Question", "Patients", "Of", "Share", "How it is counted"],
            [(q, f"{a:,}", f"{b:,}", _pct(a, b), how) for q, a, b, how in _questions(frame, kb)]),
        section("Subtype mix", bar_chart("Subtype mix", [Bar(SUBTYPE_NAMES.get(k, k), v) for k, v in subtypes], n),
                ["Subtype", "Patients", "Share"],
                [(SUBTYPE_NAMES.get(k, k), f"{v:,}", _pct(v, n)) for k, v in subtypes]),
        section("HER2 category", bar_chart("HER2 category", [Bar(k, v) for k, v in her2], n),
                ["HER2", "Patients", "Share"], [(k, f"{v:,}", _pct(v, n)) for k, v in her2]),
        section("Decision point", bar_chart("Decision point", [Bar(k, v) for k, v in points], n),
                ["Decision point", "Patients", "Share"], [(k, f"{v:,}", _pct(v, n)) for k, v in points]),
        section("Options offered, by tier (top 20)", bar_chart(
            "Options offered", [Bar(titles.get(i, i), c, TIER_COLOURS[t]) for i, c, t in top_options], n),
            ["Option", "Rule id", "Tier", "Patients", "Share"],
            [(titles.get(i, i), i, t, f"{c:,}", _pct(c, n)) for i, c, t in options],
            "Bar colour: green preferred, blue alternative, amber selected cases. Share of all patients."),
        section("Test gaps: tests that could open more options", bar_chart(
            "Test gaps", [Bar(tests.get(i, i), c) for i, c in gaps], n),
            ["Test", "Id", "Patients", "Share"], [(tests.get(i, i), i, f"{c:,}", _pct(c, n)) for i, c in gaps]),
        section("Concordance of the treatment given, by subtype", stacked_chart(
            "Concordance by subtype", by_subtype, CONCORDANCE_COLOURS),
            ["Subtype", *CONCORDANCE_COLOURS],
            [(k, *(v.get(c, 0) for c in CONCORDANCE_COLOURS)) for k, v in by_subtype],
            "Patients with the treatment given recorded. Unknown: it matches only an option a missing test could "
            "open, or it lacks only a part added because a fact is missing (ovarian suppression when menopausal "
            "status is not recorded), or no systemic drug / a clinical trial was recorded."),
        section("Concordance by line of therapy", stacked_chart("Concordance by line", by_line, CONCORDANCE_COLOURS),
                ["Line", *CONCORDANCE_COLOURS], [(k, *(v.get(c, 0) for c in CONCORDANCE_COLOURS)) for k, v in by_line]),
        section("Local and supportive care", bar_chart(
            "Local and supportive care", [Bar(titles.get(i, i), c) for i, c in local], n),
            ["Measure", "Rule id", "Patients", "Share"],
            [(titles.get(i, i), i, f"{c:,}", _pct(c, n)) for i, c in local]),
        section("Safety flags", bar_chart("Safety flags", [Bar(i, c, "#b23a2b") for i, c in safety], n),
                ["Flag", "Patients", "Share"], [(i, f"{c:,}", _pct(c, n)) for i, c in safety],
                "Safety blocks that removed a drug from an option, and urgent warnings."),
    ]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Cohort report - {_esc(results.name)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(parts)}</main></body></html>")


def write(results: Path, target: Path, kb: Knowledge | None = None) -> None:
    text = render(results, kb)
    with atomic(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
