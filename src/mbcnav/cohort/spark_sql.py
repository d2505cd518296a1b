"""Spark SQL texts for the Spark engine: conforming and checking the input, and deriving the facts.

The rule conditions and the plan (status, safety net, tests, concordance) are the shared SQL of
`plan.py`. What Polars does with its own expressions in `validate.py` and `facts.py` is written
here as Spark SQL, line for line the same semantics; the parity test runs both engines against
the one-patient engine, so neither can drift. Everything is generated from the Profile tree
(`schema.profile_tree`) and the knowledge base, so a new enumeration value or drug class needs no
change here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import types as T

from mbcnav.cohort.plan import quote
from mbcnav.cohort.schema import DRUG_LISTS, Field, profile_tree
from mbcnav.cohort.tables import CONDITION_COLUMNS
from mbcnav.cohort.validate import FALSE_TEXT, NULL_ITEM, TRUE_TEXT, UNKNOWN_FIELD, quoted
from mbcnav.facts import (
    EARLY_RELAPSE_MONTHS,
    ENDOCRINE_SENSITIVE_MONTHS,
    MENOPAUSE_AGE,
    VISCERAL_SITES,
    DrugClasses,
)
from mbcnav.profile import SITES

Sql = str


def spark_type(spec: Field) -> str:
    if spec.kind == "struct":
        return "STRUCT<" + ", ".join(f"`{f.name}`: {spark_type(f)}" for f in spec.fields) + ">"
    if spec.kind == "list":
        assert spec.item is not None
        return f"ARRAY<{spark_type(spec.item)}>"
    return {"enum": "STRING", "text": "STRING", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN"}[spec.kind]


def _null(spec: Field) -> Sql:
    return f"CAST(NULL AS {spark_type(spec)})"


def _literal(value: object, spec: Field) -> Sql:
    if value is None:
        return _null(spec)
    if isinstance(value, list):
        return f"CAST(array() AS {spark_type(spec)})"
    return quote(str(value)) if isinstance(value, str) else str(value)


@dataclass
class Node:
    value: Sql
    checks: list[tuple[Sql, Sql]] = field(default_factory=list)   # (bad, message) pairs


def _message(path: str, text: str, *values: Sql) -> Sql:
    """concat of literal text and SQL values; '{}' in `text` marks where each value goes."""
    parts = text.split("{}")
    pieces = [quote(f"{path}: {parts[0]}")]
    for value, rest in zip(values, parts[1:], strict=True):
        pieces += [f"CAST({value} AS STRING)", quote(rest)]
    return "concat(" + ", ".join(pieces) + ")"


class Conformer:
    """Input columns as found -> canonical values, with the checks `validate.Conformer` makes."""

    def __init__(self, unknown_drugs: Mapping[str, str]) -> None:
        self.unknown_drugs = unknown_drugs
        self.depth = 0

    def frame(self, actual: T.StructType) -> dict[str, Node]:
        members = {f.name: f.dataType for f in actual.fields}
        out: dict[str, Node] = {}
        for spec in profile_tree().fields:
            out[spec.name] = self.node(f"`{spec.name}`", members.get(spec.name), spec, spec.name)
        extra = [n for n in members if n not in out and not n.startswith("_")]
        for name in extra:
            out[f"_extra_{name}"] = Node("NULL", [(f"`{name}` IS NOT NULL", quote(f"{name}: {UNKNOWN_FIELD}"))])
        return out

    def node(self, sql: Sql, actual: T.DataType | None, spec: Field, path: str) -> Node:
        if actual is None or isinstance(actual, T.NullType):
            node = Node(_literal(spec.default, spec) if spec.kind != "struct" or not spec.factory else
                        self._struct_value(spec, {}, "", path))
            if spec.required:
                node.checks.append(("TRUE", quote(f"{path}: required")))
            return node
        if spec.kind == "struct":
            return self._struct(sql, actual, spec, path)
        if spec.kind == "list":
            return self._list(sql, actual, spec, path)
        if isinstance(actual, T.StructType | T.ArrayType | T.MapType):
            shape = "a list" if isinstance(actual, T.ArrayType) else "an object"
            node = Node(_literal(spec.default, spec))
            node.checks.append((f"{sql} IS NOT NULL", quote(f"{path}: must be a single value, not {shape}")))
            if spec.required:
                node.checks.append((f"{sql} IS NULL", quote(f"{path}: required")))
            return node
        node = self._scalar(sql, actual, spec, path)
        if spec.required:
            node.checks.append((f"{sql} IS NULL", quote(f"{path}: required")))
        return node

    def _scalar(self, sql: Sql, actual: T.DataType, spec: Field, path: str) -> Node:
        numeric = isinstance(actual, T.NumericType)
        if spec.kind == "enum":
            text = sql
            if numeric and "0" in spec.allowed:  # profile.Her2: a bare 0 means IHC 0
                text = f"CASE WHEN {sql} = 0 THEN '0' ELSE CAST({sql} AS STRING) END"
            elif not isinstance(actual, T.StringType):
                text = f"CAST({sql} AS STRING)"
            allowed = ", ".join(quote(v) for v in spec.allowed)
            bad = f"({text} IS NOT NULL AND NOT {text} IN ({allowed}))"
            message = _message(path, f"'{{}}' is not allowed; allowed values: {quoted(spec.allowed)}", text)
            default = quote(spec.default) if spec.default is not None else "NULL"
            return Node(f"COALESCE({text}, {default})", [(bad, message)])
        if spec.kind in ("int", "float"):
            number = f"try_cast({sql} AS DOUBLE)" if numeric else f"try_cast(trim(CAST({sql} AS STRING)) AS DOUBLE)"
            checks = [(f"({sql} IS NOT NULL AND {number} IS NULL)", _message(path, "'{}' is not a number", sql))]
            shown = f"CASE WHEN {number} = floor({number}) THEN CAST(try_cast({number} AS BIGINT) AS STRING) " \
                    f"ELSE CAST({number} AS STRING) END"
            if spec.kind == "int":
                checks.append((f"({number} <> floor({number}))", _message(path, "{} is not a whole number", shown)))
            if spec.ge is not None:
                checks.append((f"({number} < {spec.ge})", _message(path, f"must be at least {spec.ge:g} (got {{}})",
                                                                    shown)))
            if spec.le is not None:
                checks.append((f"({number} > {spec.le})", _message(path, f"must be at most {spec.le:g} (got {{}})",
                                                                   shown)))
            value = f"try_cast({number} AS BIGINT)" if spec.kind == "int" else number
            return Node(value, checks)
        if spec.kind == "bool":
            if isinstance(actual, T.BooleanType):
                return Node(sql)
            text = f"lower(trim(CAST({sql} AS STRING)))"
            truthy = ", ".join(quote(v) for v in TRUE_TEXT)
            falsy = ", ".join(quote(v) for v in FALSE_TEXT)
            value = f"CASE WHEN {text} IN ({truthy}) THEN TRUE WHEN {text} IN ({falsy}) THEN FALSE END"
            bad = f"({sql} IS NOT NULL AND ({value}) IS NULL)"
            return Node(value, [(bad, _message(path, "'{}' is not true or false", sql))])
        node = Node(f"CAST({sql} AS STRING)")
        if spec.path[:-1] in DRUG_LISTS and self.unknown_drugs:
            names = ", ".join(quote(n) for n in self.unknown_drugs)
            messages = "map(" + ", ".join(f"{quote(n)}, {quote(m)}" for n, m in self.unknown_drugs.items()) + ")"
            message = f"concat({quote(path + ': ')}, try_element_at({messages}, {sql}))"
            node.checks.append((f"{sql} IN ({names})", message))
        return node

    def _list(self, sql: Sql, actual: T.DataType, spec: Field, path: str) -> Node:
        assert spec.item is not None
        if not isinstance(actual, T.ArrayType):
            node = Node(_literal(spec.default, spec))
            node.checks.append((f"{sql} IS NOT NULL", quote(f"{path}: must be a list")))
            return node
        self.depth += 1
        var, index = f"e{self.depth}", f"i{self.depth}"
        marker = f"[#{self.depth}]"
        item = self.node(var, actual.elementType, spec.item, f"{path}{marker}")
        self.depth -= 1
        value = f"transform({sql}, {var} -> {item.value})"
        if spec.default is not None:
            value = f"COALESCE({value}, {_literal(spec.default, spec)})"
        node = Node(value)
        # A null item is refused (validate.NULL_ITEM); the item's own checks do not apply to it.
        item.checks = [(f"{var} IS NULL", quote(f"{path}{marker}: {NULL_ITEM}")),
                       *((f"{var} IS NOT NULL AND ({b})", m) for b, m in item.checks)]
        if item.checks:
            any_bad = " OR ".join(f"COALESCE({b}, FALSE)" for b, _ in item.checks)
            first = "coalesce(" + ", ".join(
                f"CASE WHEN COALESCE({b}, FALSE) THEN {m} END" for b, m in item.checks) + ")"
            located = f"replace({first}, {quote(marker)}, concat('[', CAST({index} AS STRING), ']'))"
            node.checks.append((
                f"COALESCE(exists({sql}, {var} -> {any_bad}), FALSE)",
                f"try_element_at(filter(transform({sql}, ({var}, {index}) -> {located}), m -> m IS NOT NULL), 1)",
            ))
        if spec.required:
            node.checks.append((f"{sql} IS NULL", quote(f"{path}: required")))
        return node

    def _struct(self, sql: Sql, actual: T.DataType, spec: Field, path: str) -> Node:
        if not isinstance(actual, T.StructType):
            node = Node(_null(spec))
            node.checks.append((f"{sql} IS NOT NULL", quote(f"{path}: must be an object")))
            return node
        members = {f.name: f.dataType for f in actual.fields}
        checks: list[tuple[Sql, Sql]] = []
        value = self._struct_value(spec, members, sql, path, checks)
        for name in members:
            if all(f.name != name for f in spec.fields):
                checks.append((f"{sql}.`{name}` IS NOT NULL", quote(f"{path}.{name}: {UNKNOWN_FIELD}")))
        if not spec.factory and not spec.required:  # brain_metastases: missing stays missing
            value = f"CASE WHEN {sql} IS NULL THEN {_null(spec)} ELSE {value} END"
        return Node(value, checks)

    def _struct_value(self, spec: Field, members: Mapping[str, T.DataType], sql: Sql, path: str,
                      checks: list[tuple[Sql, Sql]] | None = None) -> Sql:
        parts = []
        for child in spec.fields:
            sub = self.node(f"{sql}.`{child.name}`", members.get(child.name), child, f"{path}.{child.name}")
            parts.append(f"{quote(child.name)}, {sub.value}")
            if checks is not None:
                checks.extend(sub.checks)
        return "named_struct(" + ", ".join(parts) + ")"


def cross_checks() -> list[tuple[Sql, Sql]]:
    """profile.py's model validators, over conformed columns (see validate._cross_checks)."""
    ongoing = "size(filter(history.metastatic, e -> e.outcome = 'ongoing'))"
    last = "CASE WHEN try_element_at(history.metastatic, -1).outcome = 'ongoing' THEN 1 ELSE 0 END"
    return [
        ("tumor.her2.ihc = '3+' AND tumor.her2.ish = 'not_amplified'",
         quote("tumor.her2: IHC 3+ with ISH not amplified is not a valid combination; IHC 3+ is HER2-positive "
               "without ISH. Check the pathology report and enter ish: not_done, or the IHC score that was reported")),
        ("sex = 'male' AND menopausal_status IS NOT NULL AND menopausal_status <> 'unknown'",
         quote("menopausal_status: applies to women only; leave it out for a man (a man on a GnRH agonist can set "
               "ovarian_function_suppressed: true instead)")),
        ("sex = 'male' AND array_contains(health.conditions, 'pregnancy')",
         quote("health.conditions: 'pregnancy' cannot be recorded for a man")),
        (f"size(history.metastatic) > 0 AND {ongoing} > {last}",
         quote("history.metastatic: only the last (newest) treatment can be 'ongoing'; list treatments oldest first "
               "and mark earlier ones progressed, intolerant or stopped")),
    ]


