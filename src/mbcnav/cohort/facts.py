"""Set-wise fact derivation (Polars): validated Profile columns -> the fact columns of facts.yaml.

Same semantics as `mbcnav.facts.derive`, column by column; each block below names the function
it mirrors. NULL means unknown, exactly where the one-patient code has ``None``. Python's
``None == x`` is False where SQL's is NULL, so the translations spell out which one a line needs
(e.g. `local_recurrence`: a missing presentation counts as "not de novo" there, as it does in facts.py).

Lists are read once: sites, conditions and every history entry become bit masks (`tables`), so
the rules afterwards only read plain columns. The parity test (tests/cohort/test_parity.py)
holds this module to the one-patient derivation, patient by patient.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]

from mbcnav.cohort import segments
from mbcnav.cohort.schema import as_enum, instance
from mbcnav.cohort.segments import NEVER
from mbcnav.cohort.tables import CONDITION_BITS, CONDITION_COLUMNS, ENTRY_CLASSES, SITE_BITS, WORD_BITS, NameBits
from mbcnav.cohort.validate import canonical_schema
from mbcnav.condition import Column
from mbcnav.facts import (
    EARLY_RELAPSE_MONTHS,
    ENDOCRINE_SENSITIVE_MONTHS,
    MENOPAUSE_AGE,
    VISCERAL_SITES,
    DrugClasses,
)

I64 = pl.Int64


@dataclass(frozen=True)
class BatchTables:
    """What depends on the names found in one batch: drug names as bits, QT-prolonging medicine names."""

    names: NameBits
    qt_names: Sequence[str]


def _f(struct: str, *path: str) -> pl.Expr:
    expr = pl.col(struct)
    for name in path:
        expr = expr.struct.field(name)
    return expr


def _bit(expr: pl.Expr, mask: int) -> pl.Expr:
    return (expr & pl.lit(mask, I64)) != 0


def _any_bit(exprs: Sequence[pl.Expr], masks: Sequence[int]) -> pl.Expr:
    """Is any of these mask bits set, over the words of a multi-word mask?"""
    tests = [_bit(e, m) for e, m in zip(exprs, masks, strict=True) if m]
    return pl.any_horizontal(tests) if tests else pl.lit(False)


def _code_bits(codes: pl.Expr, word: int, words: int) -> pl.Expr:
    """2**code for the codes in this word (0 for others): distinct codes give distinct powers."""
    codes = codes.cast(I64)
    # The exponent is the code's place within its word: `when` below evaluates `power` for every
    # code, and a negative integer exponent is an error.
    power = pl.lit(2, I64).pow(codes % WORD_BITS).cast(I64)
    return power if words == 1 else pl.when(codes // WORD_BITS == word).then(power).otherwise(pl.lit(0, I64))


def _mask(values: pl.Expr, codes: Callable[[pl.Expr], pl.Expr], word: int = 0, words: int = 1) -> pl.Expr:
    """OR of the bits of a list's items: the sum over its distinct item bits (0 when empty)."""
    return values.list.eval(_code_bits(codes(pl.element()), word, words)).list.unique().list.sum().fill_null(0)


def _exported(series: pl.Series) -> tuple[pa.Array, pa.Array | None]:
    """A (nested) list column as Arrow: Categorical items as their codes, with the categories.

    The categories are read now, after the batch exists: they hold every code it uses.
    """
    inner = series.dtype
    while isinstance(inner, pl.List):
        inner = instance(inner.inner)
    if isinstance(inner, pl.Categorical):
        categories = inner.categories.to_series().to_arrow()
        return series.to_physical().to_arrow(), categories
    return series.to_arrow(compat_level=pl.CompatLevel.newest()), None


def _domain(dtype: pl.DataType) -> list[object]:
    """Every value a small-domain column can hold, NULL first (its code below is 0)."""
    if isinstance(dtype, pl.Enum):
        return [None, *dtype.categories.to_list()]
    if isinstance(dtype, pl.Boolean):
        return [None, False, True]
    raise TypeError(f"a tabulated fact reads only Enum and Boolean inputs, not {dtype}")


