"""The cohort plan: everything engine.py decides per patient, written once as SQL over columns.

The rule conditions are the knowledge base's own texts (`kb.conditions[i].text`), evaluated
into columns ``_c<i>``. Everything engine.py then does with their truth values — rule status,
adjuncts and the safety net, tests to consider, the decision point — is compiled here, once per
knowledge base, into more SQL boolean texts over those columns (only AND, OR, NOT, COALESCE,
IS NULL and CASE, which Polars and Spark SQL evaluate with the same three-valued logic). Both
engines run exactly these texts; only turning the resulting booleans into lists of ids is theirs.

Static facts are folded here: which safety block can remove which drug of a rule, which adjunct
can add a component to it, which fact column each unknown clause would send to which test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mbcnav.engine import TIER_ORDER, _blocked
from mbcnav.knowledge import schema as s
from mbcnav.knowledge.loader import Knowledge

Sql = str
TRUE, FALSE = "TRUE", "FALSE"
CONCORDANCE = ("concordant", "discordant", "unknown")
FALLBACK_DECISION_POINT = "systemic therapy for metastatic breast cancer"  # engine._decision_point
# Given treatments that are not a systemic regimen: ignored when matching what was given to an
# option (bone-modifying agents, local treatment, palliative care) unless an option lists them.
NOT_SYSTEMIC_CLASSES = frozenset({"bone_modifying"})
NOT_SYSTEMIC_ITEMS = frozenset({"radiation", "surgery", "palliative_care"})
TRIAL = "clinical_trial"
# A component naming ovarian suppression is met by any drug that suppresses the ovaries.
SUPPRESSION = "ovarian_suppression"


def _fold(operator: str, absorbing: Sql, neutral: Sql, parts: tuple[Sql, ...]) -> Sql:
    """AND / OR of the parts with constants folded and repeats dropped."""
    if absorbing in parts:
        return absorbing
    kept = [p for p in dict.fromkeys(parts) if p != neutral]
    if not kept:
        return neutral
    return kept[0] if len(kept) == 1 else "(" + f" {operator} ".join(kept) + ")"


def and_(*parts: Sql) -> Sql:
    return _fold("AND", FALSE, TRUE, parts)


def or_(*parts: Sql) -> Sql:
    return _fold("OR", TRUE, FALSE, parts)


def not_(part: Sql) -> Sql:
    return {TRUE: FALSE, FALSE: TRUE}.get(part, f"(NOT {part})")


def is_true(column: str) -> Sql:
    return f"COALESCE({column}, FALSE)"


def quote(text: str) -> Sql:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Plan:
    """Named SQL texts in evaluation order, and how to read the answer columns back."""

    conditions: dict[str, Sql]                           # _c<i> -> the knowledge base's own text
    steps: list[dict[str, Sql]] = field(default_factory=list)
    options: dict[str, list[str]] = field(default_factory=dict)   # tier -> ids, ranked; column _o_<id>
    local: list[str] = field(default_factory=list)                # ranked; column _o_<id>
    tests: list[str] = field(default_factory=list)                # column _t_<id>
    safety: list[str] = field(default_factory=list)               # column _s_<id>
    urgent: list[str] = field(default_factory=list)               # column _w_<id>
    decision_points: list[str] = field(default_factory=list)
    given: list[str] = field(default_factory=list)                # drugs with a column _g_<id>
    not_systemic: list[str] = field(default_factory=list)
    counts_as: dict[str, tuple[str, ...]] = field(default_factory=dict)   # combination -> its parts

    def parts(self, ids: tuple[str, ...]) -> set[str]:
        """A given fixed-dose combination counts as its parts when matching options (Phesgo = P + H)."""
        return {p for i in ids for p in self.counts_as.get(i, (i,))}

    def safety_flags(self) -> list[tuple[str, str]]:
        """(column, id) for the safety_flags output list, in order: blocks, then urgent warnings."""
        return [(f"_s_{i}", i) for i in self.safety] + [(f"_w_{i}", i) for i in self.urgent]


class _Builder:
    def __init__(self, kb: Knowledge) -> None:
        self.kb = kb
        self.used: dict[str, Sql] = {}

    def col(self, text: str) -> str:
        """Column holding a condition's truth value (the knowledge base's own text)."""
        name = f"_c{self.kb.index[text]}"
        self.used[name] = text
        return name

    def true(self, text: str) -> Sql:
        return is_true(self.col(text))

    def blocks_on(self, drug: str) -> list[s.SafetyBlock]:
        return [b for b in self.kb.safety if _blocked(self.kb, b, drug)]

    def drug_blocked(self, drug: str) -> Sql:
        return or_(*(self.true(b.when) for b in self.blocks_on(drug)))

    def emptied(self, component: list[str]) -> Sql:
        return and_(*(self.drug_blocked(d) for d in component))

    def adjunct_parts(self, rule: s.Rule, certain: bool = False) -> list[tuple[s.Adjunct, Sql]]:
        """Adjuncts that add a component to this rule, each with the SQL for "it is added".

        engine._apply_adjuncts: added when its condition is true or unknown, the rule has one of
        its classes, and no component (including one an earlier adjunct added) already has it.
        `certain`: only when its condition is known to be true (what the option certainly needs).
        """
        drugs = {d for component in rule.drugs for d in component}
        classes = self.kb.drug_classes.classes_of(drugs)
        out: list[tuple[s.Adjunct, Sql]] = []
        for adjunct in self.kb.adjuncts:
            if not classes & set(adjunct.for_classes):
                continue
            if any(set(component) & set(adjunct.add) for component in rule.drugs):
                continue
            earlier = [added for prior, added in out if set(prior.add) & set(adjunct.add)]
            when = self.true(adjunct.when) if certain else f"COALESCE({self.col(adjunct.when)}, TRUE)"
            out.append((adjunct, and_(when, not_(or_(*earlier)))))
        return out


def build(kb: Knowledge) -> Plan:
    b = _Builder(kb)
    systemic = [r for r in kb.rules if r.kind in ("option", "local_and_supportive")]
    status: dict[str, Sql] = {}
    for rule in systemic:
        applies = b.true(rule.applies_when)
        requires = [b.col(c.when) for c in rule.requires]
        excluded = or_(*(is_true(b.col(c.when)) for c in rule.excludes))
        status[f"_pre_{rule.id}"] = and_(applies, *(is_true(r) for r in requires), not_(excluded))
        status[f"_unk_{rule.id}"] = and_(
            applies, *(f"COALESCE({r}, TRUE)" for r in requires), not_(excluded),
            or_(*(f"{r} IS NULL" for r in requires)),
        )
    plan = Plan(conditions={})
    offered = {f"_o_{r.id}": and_(f"_pre_{r.id}", not_(_emptied(b, r))) for r in systemic}
    safety = {f"_s_{block.id}": or_(*(and_(f"_pre_{r.id}", _removes(b, r, block)) for r in systemic))
              for block in kb.safety}
    tests = {f"_t_{t.id}": _test(b, t, systemic) for t in kb.tests.values()}
    urgent = [w for w in kb.warnings if w.urgent]
    warnings = {f"_w_{w.id}": b.true(w.when) for w in urgent}
    points = [(b.true(p["when"]), p["text"]) for p in kb.decision_points]
    texts = list(dict.fromkeys([*(t for _, t in points), FALLBACK_DECISION_POINT]))
    # The answer is a position in `decision_points` (an integer is cheaper than text for 10^7 rows).
    decision = "CASE " + " ".join(f"WHEN {w} THEN {texts.index(t)}" for w, t in points) + (
        f" ELSE {texts.index(FALLBACK_DECISION_POINT)} END")

    options = [r for r in kb.rules if r.kind == "option"]
    given, not_systemic = _given_universe(kb, b, options)
    matches = {f"_m_{r.id}": _matches(b, r) for r in options}
    # Matches once components added only because a fact is unknown are left out (below: unknown).
    uncertain = {r.id for r in options if b.adjunct_parts(r)}
    matches |= {f"_mc_{r.id}": _matches(b, r, certain=True) for r in options if r.id in uncertain}
    concordance = _concordance(options, uncertain)

    plan.conditions = dict(sorted(b.used.items(), key=lambda kv: int(kv[0][2:])))
    plan.steps = [status, {**offered, **safety, **tests, **warnings, "_decision_point": decision, **matches},
                  {"_concordance": concordance}]
    ranks = {r.id: (TIER_ORDER[r.tier or "selected_cases"], r.rank, r.id) for r in kb.rules}
    for tier in TIER_ORDER:
        plan.options[tier] = sorted((r.id for r in options if r.tier == tier), key=ranks.__getitem__)
    plan.local = sorted((r.id for r in systemic if r.kind == "local_and_supportive"),
                        key=lambda i: (not next(r for r in systemic if r.id == i).urgent, *ranks[i]))
    plan.tests = list(kb.tests)
    plan.safety = [block.id for block in kb.safety]
    plan.urgent = [w.id for w in urgent]
    plan.decision_points = texts
    plan.given, plan.not_systemic = given, not_systemic
    plan.counts_as = {k: tuple(v) for k, v in kb.drug_classes.counts_as.items()}
    return plan


def _emptied(b: _Builder, rule: s.Rule) -> Sql:
    """Does the safety net leave a component of this rule (with its adjuncts) empty?"""
    parts = [b.emptied(list(component)) for component in rule.drugs]
    parts += [and_(added, b.emptied(adjunct.add)) for adjunct, added in b.adjunct_parts(rule)]
    return or_(*parts)


def _removes(b: _Builder, rule: s.Rule, block: s.SafetyBlock) -> Sql:
    """engine._apply_safety: this block removes a drug no earlier block already removed."""
    earlier = b.kb.safety[: b.kb.safety.index(block)]
    drugs: dict[str, Sql] = {d: TRUE for component in rule.drugs for d in component}
    for adjunct, added in b.adjunct_parts(rule):
        for d in adjunct.add:
            drugs.setdefault(d, added)
    removed = []
    for drug, present in drugs.items():
        if not _blocked(b.kb, block, drug):
            continue
        before = or_(*(b.true(e.when) for e in earlier if _blocked(b.kb, e, drug)))
        removed.append(and_(present, not_(before)))
    return and_(b.true(block.when), or_(*removed))


def _test(b: _Builder, test: s.TestSuggestion, systemic: list[s.Rule]) -> Sql:
    """engine._tests: explicit `when`, or an unknown rule whose unknown clause has a column it resolves."""
    explicit = b.true(test.when) if test.when else FALSE
    opened = []
    for rule in systemic:
        clauses = []
        for clause in [*rule.requires, *rule.excludes]:
            columns = sorted(c for c in b.kb.condition(clause.when).columns if b.kb.resolvers.get(c) == test.id)
            if columns:
                clauses.append(and_(f"{b.col(clause.when)} IS NULL", or_(*(f"{c} IS NULL" for c in columns))))
        if clauses:
            opened.append(and_(f"_unk_{rule.id}", or_(*clauses)))
    return or_(explicit, *opened)


# -- concordance: was the treatment given one of the options offered? -----------------------------

def _expand(b: _Builder, component: list[str]) -> list[str]:
    out = list(component)
    if SUPPRESSION in component:
        out += sorted(d.id for d in b.kb.drugs.values() if SUPPRESSION in d.classes and d.id not in out)
    return out


def _components(b: _Builder, rule: s.Rule, certain: bool = False) -> list[tuple[list[str], Sql]]:
    """Every component the option can have, with the SQL for "it is there" (adjuncts are conditional)."""
    parts: list[tuple[list[str], Sql]] = [(_expand(b, list(c)), TRUE) for c in rule.drugs]
    parts += [(_expand(b, list(a.add)), added) for a, added in b.adjunct_parts(rule, certain)]
    return parts


def _allowed(b: _Builder, rule: s.Rule) -> list[str]:
    """Drugs that may appear in a regimen matching this option (adjunct drugs always may)."""
    out: list[str] = []
    for component in rule.drugs:
        out += _expand(b, list(component))
    for adjunct in b.kb.adjuncts:
        drugs = {d for component in rule.drugs for d in component}
        if b.kb.drug_classes.classes_of(drugs) & set(adjunct.for_classes):
            out += _expand(b, list(adjunct.add))
    return list(dict.fromkeys(out))


def _given_universe(kb: Knowledge, b: _Builder, options: list[s.Rule]) -> tuple[list[str], list[str]]:
    """Drugs with a given-flag column (any option's), and given items that are not systemic therapy."""
    given = sorted({d for r in options for d in _allowed(b, r)})
    not_systemic = sorted(
        {d.id for d in kb.drugs.values() if set(d.classes) & NOT_SYSTEMIC_CLASSES} | NOT_SYSTEMIC_ITEMS
    )
    return given, [d for d in not_systemic if d not in given]


def _matches(b: _Builder, rule: s.Rule, certain: bool = False) -> Sql:
    """The given regimen covers every component with a drug the safety net left, and nothing else."""
    parts = []
    for drugs, present in _components(b, rule, certain):
        covered = or_(*(and_(f"_g_{d}", not_(b.drug_blocked(d))) for d in drugs))
        parts.append(or_(not_(present), covered))
    count = " + ".join(f"CASE WHEN _g_{d} THEN 1 ELSE 0 END" for d in _allowed(b, rule))
    return and_(*parts, f"(({count}) = _given_n)", "(NOT _given_other)")


def _concordance(options: list[s.Rule], uncertain: set[str]) -> Sql:
    """Position in CONCORDANCE: given treatment matches an offered option / only one a test could open.

    Unknown too: it matches an offered option only without a component added because a fact is
    unknown (no ovarian suppression when menopausal status is not recorded): the answer waits
    for that fact, it is not a deviation.
    """
    def either(r: s.Rule) -> Sql:
        return or_(f"_m_{r.id}", f"_mc_{r.id}") if r.id in uncertain else f"_m_{r.id}"

    concordant = or_(*(and_(f"_o_{r.id}", f"_m_{r.id}") for r in options))
    undetermined = or_(*(and_(f"_o_{r.id}", f"_mc_{r.id}") for r in options if r.id in uncertain),
                       *(and_(f"_unk_{r.id}", either(r)) for r in options))
    unknown, yes, no = (CONCORDANCE.index(v) for v in ("unknown", "concordant", "discordant"))
    return (
        f"CASE WHEN _given_none THEN {unknown} WHEN _given_trial THEN {unknown} "
        f"WHEN {concordant} THEN {yes} WHEN {undetermined} THEN {unknown} ELSE {no} END"
    )
