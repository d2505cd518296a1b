"""Command line: `mbcnav recommend | explain | sources | kb lint`.

Invalid input exits with status 2 and a message naming the field on stderr.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import click

from mbcnav.profile import ProfileError, profile_json

EXAMPLE = "hr_positive_postmenopausal_first_line.json"


def _fail(message: str) -> NoReturn:
    click.echo(f"mbcnav: {message}", err=True)
    sys.exit(2)


def _read_profile(path: str | None) -> dict[str, Any]:
    if path is None:
        text = (resources.files("mbcnav") / "examples" / EXAMPLE).read_text(encoding="utf-8")
        click.echo(f"(no profile given: using the bundled example {EXAMPLE})", err=True)
    elif path == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            _fail(f"cannot read {path}: {err.strerror}")
    try:
        data = profile_json(text)
    except ProfileError as err:   # a key given twice
        _problems(err)
    except json.JSONDecodeError as err:
        _fail(f"{path or EXAMPLE} is not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}")
    if not isinstance(data, dict):
        _fail("a profile is a JSON object, e.g. {\"sex\": \"female\", \"tumor\": {\"er\": \"positive\"}}")
    return data


def _problems(err: ProfileError) -> NoReturn:
    click.echo("mbcnav: the profile is not valid:", err=True)
    for problem in err.problems:
        click.echo(f"  - {problem}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mbcnav")
def main() -> None:
    """Metastatic Breast Cancer Navigator: explained treatment options for a profile.

    Information to discuss with a care team, not medical advice.
    """


@main.command()
@click.argument("profile", required=False)
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True)
@click.option("--fhir", "fhir_bundle", type=click.Path(exists=True, dir_okay=False),
              help="Read a FHIR R4 / mCODE Bundle instead of a profile; the import report goes to stderr.")
def recommend(profile: str | None, fmt: str, fhir_bundle: str | None) -> None:
    """Print the Recommendation (contract v1) for PROFILE.json ('-' reads stdin).

    Without PROFILE, a bundled example profile is used.
    """
    from mbcnav.engine import recommend as run
    from mbcnav.render.text import render

    if fhir_bundle:
        from mbcnav.fhir import recommend_from_fhir

        try:
            report, result = recommend_from_fhir(fhir_bundle)
        except (OSError, ValueError) as err:
            _fail(f"cannot read {fhir_bundle}: {err}")
        for line in report.lines():
            click.echo(line, err=True)
        if result is None:
            click.echo("mbcnav: the bundle does not give a usable profile:", err=True)
            for problem in report.profile_problems:
                click.echo(f"  - {problem}", err=True)
            sys.exit(2)
        click.echo(render(result) if fmt == "text" else json.dumps(result, indent=2, ensure_ascii=False))
        return
    data = _read_profile(profile)
    try:
        rec = run(data)
    except ProfileError as err:
        _problems(err)
    if fmt == "text":
        from mbcnav.whatif import what_if

        click.echo(render(rec, what_if(data, rec)))
    else:
        click.echo(json.dumps(rec, indent=2, ensure_ascii=False))


@main.command()
@click.argument("profile", required=False)
@click.option("--only-applicable", is_flag=True, help="Hide rules whose context (applies_when) does not hold.")
def explain(profile: str | None, only_applicable: bool) -> None:
    """Show every rule with the facts it saw and whether it fired."""
    from mbcnav.engine import evaluate

    data = _read_profile(profile)
    try:
        ev = evaluate(data)
    except ProfileError as err:
        _problems(err)
    click.echo("FACTS (None = unknown)")
    for name in sorted(ev.facts):
        click.echo(f"  {name} = {ev.facts[name]!r}")
    click.echo("\nRULES")
    for result in ev.results:
        if result.applies is not True and only_applicable:
            continue
        click.echo(f"  [{result.status}] {result.rule.id} ({result.rule.kind})")
        click.echo(f"      applies_when {result.rule.applies_when!r} -> {result.applies}")
        for clause in result.clauses:
            unknown = f"  unknown: {', '.join(clause.unknown_columns)}" if clause.unknown_columns else ""
            click.echo(f"      {clause.kind} {clause.id}: {clause.when!r} -> {clause.value}{unknown}")
        if result.blocked_by:
            click.echo(f"      blocked by safety: {', '.join(result.blocked_by)}")
    fired = sum(r.status == "offered" for r in ev.results)
    click.echo(f"\n{len(ev.results)} rules: {fired} fired, "
               f"{sum(r.applies is True for r in ev.results)} applied to this profile")


@main.command()
@click.argument("profile", required=False)
@click.option("--pdf", "pdf_path", required=True, type=click.Path(dir_okay=False), help="Where to write the PDF.")
def report(profile: str | None, pdf_path: str) -> None:
    """Write the one-page clinician summary (PDF) for PROFILE.json."""
    from mbcnav.render.report_pdf import report_pdf

    data = _read_profile(profile)
    try:
        pdf = report_pdf(data)
    except ProfileError as err:
        _problems(err)
    Path(pdf_path).write_bytes(pdf)
    click.echo(f"wrote {pdf_path} ({len(pdf) // 1024} KiB)", err=True)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def sources(fmt: str) -> None:
    """List every source with its review date, and what cites it."""
    from mbcnav.knowledge.loader import knowledge

    kb = knowledge()
    cited: dict[str, list[str]] = {}
    for item in kb.reviewed_items():
        for source in item.sources:
            cited.setdefault(source, []).append(getattr(item, "id", "?"))
    rows: list[dict[str, Any]] = [
        {"id": src.id, "kind": src.kind, "citation": src.citation, "url": src.url,
         "reviewed": src.reviewed.isoformat(), "cited_by": sorted(set(cited.get(src.id, [])))}
        for src in sorted(kb.sources.values(), key=lambda x: x.id)
    ]
    if fmt == "json":
        click.echo(json.dumps({"knowledge_version": kb.version, "sources": rows}, indent=2))
        return
    click.echo(f"Knowledge version {kb.version}; last review {kb.last_reviewed().isoformat()}\n")
    for row in rows:
        click.echo(f"{row['id']}  [{row['kind']}, reviewed {row['reviewed']}]")
        click.echo(f"    {row['citation']}")
        if row["url"]:
            click.echo(f"    {row['url']}")
        click.echo(f"    cited by {len(row['cited_by'])}: {', '.join(row['cited_by'][:8])}"
                   + (" ..." if len(row["cited_by"]) > 8 else ""))


@main.group()
def kb() -> None:
    """Knowledge-base maintenance."""


@kb.command()
def lint() -> None:
    """Check every rule example, reading grade, threshold examples and review dates."""
    from mbcnav.knowledge import lint as checks
    from mbcnav.knowledge.loader import knowledge

    base = knowledge()
    problems: list[str] = []
    for case in checks.example_cases(base):
        problems += [f"{case.name}: {p}" for p in checks.check_example(base, case)]
    problems += checks.readability_problems(base)
    problems += checks.boundary_problems(base)
    problems += checks.stale_reviews(base)
    for problem in problems:
        click.echo(problem)
    click.echo(f"{len(base.rules)} rules, {len(base.drugs)} drugs, {len(base.sources)} sources: "
               f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


RULE_SKELETON = """\
id: {id}
title: "TODO professional title"
plain_title: "TODO plain title (grade 8 or lower)"
category: {category}
tier: alternative
rank: 50
drugs: [[TODO_drug_id]]
applies_when: "TRUE"
requires:
  - id: TODO_requirement
    when: "TRUE"
    because: "TODO plain reason this fits."
    because_not: "TODO plain reason it does not fit."