def tabulated(build: Callable[..., pl.Expr], inputs: Mapping[str, pl.Expr], schema: pl.Schema) -> pl.Expr:
    """`build(**inputs)` worked out once per combination of its inputs' values, then looked up per row.

    For facts that are when/then chains over a few Enum or Boolean columns: Polars spends 20-50 ms
    on such a chain over 500,000 rows, while the row's combination number (its inputs' codes in
    mixed radix, NULL as 0) and a gather from the tiny table of answers take about 3 ms. `schema`
    types the inputs (they are read as these types).
    """
    names = list(inputs)
    dtypes = pl.LazyFrame(schema=schema).select(**inputs).collect_schema()
    domains = [_domain(dtypes[n]) for n in names]
    combos = list(itertools.product(*domains))   # the last input varies fastest, as in `number`
    table = pl.DataFrame([pl.Series(n, [c[i] for c in combos], dtype=dtypes[n]) for i, n in enumerate(names)])
    answers = table.select(build(**{n: pl.col(n) for n in names})).to_series()
    number: pl.Expr = pl.lit(0, pl.UInt32)
    for name, domain in zip(names, domains, strict=True):
        code = (inputs[name].to_physical().cast(pl.UInt32) + 1).fill_null(0)
        number = number * len(domain) + code
    return pl.lit(answers).gather(number)