# -- facts ---------------------------------------------------------------------------------------------

def _known(sql: Sql) -> Sql:
    return f"CASE WHEN {sql} = 'unknown' THEN NULL ELSE {sql} END"


def _map(pairs: Mapping[str, Sql]) -> Sql:
    if not pairs:
        return "map()"
    return "map(" + ", ".join(f"{quote(k)}, {v}" for k, v in pairs.items()) + ")"


MASK_BITS = 62


@dataclass(frozen=True)
class DrugMaps:
    """Drug name as typed -> generic ids and history flag masks (brand names resolved).

    One 62-bit mask holds every history flag the knowledge base declares today (49); a knowledge
    base with more must split `flags` into words here, as the local engine already does.
    """

    ids: Mapping[str, tuple[str, ...]]
    flags: list[str]          # "class:x" / "drug:x", bit i of the mask
    drugs: DrugClasses

    def __post_init__(self) -> None:
        if len(self.flags) > MASK_BITS:
            raise ValueError(f"{len(self.flags)} history flags do not fit one {MASK_BITS}-bit mask")

    def mask(self, name: str) -> int:
        expanded = self.drugs.expand(self.ids[name])
        classes = self.drugs.classes_of(expanded)
        out = 0
        for i, flag in enumerate(self.flags):
            kind, value = flag.split(":", 1)
            if (kind == "class" and value in classes) or (kind == "drug" and value in expanded):
                out |= 1 << i
        return out


