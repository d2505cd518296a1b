"""The "full explanation" a card links to: kept in memory for an hour, shown as a plain HTML page.

Cards are short by design; the clinician who wants the basis of a suggestion follows the link.
The page holds patient data, so it lives behind an unguessable key and expires. This module keeps
it in process memory (the routers on their own); the web app keeps it, encrypted, in its database
so that every worker process can open it (`_cds_store.DatabaseExplanations`).
"""

from __future__ import annotations

import html
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mbcnav.engine import Evaluation
from mbcnav.fhir.report import ImportReport

TTL_SECONDS = 3600
MAX_ENTRIES = 500


@dataclass(frozen=True)
class Explanation:
    evaluation: Evaluation
    report: ImportReport
    created: float


class ExplanationStore:
    def __init__(self) -> None:
        self._items: OrderedDict[str, Explanation] = OrderedDict()

    def put(self, evaluation: Evaluation, report: ImportReport) -> str:
        self._expire()
        key = secrets.token_urlsafe(24)
        self._items[key] = Explanation(evaluation, report, time.monotonic())
        while len(self._items) > MAX_ENTRIES:
            self._items.popitem(last=False)
        return key

    def get(self, key: str) -> Explanation | None:
        self._expire()
        return self._items.get(key)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._items:
            first = next(iter(self._items.values()))
            if now - first.created <= TTL_SECONDS:
                break
            self._items.popitem(last=False)


STORE = ExplanationStore()


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>" if items else "<p>None.</p>"


def _entry(entry: dict[str, Any]) -> str:
    drugs = " + ".join("/".join(c) for c in entry["drugs"])
    evidence = [f"{e['level']}: {e['summary']} ({e['source']})" for e in entry.get("evidence", [])]
    return (f"<h3>{html.escape(entry['title'])} <small>({html.escape(entry.get('tier', ''))})</small></h3>"
            f"<p><b>Drugs:</b> {html.escape(drugs)}</p><p><b>Why</b></p>{_list(entry['why'])}"
            + (f"<p><b>Cautions</b></p>{_list(entry['cautions'])}" if entry.get("cautions") else "")
            + (f"<p><b>Evidence</b></p>{_list(evidence)}" if evidence else ""))


def page(item: Explanation, pdf_url: str) -> str:
    rec = item.evaluation.recommendation
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>mbcnav explanation</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}"
        "small{color:#555}pre{white-space:pre-wrap}</style></head><body>",
        "<h1>mbcnav: full explanation</h1>",
        f"<p><b>{html.escape(rec['disclaimer'])}</b></p>",
        f"<p>Knowledge version {html.escape(rec['knowledge_version'])}. Subtype {html.escape(rec['subtype'])}; "
        f"HER2 {html.escape(rec['her2_category'])}; {html.escape(rec['decision_point'])}. "
        f"<a href='{html.escape(pdf_url)}'>One-page PDF summary</a></p>",
        "<h2>Options</h2>", "".join(_entry(e) for e in rec["options"]) or "<p>None.</p>",
        "<h2>Local and supportive care</h2>", "".join(_entry(e) for e in rec["local_and_supportive"]) or "<p>None.</p>",
        "<h2>Not recommended, and why</h2>",
        _list([f"{e['title']}: {' '.join(e['why'])}" for e in rec["not_recommended"]]),
        "<h2>Tests to consider</h2>", _list([f"{t['test']}: {t['why']}" for t in rec["tests_to_consider"]]),
        "<h2>Interactions</h2>",
        _list([f"{' + '.join(i['drugs'])} ({i['severity']}): {i['professional']}" for i in rec["interactions"]]),
        "<h2>Warnings</h2>", _list(rec["warnings"]),
        "<h2>What the EHR record gave mbcnav</h2>", f"<pre>{html.escape(chr(10).join(item.report.lines()))}</pre>",
        "<h2>Every rule and the facts it saw</h2>",
        _list([f"[{r.status}] {r.rule.id}" + "".join(f"; {c.kind} {c.id} = {c.value}" for c in r.clauses)
               for r in item.evaluation.results if r.applies is True]),
        "</body></html>",
    ]
    return "".join(parts)