class Derivation:
    """Polars expressions for every fact column, staged so each intermediate is computed once."""

    def __init__(self, columns: Mapping[str, Column], drugs: DrugClasses) -> None:
        self.columns = columns
        self.drugs = drugs
        self.flag_classes = [c for c in drugs.flag_classes if f"met_{c}" in columns]
        self.flag_drugs = [d for d in drugs.flag_drugs if f"met_{d}" in columns]
        self.schema = canonical_schema()
        # The facts that do not depend on a batch's drug names, built once (tabulated ones hold tables).
        self.fixed = [*self._person(), *self._tumor(), *self._disease(), *self._health()]

    def flag(self, names: NameBits, kind: str, flag: str) -> tuple[int, ...]:
        """Mask of the batch's drug names that carry a history flag (a class, or a drug itself)."""
        def test(ids: tuple[str, ...]) -> bool:
            expanded = self.drugs.expand(ids)
            return flag in (self.drugs.classes_of(expanded) if kind == "class" else expanded)

        return names.having(test)

    def enum(self, name: str) -> pl.Enum:
        return pl.Enum(sorted(self.columns[name].allowed))

    def lit(self, name: str, value: str) -> pl.Expr:
        return pl.lit(value, dtype=self.enum(name))

    def tabulated(self, build: Callable[..., pl.Expr], inputs: Mapping[str, pl.Expr]) -> pl.Expr:
        return tabulated(build, inputs, self.schema)

    def known(self, expr: pl.Expr, name: str) -> pl.Expr:
        """facts._known: 'unknown' -> NULL, re-typed to the fact's own values."""
        return self.recode(expr, self.enum(name))

    def recode(self, expr: pl.Expr, target: pl.Enum) -> pl.Expr:
        """A validated value (validate.py gives single values the schema's Enum) as `target`'s."""
        return as_enum(expr, pl.LazyFrame(schema=self.schema).select(expr).collect_schema().dtypes()[0], target)

    # -- stage 1: lists -> masks and counts -------------------------------------------------------

    def segments(self, valid: pl.DataFrame, tables: BatchTables) -> pl.DataFrame:
        """Per-patient columns from the list fields (segments.py), one row per row of `valid`.

        Polars picks the lists out (drug names per entry, sites, conditions); segments.py gives each
        name its position (drug names in the batch's table of names, sites and conditions in their
        fixed order) and reduces them per entry and patient.
        """
        names = tables.names
        entry = pl.element().struct.field
        lists = valid.select(
            met=_f("history", "metastatic").list.eval(entry("drugs")),
            early=_f("history", "early").list.eval(entry("drugs")),
            progressed=_f("history", "metastatic").list.eval((entry("outcome") == "progressed").fill_null(False)),
            months=_f("history", "early").list.eval(entry("months_since_end")),
            sites=_f("disease", "sites"),
            conditions=_f("health", "conditions"),
        ).rechunk()   # one Arrow chunk per column (Arrow cannot join some chunks of empty nested lists)
        arrays, categories = {}, {}
        for name in lists.columns:
            arrays[name], categories[name] = _exported(lists[name])
        lookup = segments.Tables(names, {cls: self.flag(names, "class", cls) for cls in ENTRY_CLASSES})
        counted = {**self.TIMED, "immunotherapy": "_immuno"}
        columns = segments.history(arrays, lookup, counted, list(self.TIMED), categories)
        columns["_sites"] = segments.mask(arrays["sites"], list(SITE_BITS), categories["sites"])
        columns["_conditions"] = segments.mask(arrays["conditions"], list(CONDITION_BITS), categories["conditions"])
        qt = valid.select(pl.col("current_medications").list.eval(pl.element().is_in(list(tables.qt_names)))
                          .list.any().fill_null(False).alias("taking_qt_drug"))
        return pl.concat([segments.frame(columns), qt], how="horizontal")

    # -- stage 2: facts ---------------------------------------------------------------------------

    def facts(self, names: NameBits) -> list[pl.Expr]:
        return [*self.fixed, *self._history(names)]

    def _person(self) -> list[pl.Expr]:
        """facts._menopause."""
        suppressed = pl.col("ovarian_function_suppressed").fill_null(False)
        status = self.known(pl.col("menopausal_status"), "menopause")
        inputs = {"male": pl.col("sex") == "male", "status": status, "post": (status == "post") | suppressed,
                  "pre": status.is_in(["pre", "peri"]), "old": pl.col("age") >= MENOPAUSE_AGE}

        def menopause(male: pl.Expr, status: pl.Expr, **_: pl.Expr) -> pl.Expr:
            return pl.when(male).then(self.lit("menopause", "not_applicable")).otherwise(status)

        def postmenopausal(male: pl.Expr, post: pl.Expr, pre: pl.Expr, old: pl.Expr, **_: pl.Expr) -> pl.Expr:
            return pl.when(male).then(False).when(post).then(True).when(pre).then(False).when(old).then(True) \
                .otherwise(None)

        def needs_suppression(male: pl.Expr, post: pl.Expr, pre: pl.Expr, old: pl.Expr, **_: pl.Expr) -> pl.Expr:
            return pl.when(male).then(False).when(post).then(False).when(pre).then(True).when(old).then(False) \
                .otherwise(None)

        return [
            self.recode(pl.col("sex"), self.enum("sex")).alias("sex"),
            pl.col("age"),
            self.tabulated(menopause, inputs).alias("menopause"),
            self.tabulated(postmenopausal, inputs).alias("postmenopausal"),
            self.tabulated(needs_suppression, inputs).alias("needs_ovarian_suppression"),
            suppressed.alias("ovarian_suppressed"),
        ]

    def _tumor(self) -> list[pl.Expr]:
        """facts.derive (receptors, HER2, genes), hormone_receptor, her2_category, subtype."""
        t = pl.col("tumor")
        er, pr = self.known(t.struct.field("er"), "er"), self.known(t.struct.field("pr"), "pr")
        ihc, ish = _f("tumor", "her2", "ihc"), _f("tumor", "her2", "ish")
        receptors = {"er": er, "pr": pr, "ihc": ihc, "ish": ish}

        def hr(er: pl.Expr, pr: pl.Expr, **_: pl.Expr) -> pl.Expr:
            return pl.when(er.is_in(["positive", "low"]) | (pr == "positive")).then(self.lit("hr", "positive")).when(
                (er == "negative") & (pr == "negative")).then(self.lit("hr", "negative")).otherwise(None)

        def her2(ihc: pl.Expr, ish: pl.Expr, **_: pl.Expr) -> pl.Expr:
            return (
                pl.when((ish == "amplified") | (ihc == "3+")).then(self.lit("her2", "positive"))
                .when(ihc == "2+").then(pl.when(ish == "not_amplified").then(self.lit("her2", "low")).otherwise(None))
                .when(ihc == "1+").then(self.lit("her2", "low"))
                .when(ihc == "ultralow").then(self.lit("her2", "ultralow"))
                .when(ihc == "0").then(self.lit("her2", "zero"))
                .otherwise(None)
            )

        def her2_negative(ihc: pl.Expr, ish: pl.Expr, **_: pl.Expr) -> pl.Expr:
            category = her2(ihc, ish)
            return pl.when(category.is_not_null()).then(category != "positive").when(
                ish == "not_amplified").then(True).otherwise(None)

        def subtype(er: pl.Expr, pr: pl.Expr, ihc: pl.Expr, ish: pl.Expr) -> pl.Expr:
            receptor, negative = hr(er, pr), her2_negative(ihc, ish)
            positive_hr = receptor == "positive"
            return (
                pl.when(receptor.is_null() | negative.is_null()).then(None)
                .when(~negative).then(
                    pl.when(positive_hr).then(self.lit("subtype", "hr_positive_her2_positive"))
                    .otherwise(self.lit("subtype", "hr_negative_her2_positive")))
                .otherwise(
                    pl.when(positive_hr).then(self.lit("subtype", "hr_positive_her2_negative"))
                    .otherwise(self.lit("subtype", "triple_negative")))
            )

        genes = {g: self.known(t.struct.field(g), g) for g in ("pik3ca", "akt1", "pten", "esr1")}
        gbrca = self.known(t.struct.field("germline_brca"), "gbrca")
        # Later expressions read earlier ones by name: `stages` runs these in dependency order.
        return [
            er.alias("er"), pr.alias("pr"), (er == "low").alias("er_low"),
            *(self.tabulated(f, receptors).alias(f.__name__) for f in (hr, her2, her2_negative, subtype)),
            ((ihc == "2+") & (ish == "not_done")).alias("her2_equivocal"),
            *(e.alias(g) for g, e in genes.items()),
            ((genes["pik3ca"] == "mutated") | (genes["akt1"] == "mutated") | (genes["pten"] == "altered"))
            .alias("pi3k_pathway_altered"),
            gbrca.alias("gbrca"), gbrca.is_in(["brca1", "brca2"]).alias("gbrca_mutated"),
            self.known(t.struct.field("germline_palb2"), "gpalb2").alias("gpalb2"),
            t.struct.field("pdl1_cps").alias("pdl1_cps"),
            self.known(t.struct.field("msi"), "msi").alias("msi"),
            t.struct.field("tmb").alias("tmb"),
            self.known(t.struct.field("ntrk_fusion"), "ntrk").alias("ntrk"),
        ]

    def _disease(self) -> list[pl.Expr]:
        """facts._disease_facts: a brain_metastases entry with a count other than 0 adds 'brain'."""
        d = pl.col("disease")
        known = d.struct.field("sites").is_not_null()
        brain = d.struct.field("brain_metastases")
        count = brain.struct.field("count")
        has_brain = brain.is_not_null()
        brain_bit = SITE_BITS["brain"]
        added = known & has_brain & (count.is_null() | (count != 0))
        sites = pl.col("_sites") | pl.when(added).then(pl.lit(brain_bit, I64)).otherwise(pl.lit(0, I64))
        visceral = sum(SITE_BITS[s] for s in VISCERAL_SITES)
        local = SITE_BITS["chest_wall"] | SITE_BITS["breast"]
        brain_mets = pl.when(has_brain).then(count.is_null() | (count != 0)).when(known).then(
            _bit(pl.col("_sites"), brain_bit)).otherwise(None)
        no_brain = pl.col("brain_mets").not_().fill_null(False)
        presentation = d.struct.field("presentation")
        return [
            known.alias("sites_known"),
            *(pl.when(known).then(_bit(sites, bit)).alias(f"site_{s}") for s, bit in SITE_BITS.items()),
            pl.when(known).then(_bit(sites, visceral)).alias("visceral"),
            pl.when(known).then(sites == SITE_BITS["bone"]).alias("bone_only"),
            pl.when(known).then(sites.bitwise_count_ones().cast(pl.Float64)).alias("site_count"),
            *(d.struct.field(n).alias(n) for n in ("visceral_crisis", "symptomatic", "spinal_cord_compression",
                                                   "oligometastatic")),
            brain_mets.alias("brain_mets"),
            pl.when(no_brain).then(False).otherwise(brain.struct.field("active")).alias("brain_active"),
            pl.when(no_brain).then(False).otherwise(brain.struct.field("symptomatic")).alias("brain_symptomatic"),
            count.cast(pl.Float64).alias("brain_count"),
            pl.when(known).then(_bit(sites, local) & (presentation.is_null() | (presentation != "de_novo")))
            .alias("local_recurrence"),
            self.recode(presentation, self.enum("presentation")).alias("presentation"),
        ]

    def _health(self) -> list[pl.Expr]:
        h = pl.col("health")
        return [
            h.struct.field("ecog").alias("ecog"),
            h.struct.field("lvef_percent").alias("lvef"),
            *(_bit(pl.col("_conditions"), bit).alias(CONDITION_COLUMNS[c]) for c, bit in CONDITION_BITS.items()),
        ]

    def _history(self, names: NameBits) -> list[pl.Expr]:
        """facts._history_facts, _endocrine_sensitivity and _relapse_within over the name masks."""
        words = range(names.words)
        met_all = [pl.col(f"_met_all{w}") for w in words]
        any_all = [pl.col(f"_met_all{w}") | pl.col(f"_early_all{w}") for w in words]
        out: list[pl.Expr] = []
        for kind, flags in (("class", self.flag_classes), ("drug", self.flag_drugs)):
            for flag in flags:
                mask = self.flag(names, kind, flag)
                out.append(_any_bit(met_all, mask).alias(f"met_{flag}"))
                out.append(_any_bit(any_all, mask).alias(f"prior_{flag}"))

        def met_count(cls: str) -> pl.Expr:
            return pl.col(f"_met_{cls}_n").cast(pl.Float64)

        lines = _f("history", "metastatic").list.len()
        out += [
            lines.cast(pl.Float64).alias("met_lines"),
            (lines + 1).cast(pl.Float64).alias("line"),
            met_count("chemotherapy").alias("met_chemo_lines"),
            met_count("anti_her2").alias("met_antiher2_lines"),
            met_count("endocrine").alias("met_endocrine_lines"),
            # The outcomes as a list first: the last struct of a list of structs costs 10x more.
            (_f("history", "metastatic").list.eval(pl.element().struct.field("outcome")).list.last() == "ongoing")
            .fill_null(False).alias("on_treatment"),
            pl.col("_met_et_progressed").alias("progressed_on_et_met"),
        ]
        out += self._early()
        return out

    TIMED: ClassVar[dict[str, str]] = {"endocrine": "_et", "chemotherapy": "_chemo", "anti_her2": "_antiher2"}

    def _early(self) -> list[pl.Expr]:
        def shortest(prefix: str) -> pl.Expr:
            raw = pl.col(f"{prefix}_min_raw")
            return pl.when(raw < NEVER).then(raw)

        def relapse(prefix: str) -> pl.Expr:
            n, missing = pl.col(f"{prefix}_n"), pl.col(f"{prefix}_missing")
            return (pl.when(n == 0).then(False).when(shortest(prefix) <= EARLY_RELAPSE_MONTHS).then(True)
                    .when(missing > 0).then(None).otherwise(False))

        et_n, et_missing, et_min = pl.col("_et_n"), pl.col("_et_missing"), shortest("_et")
        progressed = pl.col("progressed_on_et_met")
        resistant, sensitive = self.lit("endocrine_sensitivity", "resistant"), self.lit(
            "endocrine_sensitivity", "sensitive")
        limit = ENDOCRINE_SENSITIVE_MONTHS
        sensitivity = (
            pl.when(progressed).then(resistant)
            .when(et_n == 0).then(sensitive)
            .when(et_missing > 0).then(pl.when(et_min <= limit).then(resistant).otherwise(None))
            .when(et_min <= limit).then(resistant).otherwise(sensitive)
        )
        et_free = (
            pl.when(progressed).then(et_min)
            .when(et_n == 0).then(None)
            .when(et_missing > 0).then(pl.when(et_min <= limit).then(et_min).otherwise(None))
            .otherwise(et_min)
        )
        count = _f("history", "early").list.len()
        return [
            (et_n > 0).alias("early_endocrine"),
            (pl.col("_chemo_n") > 0).alias("early_chemo"),
            (pl.col("_antiher2_n") > 0).alias("early_antiher2"),
            (pl.col("_immuno_n") > 0).alias("early_immunotherapy"),
            sensitivity.alias("endocrine_sensitivity"),
            et_free.cast(pl.Float64).alias("et_free_months"),
            pl.when((count == 0) | (pl.col("_early_missing") > 0)).then(None).otherwise(pl.col("_early_min"))
            .cast(pl.Float64).alias("dfi_months"),
            relapse("_chemo").alias("chemo_relapse_6m"),
            relapse("_antiher2").alias("antiher2_relapse_6m"),
        ]

    # -- the whole derivation ---------------------------------------------------------------------

    def stages(self, valid: pl.DataFrame, tables: BatchTables, keep: Sequence[str]) -> pl.LazyFrame:
        """Validated profile columns -> fact columns (+ `keep`), in dependency order."""
        # Lazily: an eager frame would first re-cut valid's chunks to match (0.1 s per 500k rows).
        staged = pl.concat([valid.lazy(), self.segments(valid, tables).lazy()], how="horizontal")
        facts = self.facts(tables.names)
        first = [e for e in facts if e.meta.output_name() in _FIRST]
        second = [e for e in facts if e.meta.output_name() in _SECOND]
        rest = [e for e in facts if e.meta.output_name() not in _FIRST | _SECOND]
        staged = staged.with_columns(first).with_columns(second).with_columns(rest)
        return staged.select([*keep, *self.columns])


# Facts other facts read by name (see the pl.col("...") references above).
_FIRST = frozenset({"progressed_on_et_met"})
_SECOND = frozenset({"brain_mets"})