def fact_steps(columns: Mapping[str, object], maps: DrugMaps, qt_names: Sequence[str]) -> list[dict[str, Sql]]:
    """Ordered steps of named Spark SQL texts from conformed Profile columns to every fact column."""
    masks = _map({n: f"{maps.mask(n)}L" for n in maps.ids})
    bit = {flag: 1 << i for i, flag in enumerate(maps.flags)}

    def entry_mask(drugs: Sql) -> Sql:
        return f"aggregate({drugs}, 0L, (acc, d) -> acc | COALESCE(try_element_at({masks}, d), 0L))"

    def has(mask: Sql, cls: str) -> Sql:
        return f"(({mask} & {bit['class:' + cls]}L) <> 0)"

    qt = ", ".join(quote(n) for n in qt_names) or "NULL"
    visceral = ", ".join(quote(s) for s in VISCERAL_SITES)
    lists = {
        "_met": "transform(history.metastatic, e -> named_struct('m', " + entry_mask("e.drugs")
                + ", 'progressed', COALESCE(e.outcome = 'progressed', FALSE)))",
        "_early": "transform(history.early, e -> named_struct('m', " + entry_mask("e.drugs")
                  + ", 'months', e.months_since_end))",
        "_status": _known("menopausal_status"),
        "_brain_added": "disease.sites IS NOT NULL AND disease.brain_metastases IS NOT NULL AND "
                        "COALESCE(disease.brain_metastases.count <> 0, TRUE)",
        "taking_qt_drug": f"COALESCE(exists(current_medications, m -> m IN ({qt})), FALSE)",
    }
    masks_step = {
        "_met_all": "aggregate(_met, 0L, (acc, e) -> acc | e.m)",
        "_early_all": "aggregate(_early, 0L, (acc, e) -> acc | e.m)",
        "_sites": "CASE WHEN disease.sites IS NULL THEN NULL WHEN _brain_added THEN "
                  "array_union(array_distinct(disease.sites), array('brain')) ELSE array_distinct(disease.sites) END",
        "progressed_on_et_met": f"COALESCE(exists(_met, e -> {has('e.m', 'endocrine')} AND e.progressed), FALSE)",
    }
    for cls, prefix in {"endocrine": "_et", "chemotherapy": "_chemo", "anti_her2": "_antiher2",
                        "immunotherapy": "_immuno"}.items():
        masks_step[f"{prefix}_n"] = f"size(filter(_early, e -> {has('e.m', cls)}))"
        masks_step[f"{prefix}_missing"] = f"size(filter(_early, e -> {has('e.m', cls)} AND e.months IS NULL))"
        masks_step[f"{prefix}_min"] = f"array_min(transform(filter(_early, e -> {has('e.m', cls)}), e -> e.months))"
    person = {
        "sex": "sex",
        "age": "age",
        "menopause": "CASE WHEN sex = 'male' THEN 'not_applicable' ELSE _status END",
        "postmenopausal": "CASE WHEN sex = 'male' THEN FALSE WHEN _status = 'post' OR "
                          "COALESCE(ovarian_function_suppressed, FALSE) THEN TRUE WHEN _status IN ('pre', 'peri') "
                          f"THEN FALSE WHEN age >= {MENOPAUSE_AGE} THEN TRUE END",
        "needs_ovarian_suppression": "CASE WHEN sex = 'male' THEN FALSE WHEN _status = 'post' OR "
                                     "COALESCE(ovarian_function_suppressed, FALSE) THEN FALSE WHEN _status IN "
                                     f"('pre', 'peri') THEN TRUE WHEN age >= {MENOPAUSE_AGE} THEN FALSE END",
        "ovarian_suppressed": "COALESCE(ovarian_function_suppressed, FALSE)",
        "er": _known("tumor.er"), "pr": _known("tumor.pr"),
        "her2": "CASE WHEN tumor.her2.ish = 'amplified' OR tumor.her2.ihc = '3+' THEN 'positive' "
                "WHEN tumor.her2.ihc = '2+' THEN CASE WHEN tumor.her2.ish = 'not_amplified' THEN 'low' END "
                "WHEN tumor.her2.ihc = '1+' THEN 'low' WHEN tumor.her2.ihc = 'ultralow' THEN 'ultralow' "
                "WHEN tumor.her2.ihc = '0' THEN 'zero' END",
        "her2_equivocal": "tumor.her2.ihc = '2+' AND tumor.her2.ish = 'not_done'",
        **{g: _known(f"tumor.{g}") for g in ("pik3ca", "akt1", "pten", "esr1")},
        "gbrca": _known("tumor.germline_brca"), "gpalb2": _known("tumor.germline_palb2"),
        "pdl1_cps": "tumor.pdl1_cps", "msi": _known("tumor.msi"), "tmb": "tumor.tmb",
        "ntrk": _known("tumor.ntrk_fusion"),
        "sites_known": "disease.sites IS NOT NULL",
        **{f"site_{s}": f"CASE WHEN _sites IS NOT NULL THEN array_contains(_sites, {quote(s)}) END" for s in SITES},
        "visceral": f"CASE WHEN _sites IS NOT NULL THEN exists(_sites, s -> s IN ({visceral})) END",
        "bone_only": "CASE WHEN _sites IS NOT NULL THEN size(_sites) = 1 AND try_element_at(_sites, 1) = 'bone' END",
        "site_count": "CASE WHEN _sites IS NOT NULL THEN CAST(size(_sites) AS DOUBLE) END",
        **{n: f"disease.{n}" for n in ("visceral_crisis", "symptomatic", "spinal_cord_compression", "oligometastatic")},
        "brain_mets": "CASE WHEN disease.brain_metastases IS NOT NULL THEN "
                      "COALESCE(disease.brain_metastases.count <> 0, TRUE) WHEN _sites IS NOT NULL THEN "
                      "array_contains(_sites, 'brain') END",
        "brain_count": "CAST(disease.brain_metastases.count AS DOUBLE)",
        "local_recurrence": "CASE WHEN _sites IS NOT NULL THEN (array_contains(_sites, 'chest_wall') OR "
                            "array_contains(_sites, 'breast')) AND COALESCE(disease.presentation <> 'de_novo', TRUE) "
                            "END",
        "presentation": "disease.presentation",
        "ecog": "health.ecog", "lvef": "health.lvef_percent",
        **{col: f"array_contains(health.conditions, {quote(c)})" for c, col in CONDITION_COLUMNS.items()},
        "met_lines": "CAST(size(history.metastatic) AS DOUBLE)",
        "line": "CAST(size(history.metastatic) + 1 AS DOUBLE)",
        "met_chemo_lines": f"CAST(size(filter(_met, e -> {has('e.m', 'chemotherapy')})) AS DOUBLE)",
        "met_antiher2_lines": f"CAST(size(filter(_met, e -> {has('e.m', 'anti_her2')})) AS DOUBLE)",
        "met_endocrine_lines": f"CAST(size(filter(_met, e -> {has('e.m', 'endocrine')})) AS DOUBLE)",
        "on_treatment": "COALESCE(try_element_at(history.metastatic, -1).outcome = 'ongoing', FALSE)",
        "early_endocrine": "_et_n > 0", "early_chemo": "_chemo_n > 0", "early_antiher2": "_antiher2_n > 0",
        "early_immunotherapy": "_immuno_n > 0",
        "dfi_months": "CASE WHEN size(history.early) = 0 OR "
                      "size(filter(history.early, e -> e.months_since_end IS NULL)) > 0 THEN NULL ELSE "
                      "CAST(array_min(transform(history.early, e -> e.months_since_end)) AS DOUBLE) END",
        **{f"{c}_relapse_6m": f"CASE WHEN _{c}_n = 0 THEN FALSE WHEN _{c}_min <= {EARLY_RELAPSE_MONTHS} THEN TRUE "
                              f"WHEN _{c}_missing > 0 THEN NULL ELSE FALSE END" for c in ("chemo", "antiher2")},
    }
    limit = ENDOCRINE_SENSITIVE_MONTHS
    person["endocrine_sensitivity"] = (
        "CASE WHEN progressed_on_et_met THEN 'resistant' WHEN _et_n = 0 THEN 'sensitive' "
        f"WHEN _et_missing > 0 THEN CASE WHEN _et_min <= {limit} THEN 'resistant' END "
        f"WHEN _et_min <= {limit} THEN 'resistant' ELSE 'sensitive' END")
    person["et_free_months"] = (
        "CAST(CASE WHEN progressed_on_et_met THEN _et_min WHEN _et_n = 0 THEN NULL "
        f"WHEN _et_missing > 0 THEN CASE WHEN _et_min <= {limit} THEN _et_min END ELSE _et_min END AS DOUBLE)")
    for flag, value in bit.items():
        name = flag.split(":", 1)[1]
        if f"met_{name}" in columns:
            person[f"met_{name}"] = f"((_met_all & {value}L) <> 0)"
            person[f"prior_{name}"] = f"(((_met_all | _early_all) & {value}L) <> 0)"
    second = {
        "hr": "CASE WHEN er IN ('positive', 'low') OR pr = 'positive' THEN 'positive' "
              "WHEN er = 'negative' AND pr = 'negative' THEN 'negative' END",
        "er_low": "er = 'low'",
        "her2_negative": "CASE WHEN her2 IS NOT NULL THEN her2 <> 'positive' "
                         "WHEN tumor.her2.ish = 'not_amplified' THEN TRUE END",
        "pi3k_pathway_altered": "pik3ca = 'mutated' OR akt1 = 'mutated' OR pten = 'altered'",
        "gbrca_mutated": "gbrca IN ('brca1', 'brca2')",
        "brain_active": "CASE WHEN NOT COALESCE(brain_mets, TRUE) THEN FALSE ELSE disease.brain_metastases.active END",
        "brain_symptomatic": "CASE WHEN NOT COALESCE(brain_mets, TRUE) THEN FALSE "
                             "ELSE disease.brain_metastases.symptomatic END",
    }
    third = {
        "subtype": "CASE WHEN hr IS NULL OR her2_negative IS NULL THEN NULL WHEN NOT her2_negative THEN "
                   "CASE WHEN hr = 'positive' THEN 'hr_positive_her2_positive' ELSE 'hr_negative_her2_positive' END "
                   "ELSE CASE WHEN hr = 'positive' THEN 'hr_positive_her2_negative' ELSE 'triple_negative' END END",
    }
    return [lists, masks_step, person, second, third]