excludes: []
cautions: []
evidence:
  - source: TODO_source_id
    level: guideline
    summary: "TODO trial or guideline and its result."
sources: [TODO_source_id]
reviewed: {today}
since: {version}
examples:
  match:
    - name: TODO_matches_because
      profile: {{sex: female}}
  no_match:
    - name: TODO_does_not_match_because
      profile: {{sex: female}}
"""


@kb.command("new-rule")
@click.option("--kind", type=click.Choice(["options", "local_and_supportive", "not_recommended"]), default="options")
@click.option("--group", default="", help="Sub-folder for options, e.g. hr_positive_her2_negative.")
@click.option("--category", default="hormone_therapy", show_default=True)
@click.argument("rule_id")
def new_rule(kind: str, group: str, category: str, rule_id: str) -> None:
    """Write a rule skeleton (metadata, one match and one no_match example) to fill in.

    The skeleton deliberately fails `mbcnav kb lint` until every TODO is replaced.
    """
    import datetime as dt

    from mbcnav.knowledge.loader import data_root

    if not rule_id.replace("_", "").isalnum() or rule_id != rule_id.lower():
        _fail("a rule id is lower_snake_case, e.g. capivasertib_plus_fulvestrant")
    folder = Path(str(data_root())) / "rules" / kind / group
    path = folder / f"{rule_id}.yaml"
    if path.exists():
        _fail(f"{path} already exists")
    version = (Path(str(data_root())) / "VERSION").read_text(encoding="utf-8").strip()
    folder.mkdir(parents=True, exist_ok=True)
    text = RULE_SKELETON.format(id=rule_id, category=category, today=dt.date.today().isoformat(), version=version)
    if kind == "not_recommended":
        text = text.replace("tier: alternative\n", "")
    path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {path}; fill in every TODO, then run `mbcnav kb lint`")


def _register_commands() -> None:
    # These modules import their heavy dependencies (uvicorn, Polars, Spark) inside the commands.
    from mbcnav.cohort.cli import cohort
    from mbcnav.web.cli import serve_command

    main.add_command(serve_command)
    main.add_command(cohort)


_register_commands()

if __name__ == "__main__":
    main()
