"""Synthetic cohorts of metastatic breast cancer: realistic shares, seeded, reproducible, vectorised.

Every random draw is a counter-based hash of the patient number, seeded per (seed, stream) with
SplitMix64 and computed by Polars' vectorised row hash, so the same seed gives the same cohort in any
batch size and on any machine with the same Polars version (the row hash is Polars' own and may
change between its major versions), and 10^7 patients need no per-patient Python. The shares below
are orientation values for a *metastatic*
population, with the source each one rests on; where no single source gives a number, the comment
says it is an assumption.

Subtypes (SEER 22, 2017-2021, female breast cancer; seer.cancer.gov/statfacts/html/breast-subtypes.html):
HR+/HER2- 69.5 %, HR-/HER2- (triple negative) 10.5 %, HR+/HER2+ 9.6 %, HR-/HER2+ 4.0 %, unknown 6.1 %.
Men: about 1 in 100 breast cancers (American Cancer Society), nearly all HR+ (assumption: 90 %).
HER2-low: about two thirds of HR+/HER2- and one third of triple-negative tumours (review in Arch Med Sci
2024, "HER2-low status in breast cancer"; NCDB: Peiffer et al., JAMA Netw Open 2023;6:e2253326).
HER2-ultralow: 15.6 % of HR+/HER2- metastatic cancers, HER2-null 22.5 % (Mathiot et al., real-world
rescoring, 2025), i.e. ~40 % of IHC 0; for triple negative an assumed 25 %.
PIK3CA: median 36 % (13-62 %) in HR+/HER2- metastatic cancer (Anderson et al., Int J Breast Cancer
2020, systematic review of 39 studies). AKT1 ~5 %, PTEN ~6 % (assumption, consistent with ~40 % any
PIK3CA/AKT1/PTEN alteration in CAPItello-291).
ESR1: 56 % at progression on first-line aromatase inhibitor by ddPCR (Fribbens et al., Ann Oncol
2018;29:145); 40 % is used after a metastatic AI (not every assay is that sensitive), 5 % otherwise
(rare in primary tumours).
Germline BRCA1/2: 10.6 % of unselected triple-negative cancers (Greenup/Myriad, Cancer 2012;118:2787),
~4 % otherwise (assumption from ~5 % of all breast cancer).
PD-L1 22C3 CPS >= 10: 323 of 847 = 38 % of first-line metastatic triple-negative cancers; CPS >= 1:
636 of 847 = 75 % (KEYNOTE-355, Cortes et al., N Engl J Med 2022;387:217).
Mismatch-repair deficiency ~1.9 % (Cheng et al., Breast Cancer Res Treat 2020;179:3); TMB >= 10 ~5 %
and NTRK fusions ~0.1 % (assumptions).
De novo stage IV: 247 of 1158 = 21 % of metastatic patients (Malmgren et al., Breast Cancer Res Treat
2018;167:579). Bone is involved in ~65 % of metastatic presentations (Gong et al., Cancer Med
2018;7:4156); other site shares by subtype are assumptions in line with the usual pattern (bone in HR+,
liver/lung and brain in HER2+ and triple negative).
Lines of prior metastatic therapy, ages, ECOG, comorbidities and given treatments are assumptions
chosen to resemble a community oncology population; they are documented where they are drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from mbcnav.cohort.local import atomic
from mbcnav.cohort.schema import instance
from mbcnav.profile import CONDITIONS, SITES

U64 = pl.UInt64
GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
SUBTYPES = ("hr_pos_her2_neg", "tnbc", "hr_pos_her2_pos", "hr_neg_her2_pos")
CHUNK = 1_000_000
Progress = Callable[[int], None]


# -- random numbers ------------------------------------------------------------------------------

def _splitmix(x: int) -> int:
    """SplitMix64: spreads (seed, stream) pairs over the 64-bit seed space of the row hash."""
    z = (x * GOLDEN) % 2**64
    z = ((z ^ (z >> 30)) * MIX1) % 2**64
    z = ((z ^ (z >> 27)) * MIX2) % 2**64
    return z ^ (z >> 31)


class Draws:
    """Uniform [0, 1) numbers for the patient number in column `index`, one stream per name.

    Each stream is computed once into a column (``_u_<name>``) by `take`; expressions refer to the
    column, so a draw used in many branches is hashed once and expression trees stay small.
    """

    def __init__(self, seed: int, index: str) -> None:
        self.seed = seed
        self.index = pl.col(index).cast(U64)
        self.streams: dict[str, int] = {}
        self.pending: list[pl.Expr] = []

    def u(self, stream: str) -> pl.Expr:
        name = f"_u_{stream}"
        if stream not in self.streams:
            number = self.streams[stream] = len(self.streams) + 1
            key = _splitmix(self.seed * 1_000_003 + number)
            z = self.index.hash(seed=key % 2**63)
            self.pending.append(((z // pl.lit(2**11, U64)).cast(pl.Float64) / float(2**53)).alias(name))
        return pl.col(name)

    def take(self) -> list[pl.Expr]:
        """Columns for the streams asked for since the last call (add them before using the draws)."""
        out, self.pending = self.pending, []
        return out

    def pick(self, stream: str, shares: Mapping[int, float]) -> pl.Expr:
        """An integer code drawn with the given shares (they need not sum to 1: normalised)."""
        return _by_shares(self.u(stream), list(shares.items()), pl.Int32())

    def normal(self, stream: str) -> pl.Expr:
        """Approximately standard normal (Irwin-Hall sum of four uniforms)."""
        return (sum((self.u(f"{stream}{k}") for k in range(4)), pl.lit(0.0)) - 2.0) * 3**0.5


def _name(codes: pl.Expr, names: Sequence[str | None]) -> pl.Expr:
    return codes.replace_strict(dict(enumerate(names)), return_dtype=pl.String)


# -- regimens ------------------------------------------------------------------------------------

REGIMENS: dict[str, tuple[str, ...]] = {
    "ai_palbo": ("letrozole", "palbociclib"), "ai_ribo": ("letrozole", "ribociclib"),
    "ai_abema": ("anastrozole", "abemaciclib"), "fulv_ribo": ("fulvestrant", "ribociclib"),
    "fulv_palbo": ("fulvestrant", "palbociclib"), "fulv_abema": ("fulvestrant", "abemaciclib"),
    "letrozole": ("letrozole",), "tamoxifen": ("tamoxifen",), "fulvestrant": ("fulvestrant",),
    "fulv_alpelisib": ("fulvestrant", "alpelisib"), "fulv_capi": ("fulvestrant", "capivasertib"),
    "exe_everolimus": ("exemestane", "everolimus"), "elacestrant": ("elacestrant",),
    "capecitabine": ("capecitabine",), "paclitaxel": ("paclitaxel",), "nab_paclitaxel": ("nab_paclitaxel",),
    "eribulin": ("eribulin",), "tdxd": ("trastuzumab_deruxtecan",), "sacituzumab": ("sacituzumab_govitecan",),
    "thp": ("trastuzumab", "pertuzumab", "docetaxel"), "tucatinib": ("tucatinib", "trastuzumab", "capecitabine"),
    "tdm1": ("ado_trastuzumab_emtansine",), "neratinib": ("neratinib", "capecitabine"),
    "pembro_pac": ("pembrolizumab", "paclitaxel"), "gem_carbo": ("gemcitabine", "carboplatin"),
    "pembro_gem_carbo": ("pembrolizumab", "gemcitabine", "carboplatin"), "olaparib": ("olaparib",),
    "ac": ("doxorubicin", "cyclophosphamide"), "ac_t": ("doxorubicin", "cyclophosphamide", "paclitaxel"),
    "tchp": ("docetaxel", "carboplatin", "trastuzumab", "pertuzumab"), "anastrozole": ("anastrozole",),
    "exemestane": ("exemestane",), "tc": ("docetaxel", "cyclophosphamide"), "pembro_chemo_early":
    ("pembrolizumab", "paclitaxel", "carboplatin"), "kisqali_brand": ("Femara", "Kisqali"),
    "enhertu_brand": ("Enhertu",), "ibrance_brand": ("letrozole", "Ibrance"), "trastuzumab_alone": ("trastuzumab",),
    "trastuzumab_ai": ("trastuzumab", "letrozole"), "chemo_combo": ("doxorubicin", "cyclophosphamide"),
    "trial": ("clinical_trial",), "datopotamab": ("datopotamab_deruxtecan",),
}
REGIMEN_CODES = {name: i for i, name in enumerate(REGIMENS)}

# Metastatic treatment by subtype and line (1-based; the last entry applies to later lines).
# Weights are assumptions resembling current practice (NCCN/ABC5 sequences), with a share of
# choices that guidelines would not prefer, so concordance has something to find.
LINES: dict[str, list[dict[str, float]]] = {
    "hr_pos_her2_neg": [
        {"ai_palbo": 30, "ai_ribo": 25, "ai_abema": 15, "fulv_ribo": 8, "letrozole": 8, "ibrance_brand": 3,
         "kisqali_brand": 3, "paclitaxel": 5, "tamoxifen": 3},
        {"fulvestrant": 18, "fulv_alpelisib": 12, "fulv_capi": 12, "exe_everolimus": 14, "elacestrant": 10,
         "fulv_abema": 8, "capecitabine": 12, "tdxd": 8, "enhertu_brand": 2, "paclitaxel": 4},
        {"capecitabine": 25, "tdxd": 25, "sacituzumab": 15, "eribulin": 10, "paclitaxel": 10, "exe_everolimus": 5,
         "datopotamab": 5, "trial": 5},
    ],
    "tnbc": [
        {"pembro_pac": 35, "nab_paclitaxel": 20, "gem_carbo": 20, "pembro_gem_carbo": 10, "paclitaxel": 10,
         "olaparib": 5},
        {"sacituzumab": 45, "tdxd": 15, "capecitabine": 15, "eribulin": 10, "olaparib": 5, "gem_carbo": 10},
        {"eribulin": 30, "capecitabine": 30, "tdxd": 15, "gem_carbo": 15, "trial": 10},
    ],
    "hr_pos_her2_pos": [
        {"thp": 70, "trastuzumab_ai": 10, "tdxd": 5, "paclitaxel": 5, "ai_palbo": 10},
        {"tdxd": 65, "tdm1": 15, "tucatinib": 15, "capecitabine": 5},
        {"tucatinib": 45, "tdm1": 30, "neratinib": 15, "trastuzumab_alone": 10},
    ],
    "hr_neg_her2_pos": [
        {"thp": 85, "tdxd": 5, "paclitaxel": 10},
        {"tdxd": 70, "tdm1": 15, "tucatinib": 15},
        {"tucatinib": 45, "tdm1": 35, "neratinib": 20},
    ],
}
EARLY: dict[str, dict[str, float]] = {
    "hr_pos_her2_neg": {"tamoxifen": 30, "letrozole": 25, "anastrozole": 25, "exemestane": 10, "ac_t": 5, "tc": 5},
    "tnbc": {"ac_t": 60, "tc": 15, "pembro_chemo_early": 25},
    "hr_pos_her2_pos": {"tchp": 80, "ac_t": 20},
    "hr_neg_her2_pos": {"tchp": 85, "ac_t": 15},
}
MEDICATIONS = {"sertraline": 0.10, "ondansetron": 0.12, "warfarin": 0.04, "Paxil": 0.02, "metformin": 0.08,
               "clarithromycin": 0.01, "St John's wort": 0.01, "vitamin d": 0.20}


def _regimen(draws: Draws, stream: str, weights: Mapping[str, float]) -> pl.Expr:
    return draws.pick(stream, {REGIMEN_CODES[name]: w for name, w in weights.items()})


def _by_subtype(subtype: pl.Expr, parts: Mapping[str, pl.Expr]) -> pl.Expr:
    return pl.coalesce([pl.when(subtype == SUBTYPES.index(name)).then(expr) for name, expr in parts.items()])


def _by_shares(u: pl.Expr, shares: Sequence[tuple[object, float]], dtype: pl.DataType) -> pl.Expr:
    """The value whose share interval the uniform draw `u` falls in (shares are normalised)."""
    total = sum(share for _, share in shares)
    edges, edge = [], 0.0
    for _, share in shares[:-1]:
        edge += share / total
        edges.append(edge)
    position = pl.sum_horizontal([(u >= e).cast(pl.UInt32) for e in edges]) if edges else pl.lit(0, pl.UInt32)
    values = pl.Series([v for v, _ in shares], dtype=dtype)
    return pl.lit(values).gather(position)


# -- the cohort ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    seed: int = 1
    malformed_rate: float = 0.0   # share of rows with one deliberate error (for tests of bad input)
    given_rate: float = 0.8       # share of patients whose current-line treatment is recorded


UNIFORMS = (
    "meno", "meno2", "ofs", "er", "pr", "her2", "her2b", "ultralow", "ish", "receptor_unknown", "pik3ca_t", "pik3ca",
    "akt1", "pten", "esr1_t", "esr1", "brca_t", "brca", "brca12", "palb2", "pdl1_t", "pdl1", "pdl1v", "msi_t", "msi",
    "tmb", "ntrk", "pres_missing", "sites_missing", "active", "bsymp", "bcount", "crisis", "symptomatic", "scc",
    "oligo", "ecog", "ecog_missing", "lvef", "lvef_t", "given", "early_n", "early_months", "early_months_missing",
    "malformed", "malformed_kind", "age_missing",
)


def _stage(frame: pl.DataFrame, d: Draws, exprs: Mapping[str, pl.Expr]) -> pl.DataFrame:
    return frame.with_columns(d.take()).with_columns(**exprs)


def _scalars(n: int, start: int, opts: Options) -> pl.DataFrame:
    """Everything drawn once per patient (codes, not yet text)."""
    d = Draws(opts.seed, "index")
    frame = pl.DataFrame({"index": pl.int_range(start, start + n, dtype=pl.Int64, eager=True)})
    frame = _stage(frame, d, {"male": d.u("sex") < 0.01})
    male = pl.col("male")
    frame = _stage(frame, d, {
        "subtype": pl.when(male).then(d.pick("subtype_m", {0: 90, 2: 7, 1: 2, 3: 1})).otherwise(
            d.pick("subtype", {0: 69.5, 1: 10.5, 2: 9.6, 3: 4.0})),
        "age": pl.when(male).then(67 + 11 * d.normal("age_m")).otherwise(62 + 13 * d.normal("age"))
        .round().clip(25, 95).cast(pl.Int64),
        "lines": d.pick("lines", {0: 40, 1: 25, 2: 15, 3: 10, 4: 6, 5: 4}),
    })
    subtype, lines = pl.col("subtype"), pl.col("lines")
    return _stage(frame, d, {
        "ongoing": (d.u("ongoing") < 0.35) & (lines > 0),
        "de_novo": d.u("de_novo") < 0.21,
        **{f"u_{k}": d.u(k) for k in UNIFORMS},
        "early_regimen": _by_subtype(subtype, {s: _regimen(d, f"early_{s}", w) for s, w in EARLY.items()}),
        "early_chemo": pl.when(subtype == 0).then(_regimen(d, "early_chemo", {"ac_t": 60, "tc": 40})).otherwise(-1),
        "given_regimen": _by_subtype(subtype, {
            s: pl.when(lines == 0).then(_regimen(d, f"given1_{s}", w[0]))
            .when(lines == 1).then(_regimen(d, f"given2_{s}", w[1]))
            .otherwise(_regimen(d, f"given3_{s}", w[2]))
            for s, w in LINES.items()}),
        **{f"u_site_{site}": d.u(f"site_{site}") for site in SITES},
        **{f"u_condition_{c}": d.u(f"condition_{c}") for c in CONDITIONS},
        **{f"u_med_{m}": d.u(f"med_{m}") for m in MEDICATIONS},
    })


# Site shares (assumptions, see the module docstring), per subtype order in SUBTYPES.
SITE_SHARES: dict[str, tuple[float, float, float, float]] = {
    "bone": (0.72, 0.42, 0.55, 0.50), "liver": (0.30, 0.35, 0.40, 0.42), "lung": (0.28, 0.42, 0.33, 0.36),
    "pleura": (0.10, 0.12, 0.08, 0.08), "brain": (0.06, 0.18, 0.22, 0.28), "leptomeninges": (0.01, 0.02, 0.01, 0.01),
    "lymph_nodes": (0.35, 0.45, 0.40, 0.40), "skin": (0.03, 0.05, 0.04, 0.04), "soft_tissue": (0.05, 0.06, 0.05, 0.05),
    "chest_wall": (0.04, 0.08, 0.05, 0.05), "breast": (0.10, 0.10, 0.10, 0.10), "peritoneum": (0.03, 0.01, 0.01, 0.01),
    "other": (0.03, 0.03, 0.03, 0.03),
}
CONDITION_SHARES = {"diabetes": 0.15, "interstitial_lung_disease": 0.01, "heart_failure": 0.03, "long_qt": 0.01,
                    "liver_impairment": 0.03, "neuropathy": 0.08, "pregnancy": 0.004}


def _pick(u: pl.Expr, shares: Sequence[tuple[str | None, float]]) -> pl.Expr:
    """Text value by cumulative shares of one uniform draw (shares of one draw sum to 1)."""
    return _by_shares(u, [*shares[:-1], (shares[-1][0], max(0.0, 1.0 - sum(s for _, s in shares[:-1])))],
                      pl.String())


def _tumor(s: pl.DataFrame) -> pl.DataFrame:
    c = pl.col
    hr_pos = c("subtype").is_in([0, 2])
    her2_pos = c("subtype").is_in([2, 3])
    tnbc = c("subtype") == 1
    er = pl.when(hr_pos).then(_pick(c("u_er"), [("positive", 0.94), ("low", 0.04), ("negative", 0.02)])).otherwise(
        pl.lit("negative"))
    pr = pl.when(hr_pos & (er == "negative")).then(pl.lit("positive")).when(hr_pos).then(
        _pick(c("u_pr"), [("positive", 0.75), ("negative", 0.23), ("unknown", 0.02)])).otherwise(pl.lit("negative"))
    unknown_receptors = c("u_receptor_unknown") < 0.04
    er = pl.when(unknown_receptors & (c("u_receptor_unknown") < 0.02)).then(pl.lit("unknown")).otherwise(er)
    pr = pl.when(unknown_receptors & (c("u_receptor_unknown") < 0.02)).then(pl.lit("unknown")).otherwise(pr)
    low_share = pl.when(tnbc).then(0.35).otherwise(0.65)
    ultralow_share = pl.when(tnbc).then(0.25).otherwise(0.40)
    negative_ihc = pl.when(c("u_her2") < low_share).then(
        pl.when(c("u_her2b") < 0.7).then(pl.lit("1+")).otherwise(pl.lit("2+"))
    ).when(c("u_ultralow") < ultralow_share).then(pl.lit("ultralow")).otherwise(pl.lit("0"))
    positive_ihc = pl.when(c("u_her2") < 0.8).then(pl.lit("3+")).otherwise(pl.lit("2+"))
    ihc = pl.when(her2_pos).then(positive_ihc).otherwise(negative_ihc)
    ish = (
        pl.when(her2_pos & (ihc == "2+")).then(pl.lit("amplified"))
        .when(her2_pos).then(pl.when(c("u_ish") < 0.4).then(pl.lit("amplified")).otherwise(pl.lit("not_done")))
        .when(ihc == "2+").then(pl.when(c("u_ish") < 0.97).then(pl.lit("not_amplified")).otherwise(pl.lit("not_done")))
        .otherwise(pl.when(c("u_ish") < 0.1).then(pl.lit("not_amplified")).otherwise(pl.lit("not_done")))
    )
    her2_unknown = unknown_receptors & (c("u_receptor_unknown") >= 0.02)
    ihc = pl.when(her2_unknown).then(pl.lit("unknown")).otherwise(ihc)
    ish = pl.when(her2_unknown).then(pl.lit("not_done")).otherwise(ish)

    def tested(u_test: str, share: pl.Expr | float, u_value: str, positive: str, negative: str,
               rate: pl.Expr | float) -> pl.Expr:
        return pl.when(c(u_test) < share).then(
            pl.when(c(u_value) < rate).then(pl.lit(positive)).otherwise(pl.lit(negative))
        ).otherwise(pl.lit("unknown"))

    hr_pos_her2_neg_ = c("subtype") == 0
    prior_ai = c("lines") >= 1
    pik3ca_share = pl.when(hr_pos_her2_neg_).then(pl.when(prior_ai).then(0.8).otherwise(0.55)).otherwise(0.15)
    esr1_share = pl.when(hr_pos_her2_neg_ & prior_ai).then(0.6).when(hr_pos_her2_neg_).then(0.15).otherwise(0.02)
    brca_share = pl.when(tnbc).then(0.8).otherwise(0.55)
    brca_rate = pl.when(tnbc).then(0.106).otherwise(0.04)
    gbrca = pl.when(c("u_brca_t") < brca_share).then(
        pl.when(c("u_brca") < brca_rate).then(
            pl.when(c("u_brca12") < pl.when(tnbc).then(0.7).otherwise(0.4)).then(pl.lit("brca1")).otherwise(
                pl.lit("brca2"))
        ).otherwise(pl.lit("negative"))
    ).otherwise(pl.lit("unknown"))
    # CPS: 25 % below 1, 37 % 1-9, 38 % >= 10 (KEYNOTE-355).
    cps = pl.when(c("u_pdl1") < 0.25).then(0.0).when(c("u_pdl1") < 0.62).then(
        (1 + c("u_pdl1v") * 8.9).round(1)).otherwise((10 + c("u_pdl1v") * 60).round(0))
    pdl1 = pl.when(c("u_pdl1_t") < pl.when(tnbc).then(0.75).otherwise(0.03)).then(cps).otherwise(None)
    msi_tested = c("u_msi_t") < pl.when(c("lines") >= 1).then(0.35).otherwise(0.1)
    return s.select(pl.struct(
        er=er, pr=pr, her2=pl.struct(ihc=ihc, ish=ish),
        pik3ca=tested("u_pik3ca_t", pik3ca_share, "u_pik3ca", "mutated", "wild_type",
                      pl.when(hr_pos_her2_neg_).then(0.36).otherwise(0.25)),
        akt1=tested("u_pik3ca_t", pik3ca_share * 0.7, "u_akt1", "mutated", "wild_type", 0.05),
        pten=pl.when(c("u_pik3ca_t") < pik3ca_share * 0.7).then(
            pl.when(c("u_pten") < 0.06).then(pl.lit("altered")).otherwise(pl.lit("wild_type"))).otherwise(
            pl.lit("unknown")),
        esr1=tested("u_esr1_t", esr1_share, "u_esr1", "mutated", "wild_type",
                    pl.when(prior_ai & hr_pos_her2_neg_).then(0.40).otherwise(0.05)),
        germline_brca=gbrca,
        germline_palb2=tested("u_brca_t", brca_share * 0.7, "u_palb2", "mutated", "negative", 0.01),
        pdl1_cps=pdl1,
        msi=pl.when(msi_tested).then(pl.when(c("u_msi") < 0.019).then(pl.lit("high")).otherwise(
            pl.lit("stable"))).otherwise(pl.lit("unknown")),
        tmb=pl.when(msi_tested).then(pl.when(c("u_tmb") < 0.05).then(10 + c("u_tmb") * 200).otherwise(
            (c("u_tmb") * 9.5).round(1))).otherwise(None),
        ntrk_fusion=pl.when(msi_tested).then(pl.when(c("u_ntrk") < 0.001).then(pl.lit("present")).otherwise(
            pl.lit("absent"))).otherwise(pl.lit("unknown")),
    ).alias("tumor"))


def _lists(prefix: str, shares: Sequence[pl.Expr | float], names: Sequence[str], frame: pl.DataFrame,
           empty_as: str | None = None) -> pl.Series:
    """Independent yes/no draws per name -> list of names (via a bit mask and its distinct values)."""
    bits = [pl.when(pl.col(f"{prefix}{name}") < share).then(1 << i).otherwise(0)
            for i, (name, share) in enumerate(zip(names, shares, strict=True))]
    masks = frame.select(pl.sum_horizontal(bits).alias("m")).to_series()
    if empty_as is not None:
        masks = masks.replace(0, 1 << names.index(empty_as))
    table = {m: [n for i, n in enumerate(names) if m >> i & 1] for m in masks.unique().to_list()}
    return masks.replace_strict(table, return_dtype=pl.List(pl.String))


def _disease(s: pl.DataFrame) -> pl.DataFrame:
    c = pl.col
    by_subtype = [
        pl.when(c("subtype") == 0).then(v[0]).when(c("subtype") == 1).then(v[1]).when(c("subtype") == 2).then(v[2])
        .otherwise(v[3]) for v in (SITE_SHARES[site] for site in SITES)
    ]
    # The breast itself is a site mainly at de novo presentation; the chest wall mainly after surgery.
    by_subtype[SITES.index("breast")] = pl.when(c("de_novo")).then(0.7).otherwise(0.03)
    by_subtype[SITES.index("chest_wall")] = pl.when(c("de_novo")).then(0.0).otherwise(0.06)
    sites = _lists("u_site_", by_subtype, SITES, s, empty_as="bone")
    frame = s.with_columns(sites=sites)

    def has(name: str) -> pl.Expr:
        return c("sites").list.contains(pl.lit(name))

    visceral = has("liver") | has("lung") | has("pleura") | has("peritoneum")
    brain = pl.when(has("brain")).then(pl.struct(
        active=c("u_active") < 0.7, symptomatic=c("u_bsymp") < 0.3,
        count=(1 + c("u_bcount") * 5).floor().cast(pl.Int64)))
    return frame.select(pl.struct(
        presentation=pl.when(c("u_pres_missing") < 0.05).then(None).when(c("de_novo")).then(pl.lit("de_novo"))
        .otherwise(pl.lit("recurrent")),
        sites=pl.when(c("u_sites_missing") < 0.04).then(None).otherwise(c("sites")),
        visceral_crisis=pl.when(visceral).then(c("u_crisis") < 0.05).otherwise(False),
        symptomatic=c("u_symptomatic") < 0.3,
        brain_metastases=brain,
        spinal_cord_compression=pl.when(has("bone")).then(c("u_scc") < 0.015).otherwise(None),
        oligometastatic=pl.when(c("sites").list.len() <= 2).then(c("u_oligo") < 0.12).otherwise(False),
    ).alias("disease"))


def _health(s: pl.DataFrame) -> pl.DataFrame:
    c = pl.col
    shares = [pl.lit(CONDITION_SHARES[name]) for name in CONDITIONS]
    women_under_45 = (~c("male")) & (c("age") < 45)
    shares[CONDITIONS.index("pregnancy")] = pl.when(women_under_45).then(0.02).otherwise(0.0)
    conditions = _lists("u_condition_", shares, CONDITIONS, s)
    ecog = _pick(c("u_ecog"), [("0", 0.35), ("1", 0.40), ("2", 0.15), ("3", 0.07), ("4", 0.03)]).cast(pl.Int64)
    lvef_known = c("u_lvef_t") < pl.when(c("subtype").is_in([2, 3])).then(0.85).otherwise(0.1)
    return s.with_columns(conditions=conditions).select(pl.struct(
        ecog=pl.when(c("u_ecog_missing") < 0.1).then(None).otherwise(ecog),
        lvef_percent=pl.when(lvef_known).then((45 + c("u_lvef") * 25).round()).otherwise(None),
        conditions=c("conditions"),
    ).alias("health"))


def _history(s: pl.DataFrame, opts: Options) -> pl.DataFrame:
    """Early treatment (recurrent disease only) and one entry per prior metastatic line."""
    n = s.height
    entries = s.select("index", "subtype", "lines", "ongoing", pl.int_ranges(0, "lines").alias("j")).explode("j")
    entries = entries.filter(pl.col("j").is_not_null()).with_columns(_key=pl.col("index") * 8 + pl.col("j"))
    d = Draws(opts.seed + 7919, "_key")
    line = pl.col("j")
    regimen = _by_subtype(pl.col("subtype"), {
        sub: pl.when(line == 0).then(_regimen(d, f"l1_{sub}", w[0])).when(line == 1).then(
            _regimen(d, f"l2_{sub}", w[1])).otherwise(_regimen(d, f"l3_{sub}", w[2]))
        for sub, w in LINES.items()})
    last = line == pl.col("lines") - 1
    outcome = pl.when(last & pl.col("ongoing")).then(pl.lit("ongoing")).otherwise(
        _pick(d.u("outcome"), [("progressed", 0.8), ("intolerant", 0.1), ("stopped", 0.05), (None, 0.05)]))
    months = pl.when(d.u("months_missing") < 0.1).then(None).otherwise((1 + d.u("months") * 30).round())
    entries = _stage(entries, d, {"_regimen": regimen})
    met_entries = entries.with_columns(d.take()).select(pl.struct(
        drugs=_drugs(pl.col("_regimen")), outcome=outcome, months=months).alias("e"))["e"]
    met = _offsets(s["lines"], met_entries, n)

    c = pl.col
    recurrent = ~c("de_novo")
    early_main = pl.struct(
        drugs=_drugs(c("early_regimen")), setting=pl.lit("adjuvant"),
        months_since_end=pl.when(c("u_early_months_missing") < 0.1).then(None).otherwise(
            (c("u_early_months") * 96).round()),
    )
    early_chemo = pl.struct(
        drugs=_drugs(c("early_chemo")),
        setting=pl.when(c("u_early_n") < 0.3).then(pl.lit("neoadjuvant")).otherwise(pl.lit("adjuvant")),
        months_since_end=(c("u_early_months") * 96 + 60).round(),
    )
    has_main = recurrent & (c("u_early_n") < 0.9)
    has_chemo = recurrent & (c("early_chemo") >= 0) & (c("u_early_n") < 0.5)
    flags = s.select(has_main.alias("a"), has_chemo.alias("b"))
    main_rows = s.select(early_main.alias("e")).with_columns(flags).with_row_index("i")
    parts = pl.concat([
        main_rows.filter(pl.col("a")).select("i", pl.lit(0).alias("slot"), "e"),
        s.select(early_chemo.alias("e")).with_columns(flags).with_row_index("i").filter(pl.col("b"))
        .select("i", pl.lit(1).alias("slot"), "e"),
    ]).sort("i", "slot")
    counts = flags.select(pl.col("a").cast(pl.Int32) + pl.col("b").cast(pl.Int32)).to_series()
    early = _offsets(counts, parts["e"], n)
    return pl.DataFrame({"history": pl.select(pl.struct(early=early, metastatic=met)).to_series()})


def _drugs(codes: pl.Expr) -> pl.Expr:
    table = {i: list(drugs) for i, drugs in enumerate(REGIMENS.values())}
    table[-1] = []
    return codes.replace_strict(table, return_dtype=pl.List(pl.String))


def _offsets(counts: pl.Series, values: pl.Series, n: int) -> pl.Series:
    """List column from per-row counts and the concatenated values (Arrow offsets, no Python loop)."""
    offsets = pl.concat([pl.Series([0], dtype=pl.Int32), counts.cast(pl.Int32).cum_sum()])
    array = pa.ListArray.from_arrays(offsets.to_arrow(), values.to_arrow())
    out = pl.from_arrow(array)
    assert isinstance(out, pl.Series) and out.len() == n
    return out


def _person(s: pl.DataFrame) -> pl.DataFrame:
    c = pl.col
    meno = (
        pl.when(c("male")).then(None)
        .when(c("u_meno2") < 0.06).then(pl.lit("unknown"))
        .when(c("u_meno2") < 0.10).then(None)
        .when(c("age") < 45).then(_pick(c("u_meno"), [("pre", 0.88), ("peri", 0.12)]))
        .when(c("age") < 55).then(_pick(c("u_meno"), [("pre", 0.3), ("peri", 0.3), ("post", 0.4)]))
        .otherwise(pl.lit("post"))
    )
    premenopausal = meno.is_in(["pre", "peri"])
    return s.select(
        sex=pl.when(c("male")).then(pl.lit("male")).otherwise(pl.lit("female")),
        age=pl.when(c("u_age_missing") < 0.03).then(None).otherwise(c("age")),
        menopausal_status=meno,
        ovarian_function_suppressed=pl.when(premenopausal).then(c("u_ofs") < 0.35).otherwise(None),
    )


def _given(s: pl.DataFrame, opts: Options) -> pl.DataFrame:
    c = pl.col
    recorded = c("u_given") < pl.when(c("ongoing")).then(opts.given_rate * 0.4).otherwise(opts.given_rate)
    return s.select(given_drugs=pl.when(recorded).then(_drugs(c("given_regimen"))).otherwise(None))


def _medications(s: pl.DataFrame) -> pl.Series:
    return _lists("u_med_", list(MEDICATIONS.values()), list(MEDICATIONS), s)


# Deliberate errors for --malformed-rate: each breaks one rule of the contract.
MALFORMATIONS = ("sex_code", "er_case", "age_range", "drug_typo", "male_pregnant", "ongoing_first", "her2_combo",
                 "ecog_range", "site_unknown", "outcome_unknown", "site_null")


ENTRY = pl.Struct({"drugs": pl.List(pl.String), "outcome": pl.String, "months": pl.Float64})


def _entries(*entries: dict[str, object]) -> pl.Expr:
    return pl.lit(pl.Series([list(entries)], dtype=pl.List(ENTRY)))


def _malform(frame: pl.DataFrame, s: pl.DataFrame, rate: float) -> pl.DataFrame:
    if rate <= 0:
        return frame
    c = pl.col
    kind = (s["u_malformed_kind"] * len(MALFORMATIONS)).floor().cast(pl.Int32)
    frame = frame.with_columns(_bad=s["u_malformed"] < rate, _kind=kind)

    def where(name: str) -> pl.Expr:
        return c("_bad") & (c("_kind") == MALFORMATIONS.index(name))

    tumor, disease, health, history = c("tumor"), c("disease"), c("health"), c("history")
    met = history.struct.field("metastatic")
    ongoing = {"drugs": ["letrozole"], "outcome": "ongoing", "months": 3.0}
    return frame.with_columns(
        sex=pl.when(where("sex_code")).then(pl.lit("F")).when(where("male_pregnant")).then(pl.lit("male"))
        .otherwise(c("sex")),
        menopausal_status=pl.when(where("male_pregnant")).then(None).otherwise(c("menopausal_status")),
        age=pl.when(where("age_range")).then(pl.lit(200, pl.Int64)).otherwise(c("age")),
        tumor=pl.when(where("er_case")).then(tumor.struct.with_fields(er=pl.lit("Positive")))
        .when(where("her2_combo")).then(tumor.struct.with_fields(
            her2=pl.struct(ihc=pl.lit("3+"), ish=pl.lit("not_amplified")))).otherwise(tumor),
        health=pl.when(where("ecog_range")).then(health.struct.with_fields(ecog=pl.lit(7, pl.Int64)))
        .when(where("male_pregnant")).then(health.struct.with_fields(conditions=pl.lit(["pregnancy"])))
        .otherwise(health),
        disease=pl.when(where("site_unknown")).then(disease.struct.with_fields(sites=pl.lit(["bone", "moon"])))
        .when(where("site_null")).then(disease.struct.with_fields(
            sites=pl.lit([None, "bone"], dtype=pl.List(pl.String))))
        .otherwise(disease),
        history=pl.when(where("drug_typo")).then(history.struct.with_fields(metastatic=pl.concat_list([
            met, _entries({"drugs": ["letrozol"], "outcome": "progressed", "months": 4.0})])))
        .when(where("ongoing_first")).then(history.struct.with_fields(metastatic=pl.concat_list([
            _entries(ongoing), met, _entries(ongoing)])))
        .when(where("outcome_unknown")).then(history.struct.with_fields(metastatic=pl.concat_list([
            met, _entries({"drugs": ["fulvestrant"], "outcome": "better", "months": 2.0})])))
        .otherwise(history),
    ).drop("_bad", "_kind")


def chunk(n: int, start: int, opts: Options) -> pl.DataFrame:
    """Patients start .. start+n-1 as contract Profiles (nested), plus patient_id and given_drugs."""
    s = _scalars(n, start, opts)
    parts = [
        _person(s),
        _tumor(s),
        _disease(s),
        _health(s),
        _history(s, opts),
        pl.DataFrame({"current_medications": _medications(s)}),
        _given(s, opts),
    ]
    frame = pl.concat(parts, how="horizontal").with_columns(
        patient_id=pl.format("P{}", (s["index"] + 1).cast(pl.String).str.zfill(9)))
    frame = frame.select("patient_id", *[col for col in frame.columns if col != "patient_id"])
    return _malform(frame, s, opts.malformed_rate)


def write(n: int, out: Path, opts: Options, chunk_rows: int = CHUNK, progress: Progress | None = None) -> None:
    """Write `n` synthetic patients to Parquet, NDJSON or CSV (by suffix), atomically."""
    if n < 1:
        raise ValueError(f"n: at least 1 patient (got {n})")   # an empty Parquet file would have no schema
    with atomic(out) as tmp:
        if out.suffix in (".parquet", ".pq"):
            writer: pq.ParquetWriter | None = None
            try:
                for start in range(0, n, chunk_rows):
                    table = chunk(min(chunk_rows, n - start), start, opts).to_arrow()
                    writer = writer or pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                    if progress:
                        progress(table.num_rows)
            finally:
                if writer:
                    writer.close()
        else:
            with tmp.open("w", encoding="utf-8") as handle:
                for start in range(0, n, chunk_rows):
                    frame = chunk(min(chunk_rows, n - start), start, opts)
                    handle.write(_text(frame, out.suffix))
                    if progress:
                        progress(frame.height)


# Keys of null values, with their comma: synthetic values never contain quotes, so this is exact.
_NULL_KEY = r'(,"[a-z_0-9]+":null)|("[a-z_0-9]+":null,?)'


def _text(frame: pl.DataFrame, suffix: str) -> str:
    """NDJSON (null fields left out, as a person would write them) or CSV (dotted columns, JSON cells)."""
    if suffix == ".csv":
        return _csv(frame)
    record = pl.struct(pl.all()).struct.json_encode().str.replace_all(_NULL_KEY, "")
    return "\n".join(frame.select(record).to_series().to_list()) + "\n"


def _csv(frame: pl.DataFrame) -> str:
    columns: list[pl.Expr] = []

    def add(expr: pl.Expr, dtype: pl.DataType, name: str) -> None:
        if isinstance(dtype, pl.Struct):
            for f in dtype.fields:
                add(expr.struct.field(f.name), instance(f.dtype), f"{name}.{f.name}")
        elif isinstance(dtype, pl.List):
            text = pl.struct(expr.alias("x")).struct.json_encode().str.slice(5).str.strip_suffix("}")
            columns.append(pl.when(expr.is_null()).then(None).otherwise(text).alias(name))
        else:
            columns.append(expr.cast(pl.String).alias(name))

    for name, dtype in frame.schema.items():
        add(pl.col(name), dtype, name)
    return frame.select(columns).write_csv()
