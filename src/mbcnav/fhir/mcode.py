"""FHIR R4 / mCODE bundle -> contract Profile, with a report of what was found, missing or unreadable.

    >>> report = import_bundle(json.load(open("bundle.json")))
    >>> report.profile            # contract v1 profile (dict)
    >>> report.sections["Observation"].unreadable

The newest result wins when several exist, and the report says so; results that disagree and
cannot be ordered stay unknown. Unknown never becomes positive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from mbcnav.facts import her2_category
from mbcnav.fhir import _bundle, _conditions, _genomics, _history, _medications, _observations
from mbcnav.fhir._codes import codes
from mbcnav.fhir._collect import Candidate, Collector
from mbcnav.fhir._conditions import ConditionFacts
from mbcnav.fhir._history import Metastatic
from mbcnav.fhir._values import Moment, moment
from mbcnav.fhir.report import Found, ImportReport
from mbcnav.profile import ProfileError, parse_profile

BIRTHSEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
SCORES = ("0", "ultralow", "1+", "2+", "3+")
SEARCHED = {
    "tumor.er": "no estrogen receptor result (LOINC 16112-5, 40556-3, 85337-4, 14228-1, 85329-1)",
    "tumor.pr": "no progesterone receptor result (LOINC 16113-3, 40557-1, 85339-0, 14230-7, 85325-9)",
    "tumor.her2": "no HER2 result (IHC 18474-7, 85319-2; ISH 85318-4, 31150-6, 96893-3; interpretation 48676-1)",
    "tumor.pik3ca": "no PIK3CA result (GenomicVariant 69548-6 with HGNC:8975, or a PIK3CA gene test)",
    "tumor.esr1": "no ESR1 result (GenomicVariant 69548-6 with HGNC:3467)",
    "tumor.akt1": "no AKT1 result (GenomicVariant 69548-6 with HGNC:391)",
    "tumor.pten": "no PTEN result (GenomicVariant 69548-6 with HGNC:9588, or a PTEN gene test)",
    "tumor.germline_brca": "no germline BRCA1 and BRCA2 result (a variant marked germline, LA6683-2)",
    "tumor.germline_palb2": "no germline PALB2 result (a variant marked germline, LA6683-2)",
    "tumor.pdl1_cps": "no PD-L1 22C3 combined positive score (LOINC 83052-1, 83054-7, 85147-7)",
    "health.ecog": "no ECOG performance status (LOINC 89247-1)",
    "menopausal_status": "no menopausal status (SNOMED 22636003 / 76498008, or a menopause observation)",
}


def import_bundle(bundle: Mapping[str, Any], *, as_of: dt.date | None = None) -> ImportReport:
    """Read one patient's FHIR R4 (mCODE) bundle into a contract profile, and report on every resource.

    ``as_of`` is the date ages are computed on (default: today).
    """
    col = Collector(codes())
    parsed = _bundle.parse(bundle, col)
    _bundle.legacy_profiles(parsed, col)
    profile: dict[str, Any] = {}
    sex = _patient(col, parsed, profile, as_of or dt.date.today())
    conditions = ConditionFacts()
    courses: list[_medications.Course] = []
    for resource in parsed.resources:
        if resource.type == "Observation":
            _observations.read(col, resource)
        elif resource.type == "Condition":
            _conditions.read(col, resource, conditions)
        elif resource.type in _medications.NOT_GIVEN:
            course = _medications.read(col, parsed, resource)
            if course is not None:
                courses.append(course)
    tumor = _tumor(col)
    if tumor:
        profile["tumor"] = tumor
    _simple(col, profile, sex)
    met = _metastatic(col, conditions)
    history = _history.build(col, courses, met, sex)
    disease = _disease(col, conditions, met, bool(history.early))
    if disease:
        profile["disease"] = disease
    if history.early or history.metastatic:
        profile["history"] = {k: v for k, v in (("early", history.early), ("metastatic", history.metastatic)) if v}
    else:
        col.missing("Medication", "history", "no cancer treatment could be placed as early or metastatic treatment")
    if history.current:
        profile["current_medications"] = list(dict.fromkeys(history.current))
    if history.ovarian_suppressed:
        profile["ovarian_function_suppressed"] = True
    col.report.profile = profile
    # Clinical choices first; notes about the file itself (old profile URLs, duplicates) last.
    technical = ("Older mCODE profile URL", "appears more than once")
    col.report.notes.sort(key=lambda note: note.startswith(technical[0]) or technical[1] in note)
    try:
        parse_profile(profile)
    except ProfileError as err:
        col.report.profile_problems = err.problems
    return col.report


def _patient(col: Collector, parsed: _bundle.Parsed, profile: dict[str, Any], as_of: dt.date) -> str | None:
    if parsed.patient is None:
        return None
    patient, ref = parsed.patient.model, parsed.patient.ref
    section = col.report.sections["Patient"]
    sex = patient.gender if patient.gender in ("female", "male") else None
    how = f"gender {patient.gender}" if sex else ""
    if sex is None:
        birthsex = next((e.valueCode for e in patient.extension or [] if e.url == BIRTHSEX), None)
        sex = {"F": "female", "M": "male"}.get(str(birthsex))
        how = f"US Core birth sex {birthsex} (gender is {patient.gender or 'not recorded'})" if sex else ""
    if sex is None:
        col.missing("Patient", "sex", f"gender is {patient.gender or 'not recorded'}; the profile needs female or male")
    else:
        profile["sex"] = sex
        section.found.append(Found(field="sex", value=sex, resource=ref, detail=how))
    born = moment(patient.birthDate)
    if born is None:
        col.missing("Patient", "age", "no birth date")
    elif born.start != born.end:
        col.missing("Patient", "age", f"birth date {born.text} is not a full date, so the age is not certain")
    else:
        age = as_of.year - born.start.year - ((as_of.month, as_of.day) < (born.start.month, born.start.day))
        if 18 <= age <= 120:
            profile["age"] = age
            section.found.append(Found(field="age", value=age, resource=ref,
                                       detail=f"birth date {born.text}, age on {as_of.isoformat()}", date=born.text))
        else:
            col.unreadable("Patient", ref, f"birth date {born.text} gives age {age}; the profile takes 18-120")
    if patient.deceasedBoolean or patient.deceasedDateTime:
        col.note("The Patient resource records that the person has died.")
    return sex


def _use(col: Collector, name: str, target: dict[str, Any], key: str, field: str | None = None) -> Candidate | None:
    chosen = col.resolve(name)
    if chosen is not None:
        target[key] = chosen.value
        col.found(chosen, field or name)
    return chosen


def _tumor(col: Collector) -> dict[str, Any]:
    tumor: dict[str, Any] = {}
    for name in ("er", "pr", "pik3ca", "esr1", "akt1", "pten", "germline_palb2", "pdl1_cps", "msi", "tmb"):
        _use(col, f"tumor.{name}", tumor, name)
    _genomics.combine_brca(col)
    _use(col, "tumor.germline_brca", tumor, "germline_brca")
    her2 = _her2(col)
    if her2:
        tumor["her2"] = her2
    for name in ("er", "pr", "her2", "pik3ca", "esr1", "akt1", "pten", "germline_brca", "germline_palb2", "pdl1_cps"):
        if name not in tumor:
            col.missing("Observation", f"tumor.{name}", SEARCHED[f"tumor.{name}"])
    return tumor


def _her2(col: Collector) -> dict[str, str]:
    ihc, ish, overall = col.resolve("her2.ihc"), col.resolve("her2.ish"), col.resolve("her2.overall")
    ish_value = ish.value if ish else _ish_numbers(col)
    ihc_value = ihc.value if ihc else None
    score = ihc_value if ihc_value in SCORES else None
    said = overall.value if overall else None
    if ish_value is None:
        if score == "2+" and said in ("positive", "negative"):
            ish_value = "amplified" if said == "positive" else "not_amplified"
            col.note(f"HER2 IHC 2+ with an overall interpretation '{said}' and no ISH result: recorded as ISH "
                     f"{ish_value.replace('_', ' ')}, as the interpretation implies.")
        elif score is None and (ihc_value == "negative" or said == "negative"):
            ish_value = "not_amplified"
            col.note("HER2 is reported negative without an IHC score: recorded as HER2-negative (IHC unknown, "
                     "ISH not amplified in profile terms). Whether it is HER2-low, ultralow or 0 is unknown; ask "
                     "for the IHC score.")
        elif score is None and said == "positive":
            ish_value = "amplified"
            col.note("HER2 is reported positive without an IHC score or ISH result: recorded as HER2-positive "
                     "(ISH amplified in profile terms).")
    her2 = {"ihc": score or "unknown", "ish": ish_value or "not_done"}
    category = her2_category(her2["ihc"], her2["ish"])
    conflict = None
    # An amplified ISH result makes HER2 positive whatever the IHC (ASCO/CAP 2018 group 1), so IHC
    # negative with ISH amplified is not a conflict; IHC 3+ with ISH not amplified is one.
    if score == "3+" and ish_value == "not_amplified":
        conflict = "IHC 3+ with ISH not amplified"
    elif said in ("positive", "negative") and category is not None and (said == "positive") != (category == "positive"):
        conflict = f"the overall interpretation is {said} but IHC/ISH give {category}"
    if conflict:
        col.note(f"HER2 results disagree ({conflict}); HER2 left unknown. Check the pathology report.")
        return {}
    for chosen, field in ((ihc, "tumor.her2.ihc"), (ish, "tumor.her2.ish"), (overall, "tumor.her2 (interpretation)")):
        if chosen is not None:
            col.found(chosen, field)
    if her2 == {"ihc": "unknown", "ish": "not_done"}:
        return {}
    return her2


def _ish_numbers(col: Collector) -> str | None:
    ratio, copies = col.resolve("her2.ish_ratio"), col.resolve("her2.ish_copies")
    if ratio is None and copies is None:
        return None
    if ratio is not None and copies is not None:
        # ASCO/CAP 2018 ISH groups: 1 (>= 2.0 and >= 4) amplified, 5 (< 2.0 and < 4) not amplified.
        if ratio.value >= 2.0 and copies.value >= 4:
            col.found(ratio, "tumor.her2.ish")
            return "amplified"
        if ratio.value < 2.0 and copies.value < 4:
            col.found(ratio, "tumor.her2.ish")
            return "not_amplified"
        col.note(f"HER2 ISH ratio {ratio.value} with {copies.value} copies per cell is ASCO/CAP group 2-4, which "
                 "needs the IHC work-up; ISH left unknown.")
        return None
    col.note("HER2 ISH has only a ratio or only a copy number; both are needed to read it. ISH left unknown.")
    return None


def _simple(col: Collector, profile: dict[str, Any], sex: str | None) -> None:
    health: dict[str, Any] = {}
    if _use(col, "health.ecog", health, "ecog") is None:
        col.missing("Observation", "health.ecog", SEARCHED["health.ecog"])
    if health:
        profile["health"] = health
    if sex == "male":
        if col.candidates.get("menopausal_status"):
            col.note("A menopausal status is recorded for a man; it is not used.")
        return
    if _use(col, "menopausal_status", profile, "menopausal_status") is None and sex == "female":
        col.missing("Observation", "menopausal_status", SEARCHED["menopausal_status"])


def _metastatic(col: Collector, conditions: ConditionFacts) -> Metastatic:
    stages = col.candidates.get("stage_group", [])
    m_cats = col.candidates.get("m_category", [])
    iv = [c for c in stages if c.value == 4]
    early = [c for c in stages if c.value < 4]
    m0 = [c for c in m_cats if c.value == "M0"]
    onsets = sorted(conditions.secondary_onsets, key=lambda o: o[0].start)
    for c in stages:
        col.found(c, "stage group", f"stage {['0', 'I', 'II', 'III', 'IV'][c.value]}")
    de_novo: bool | None = None
    dates: list[tuple[Moment, str]] = list(onsets)
    if iv and m0:
        col.note(f"Stage IV ({iv[0].resource}) but M0 ({m0[0].resource}) are both recorded; whether the cancer had "
                 "spread at diagnosis cannot be told.")
    elif iv and early:
        if _all_before(early, iv):
            de_novo = False
            dates += [(c.when, c.resource) for c in iv if c.when]
        else:
            col.note("Both stage IV and an earlier stage are recorded and cannot be ordered by date; whether the "
                     "cancer had spread at diagnosis cannot be told.")
    elif iv:
        de_novo = True
        col.note(f"Stage IV at diagnosis ({iv[0].resource}): every recorded cancer treatment is treatment for "
                 "metastatic disease.")
    elif early:
        de_novo = False
    dates.sort(key=lambda d: d[0].start)
    if de_novo is False and early and dates and not _all_before(early, [Candidate("", None, dates[0][0], "", "")]):
        col.note(f"An early stage ({early[0].resource}) is recorded on or after the first metastasis "
                 f"({dates[0][0].text}, {dates[0][1]}); the records are inconsistent, so de novo or recurrent "
                 "cannot be told.")
        de_novo = None
    if de_novo:
        return Metastatic(dates[0][0] if dates else None, "stage IV at diagnosis", True)
    if dates:
        first, ref = dates[0]
        if conditions.secondary_undated:
            col.note(f"Secondary cancer {', '.join(conditions.secondary_undated)} has no onset date, so the first "
                     f"metastatic diagnosis may be earlier than {first.text}.")
        return Metastatic(first, f"first metastatic diagnosis {first.text} ({ref})", de_novo,
                          bool(conditions.secondary_undated))
    if conditions.secondary_count or iv:
        return Metastatic(None, "no date is recorded for the first metastatic diagnosis", de_novo)
    return Metastatic(None, "no secondary cancer or stage IV is recorded", de_novo)


def _all_before(first: list[Candidate], then: list[Candidate]) -> bool:
    return all(a.when is not None and b.when is not None and a.when.before(b.when) for a in first for b in then)


def _disease(col: Collector, conditions: ConditionFacts, met: Metastatic, had_early: bool) -> dict[str, Any]:
    disease: dict[str, Any] = {}
    if met.de_novo is not None:
        disease["presentation"] = "de_novo" if met.de_novo else "recurrent"
    elif had_early:
        disease["presentation"] = "recurrent"
        col.note("Presentation taken as recurrent: treatment is recorded before the first metastatic diagnosis.")
    unreadable_sites = [u for u in col.report.sections["Condition"].unreadable if "site could not be read" in u.reason]
    if conditions.sites and unreadable_sites:
        col.note(f"Sites read: {', '.join(sorted(conditions.sites))}; but {len(unreadable_sites)} secondary cancer "
                 "record(s) have a site that could not be read, so the list would be incomplete. Sites left unknown.")
        col.missing("Condition", "disease.sites", "some secondary cancer sites could not be read")
    elif conditions.sites:
        disease["sites"] = sorted(conditions.sites)
    else:
        col.missing("Condition", "disease.sites", "no SecondaryCancerCondition with a readable site")
    if "presentation" not in disease:
        col.missing("Condition", "disease.presentation", "de novo or recurrent cannot be told (stage at diagnosis "
                    "and treatment dates)")
    return disease
