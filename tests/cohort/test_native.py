"""The compiled passes (cohort/native) give what the Polars path gives: program, facts, whole results.

The Polars path is the reference (itself held to the one-patient engine by test_parity.py, which
runs the compiled passes since they are the default). Here: generated programs against Polars'
own SQL on random texts and rows, NULLs included; facts.c against the Polars derivation; whole
batches both ways; and the fallbacks when nothing can be compiled.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mbcnav.cohort import local, native
from mbcnav.cohort.local import KEEP, Evaluator
from mbcnav.cohort.native import evaluate as native_engine
from mbcnav.cohort.native.program import INT_BITS, Buffer, Unsupported, compiled, generate
from mbcnav.condition import Column
from tests.cohort.test_bits import _bool_sql, _int_sql

BOOLS, INTS, TEXT = ("a", "b", "c"), ("i", "j"), "s"
CATEGORIES = ("x", "y", "z")
COLUMNS = {**{c: Column(c, "bool") for c in BOOLS}, "num": Column("num", "number"),
           "txt": Column("txt", "text", frozenset(CATEGORIES))}
LAYOUT: dict[str, Any] = {**{c: ("bool", ()) for c in BOOLS}, **{c: ("int", ()) for c in INTS},
                          TEXT: ("code", CATEGORIES), "num": ("number", ()), "txt": ("code", CATEGORIES)}
ROWS = st.lists(st.fixed_dictionaries({
    **{c: st.none() | st.booleans() for c in BOOLS},
    **{c: st.none() | st.integers(0, 3) for c in INTS},
    TEXT: st.none() | st.sampled_from(CATEGORIES),
    "num": st.none() | st.sampled_from([0.0, 1.0, 2.5, 10.0, 12.0]),
    "txt": st.none() | st.sampled_from(CATEGORIES),
}), min_size=1, max_size=150)
SCHEMA = {**{c: pl.Boolean for c in BOOLS}, **{c: pl.Int32 for c in INTS}, TEXT: pl.Enum(CATEGORIES),
          "num": pl.Float64, "txt": pl.Enum(CATEGORIES)}


def bitmap(flags: Any, words: int) -> Any:
    """Flags packed as an Arrow bitmap of whole 64-bit words."""
    out = np.zeros(words * 8, dtype=np.uint8)
    packed = np.packbits(flags, bitorder="little")
    out[:packed.size] = packed
    return out


def rows(array: Any, words: int, dtype: Any) -> Any:
    """`array` as `dtype`, zero-padded to whole 64-row words."""
    out = np.zeros(words * 64, dtype=dtype)
    out[:array.size] = array
    return out


def planes(values: Any, words: int) -> Any:
    """Integers 0..2**INT_BITS - 1 as the program reads them: INT_BITS bit planes per word."""
    padded = rows(values, words, np.int64)
    assert 0 <= padded.min() <= padded.max() < 1 << INT_BITS
    bits = (padded.reshape(words, 64, 1) >> np.arange(INT_BITS)) & 1
    packed = np.packbits(bits.transpose(0, 2, 1).astype(np.bool_), axis=2, bitorder="little")
    return np.ascontiguousarray(packed).view(np.uint64).reshape(words * INT_BITS)


def _buffers(frame: pl.DataFrame) -> dict[str, Buffer]:
    words = (frame.height + 63) // 64
    out = {}
    for series in frame:
        known = bitmap(series.is_not_null().to_numpy(), words) if series.has_nulls() else None
        if series.dtype == pl.Boolean:
            out[series.name] = Buffer("bool", bitmap(series.fill_null(False).to_numpy(), words), known)
        elif series.dtype == pl.Int32:
            out[series.name] = Buffer("bool", planes(series.fill_null(0).to_numpy(), words), known)
        elif series.dtype == pl.Float64:
            out[series.name] = Buffer("number", rows(series.fill_null(0.0).to_numpy(), words, np.float64), known)
        else:
            codes = series.to_physical().fill_null(0).to_numpy()
            out[series.name] = Buffer("enum", rows(codes, words, np.uint8), known)
    return out


def _run(frame: pl.DataFrame, bools: list[str], ints: list[str], conditions: dict[str, str] | None = None
         ) -> tuple[list[list[bool | None]], list[list[int | None]]]:
    """Each text's values per row from a compiled program (booleans through `x` and `NOT x`)."""
    steps = [{f"_b{k}": t for k, t in enumerate(bools)}, {f"_n{k}": f"(NOT _b{k})" for k in range(len(bools))},
             {f"_i{k}": t for k, t in enumerate(ints)}]
    lists = {f"l{k}": [[f"_b{k}", f"_n{k}"]] for k in range(len(bools))}
    generated = generate(conditions or {}, steps, COLUMNS, LAYOUT, lists, [f"_i{k}" for k in range(len(ints))])
    program = compiled(generated)
    assert program is not None, "the test machine must be able to compile (cc)"
    out = program.run(frame.height, _buffers(frame))
    found_bools = []
    for k in range(len(bools)):
        word = out.masks[f"l{k}"][0][:frame.height]
        found_bools.append([True if w & 1 else False if w & 2 else None for w in word.tolist()])
    found_ints = []
    for k in range(len(ints)):
        known = np.unpackbits(out.known[f"_i{k}"].view(np.uint8), count=frame.height, bitorder="little")
        values = out.values[f"_i{k}"][:frame.height].tolist()
        found_ints.append([v if ok else None for v, ok in zip(values, known.tolist(), strict=True)])
    return found_bools, found_ints


def _polars(frame: pl.DataFrame, text: str) -> list[Any] | None:
    """Polars' answer, or None where Polars has none (see test_bits._both: a folded constant
    against a CASE without ELSE, which plan.py never writes)."""
    try:
        return frame.with_columns(pl.sql_expr(text).alias("_x"))["_x"].to_list()
    except pl.exceptions.InvalidOperationError as err:
        if "broadcasted" in str(err):
            return None
        raise


def _answered(frame: pl.DataFrame, texts: list[str], ints: bool = False) -> dict[str, list[Any]]:
    """Texts with their Polars answers; integer results must fit the program's 8-bit inputs."""
    out = {}
    for text in dict.fromkeys(texts):
        values = _polars(frame, text)
        if values is not None and not (ints and any(v is not None and not 0 <= v < 256 for v in values)):
            out[text] = values
    return out


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bools=st.lists(_bool_sql(3), min_size=1, max_size=20), ints=st.lists(_int_sql(2), min_size=1, max_size=6),
       rows_=ROWS)
def test_generated_programs_match_polars_sql(bools: list[str], ints: list[str], rows_: list[dict[str, Any]]) -> None:
    frame = pl.DataFrame(rows_, schema=SCHEMA)
    expected_bools, expected_ints = _answered(frame, bools), _answered(frame, ints, ints=True)
    assume(expected_bools and expected_ints)
    got_bools, got_ints = _run(frame, list(expected_bools), list(expected_ints))
    for (text, want), got in zip(expected_bools.items(), got_bools, strict=True):
        assert got == want, text
    for (text, want), got in zip(expected_ints.items(), got_ints, strict=True):
        assert got == want, text


def _condition() -> st.SearchStrategy[str]:
    """Condition texts as the knowledge base writes them: facts compared with literals."""
    number = st.sampled_from(["0", "1", "2.5", "10", "11"])
    operator = st.sampled_from(["=", "<>", ">", ">=", "<", "<="])
    text = st.sampled_from(CATEGORIES).map(lambda v: f"'{v}'")
    atoms = st.one_of(
        st.sampled_from(BOOLS),
        st.tuples(operator, number).map(lambda p: f"num {p[0]} {p[1]}"),
        st.tuples(number, operator).map(lambda p: f"{p[0]} {p[1]} num"),
        st.tuples(number, operator, number).map(lambda p: f"COALESCE(num, {p[0]}) {p[1]} {p[2]}"),
        st.tuples(st.sampled_from(["=", "<>"]), text).map(lambda p: f"txt {p[0]} {p[1]}"),
        st.tuples(text, st.sampled_from(["=", "<>"]), text).map(lambda p: f"COALESCE(txt, {p[0]}) {p[1]} {p[2]}"),
        st.lists(text, min_size=1, max_size=3).map(lambda v: f"txt IN ({', '.join(v)})"),
        st.sampled_from(["num IS NULL", "txt IS NOT NULL", "a IS NULL", "(a AND b) IS NOT NULL"]),
    )
    return st.recursive(atoms, lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]} AND {p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]} OR {p[1]})"),
        inner.map(lambda p: f"NOT ({p})"),
        st.tuples(inner, st.sampled_from(["TRUE", "FALSE"])).map(lambda p: f"COALESCE({p[0]}, {p[1]})"),
    ), max_leaves=6)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(texts=st.lists(_condition(), min_size=1, max_size=25, unique=True), rows_=ROWS)
def test_condition_texts_compile_to_what_polars_sql_gives(texts: list[str], rows_: list[dict[str, Any]]) -> None:
    frame = pl.DataFrame(rows_, schema=SCHEMA)
    conditions = {f"_c{k}": t for k, t in enumerate(texts)}
    got, _ = _run(frame, list(conditions), [], conditions)
    for text, found in zip(texts, got, strict=True):
        assert found == _polars(frame, text), text


@pytest.mark.parametrize("text", ["num > num", "txt < 'y'", "num + 1 > 2", "a = TRUE"])
def test_constructs_outside_the_translation_are_refused_when_generated(text: str) -> None:
    with pytest.raises(Unsupported):
        generate({"_c0": text}, [], COLUMNS, LAYOUT, {"l": [["_c0"]]}, [])


# -- the knowledge base's own passes -----------------------------------------------------------------

def test_the_shipped_knowledge_base_compiles() -> None:
    """CI has a C compiler: the compiled passes must build there, not fall back silently."""
    ev = Evaluator()
    assert ev.native is not None
    assert ev.native.program.generated.atoms > 20
    assert len(ev.native.program.generated.inputs) > 100


def _batches(path: Path, ev: Evaluator, rows_: int) -> list[tuple[pl.DataFrame, set[str]]]:
    _, found = local.batches(path, rows_)
    out = []
    for batch in found:
        for frame in batch.all_frames():
            checked = ev.check(frame, batch.drug_names)
            out.append((checked.valid, set(checked.drug_names)))
    return out


def test_compiled_facts_equal_the_polars_derivation(realistic: Path, wide_ndjson: Path) -> None:
    ev = Evaluator()
    assert ev.native is not None
    for path in (realistic, wide_ndjson):
        for valid, names in _batches(path, ev, 3_000):
            tables = ev.tables(valid, names)
            want = ev.derivation.stages(valid, tables, KEEP).collect()
            got = ev.native.facts.stages(valid, tables, KEEP).collect()
            assert got.schema == want.schema
            differ = [c for c in want.columns if not got[c].equals(want[c])]
            assert not differ, f"{path.name}: {differ}"


def test_list_items_as_categorical_enum_or_text(realistic: Path) -> None:
    """facts.c reads list items as codes: Categorical, Enum and plain text must all map the same."""
    ev = Evaluator()
    assert ev.native is not None
    [(valid, names), *_] = _batches(realistic, ev, 4_000)
    sites = pl.Enum(sorted({s for row in valid["disease"].struct.field("sites").drop_nulls().to_list() for s in row}))
    variants = {
        "categorical": valid,
        "enum": valid.with_columns(pl.col("disease").struct.with_fields(
            pl.field("sites").cast(pl.List(pl.String)).cast(pl.List(sites)))),
        "text": valid.with_columns(pl.col("given_drugs").cast(pl.List(pl.String)), pl.col("history").cast(
            pl.Struct({"early": pl.List(pl.Struct({"drugs": pl.List(pl.String), "setting": pl.String,
                                                     "months_since_end": pl.Float64})),
                       "metastatic": pl.List(pl.Struct({"drugs": pl.List(pl.String), "outcome": pl.String,
                                                         "months": pl.Float64}))}))),
    }
    tables = ev.tables(valid, names)
    want = ev.derivation.stages(valid, tables, KEEP).collect()
    for kind, frame in variants.items():
        got = ev.native.facts.stages(frame, tables, KEEP).collect()
        differ = [c for c in want.columns if c != "given_drugs" and not got[c].equals(want[c])]
        assert not differ, f"{kind}: {differ}"


def test_compiled_results_equal_the_polars_path(realistic: Path, wide_ndjson: Path, spark_input: Path,
                                                tmp_path: Path) -> None:
    """Whole runs, errors files included, on the parity inputs and on rows with deliberate errors."""
    for source in (realistic, wide_ndjson, spark_input):
        runs = {}
        for compiled_ in (True, False):
            ev = Evaluator(compiled=compiled_)
            assert (ev.native is not None) == compiled_
            out = tmp_path / f"{source.stem}-{compiled_}.parquet"
            summary = local.evaluate(source, out, batch_rows=2_500, evaluator=ev)
            errors = summary.errors_path.read_text() if summary.errors_path else ""
            runs[compiled_] = (pl.read_parquet(out), errors, summary.evaluated, summary.rejected)
        (got, got_errors, *got_counts), (want, want_errors, *want_counts) = runs[True], runs[False]
        assert got_counts == want_counts
        assert got_errors == want_errors
        assert got.schema == want.schema
        differ = [c for c in want.columns if not got[c].equals(want[c])]
        assert not differ, f"{source.name}: {differ}"


def test_reused_buffers_leave_earlier_results_alone(wide_ndjson: Path) -> None:
    """Each thread's next batch overwrites its buffers (native.Arena): results must be copies."""
    ev = Evaluator()
    (first_valid, first_names), (second_valid, second_names), *_ = _batches(wide_ndjson, ev, 700)
    first = ev.results(first_valid, first_names)
    snapshot = pl.DataFrame(first.to_dicts(), schema=first.schema)
    ev.results(second_valid, second_names)
    assert first.equals(snapshot)


def test_word_edges(realistic: Path, tmp_path: Path) -> None:
    """The program runs over whole 64-row words: rows past a batch's end must not leak in."""
    frame = pl.read_parquet(realistic).head(129)
    compiled_ev, polars_ev = Evaluator(), Evaluator(compiled=False)
    for size in (1, 63, 64, 65, 129):
        source = tmp_path / f"head-{size}.parquet"
        frame.head(size).write_parquet(source)
        for name, ev in (("compiled", compiled_ev), ("polars", polars_ev)):
            local.evaluate(source, tmp_path / f"{name}-{size}.parquet", evaluator=ev)
        got, want = (pl.read_parquet(tmp_path / f"{name}-{size}.parquet") for name in ("compiled", "polars"))
        assert got.height == size
        assert got.equals(want), size


# -- falling back ------------------------------------------------------------------------------------

def test_switched_off_the_polars_path_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBCNAV_NATIVE", "0")
    assert Evaluator().native is None


def test_without_a_working_compiler_the_polars_path_runs_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, realistic: Path
) -> None:
    monkeypatch.setenv("MBCNAV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    native.compiler.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            ev = Evaluator()
        assert ev.native is None
        assert "no C compiler" in caplog.text
        out = tmp_path / "r.parquet"
        assert local.evaluate(realistic, out, evaluator=ev).evaluated > 0
    finally:
        native.compiler.cache_clear()


def test_a_failing_build_falls_back_and_is_logged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MBCNAV_CACHE_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert native.library("broken", {"broken.c": "int f( {"}) is None
    assert "C build of broken.c failed" in caplog.text
    assert not list(tmp_path.rglob("*.so"))


def test_a_cache_that_cannot_be_written_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory", encoding="utf-8")
    monkeypatch.setenv("MBCNAV_CACHE_DIR", str(blocked))
    with caplog.at_level(logging.WARNING):
        assert native.library("one", {"one.c": "int one(void) { return 1; }"}) is None
    assert "compiled passes unavailable" in caplog.text
    assert blocked.read_text(encoding="utf-8") == "not a directory"


def test_builds_are_cached_by_content(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MBCNAV_CACHE_DIR", str(tmp_path))
    assert native.library("one", {"one.c": "int one(void) { return 1; }"}) is not None
    [built] = list(tmp_path.rglob("one-*.so"))
    stamp = built.stat().st_mtime_ns
    lib = native.library("one", {"one.c": "int one(void) { return 1; }"})
    assert lib is not None and lib.one() == 1
    assert built.stat().st_mtime_ns == stamp
    assert native.library("one", {"one.c": "int one(void) { return 2; }"}) is not None
    assert len(list(tmp_path.rglob("one-*.so"))) == 2


def test_a_plan_the_generator_cannot_translate_runs_on_polars(monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise Unsupported("a comparison of two columns: age > ecog")

    monkeypatch.setattr(native_engine, "generate", refuse)
    with caplog.at_level(logging.WARNING):
        assert Evaluator().native is None
    assert "age > ecog" in caplog.text


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MBCNAV_CACHE_DIR", str(tmp_path))
    assert native.cache_dir() == tmp_path / "mbcnav" / "native"
    monkeypatch.delenv("MBCNAV_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert native.cache_dir() == tmp_path / "xdg" / "mbcnav" / "native"
    assert os.environ["XDG_CACHE_HOME"].endswith("xdg")


def _environment_after(code: str, variable: str = "_RJEM_MALLOC_CONF", **env: str) -> str:
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("_RJEM_MALLOC_CONF", "MIMALLOC_PURGE_DELAY")} | env
    done = subprocess.run([sys.executable, "-c", code + f"\nimport os; print(os.environ.get({variable!r}))"],
                          capture_output=True, text=True, env=clean, check=True)
    return done.stdout.strip()


def test_a_batch_process_keeps_freed_memory_only_before_its_libraries_load() -> None:
    """`mbcnav cohort evaluate` asks Polars' jemalloc and Arrow's mimalloc to keep freed pages."""
    keep = "from mbcnav.cohort import keep_freed_memory; keep_freed_memory()"
    assert _environment_after(keep) == "dirty_decay_ms:-1,muzzy_decay_ms:-1"
    assert _environment_after(keep, "MIMALLOC_PURGE_DELAY") == "-1"
    # Too late once a library is loaded (it read its own defaults then): nothing is pretended.
    assert "dirty_decay_ms:-1" not in _environment_after("import polars\n" + keep)
    assert _environment_after("import pyarrow\n" + keep, "MIMALLOC_PURGE_DELAY") == "None"
    assert _environment_after(keep, _RJEM_MALLOC_CONF="narenas:1") == "narenas:1"   # the user's wins
    assert _environment_after(keep, "MIMALLOC_PURGE_DELAY", MIMALLOC_PURGE_DELAY="10") == "10"


FAULTS = """
import resource, numpy as np
{setup}
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(1 << 19)            # 4 MiB, touched, freed: the first one always faults
before = faults()
for _ in range(10):
    np.ones(1 << 19)
print(faults() - before)
"""


def test_a_batch_process_reuses_freed_arrays_without_page_faults() -> None:
    """With keep_freed_memory, a freed 4 MiB array's pages serve the next (glibc's mallopt; by
    default glibc maps such blocks afresh each time: 24-77 faults each, huge pages or not)."""
    import subprocess
    import sys

    def faults(setup: str) -> int:
        code = FAULTS.format(setup=setup)
        return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)

    plain = faults("")
    kept = faults("from mbcnav.cohort import keep_freed_memory; keep_freed_memory()")
    assert plain >= 200   # ten arrays faulted in afresh
    assert kept <= plain // 10


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 130), st.integers(0, 2**31), st.sampled_from([1, 5, 62, 63, 70, 124, 200]))
def test_id_lists_equal_the_polars_lists(n: int, seed: int, items: int) -> None:
    """Mask words -> lists of ids in C, against rules._as_lists, across word boundaries (62 ids a word)."""
    from mbcnav.cohort.native import id_lists
    from mbcnav.cohort.rules import _as_lists, _words

    ids = [f"id{i}" for i in range(items)]
    built = id_lists.build({"x": ids})
    assert built is not None
    rng = np.random.default_rng(seed)
    words = []
    for chunk in _words([(i, i) for i in ids]):
        dense = rng.random((n, len(chunk))) < rng.random()
        words.append((dense * (1 << np.arange(len(chunk), dtype=np.uint64))).sum(axis=1).astype(np.uint64))
    masks = pl.DataFrame([pl.Series(f"x#{w}", word.view(np.int64)) for w, word in enumerate(words)])
    want = _as_lists(masks, "x", [(i, i) for i in ids])
    got = built.series("x", words, n)
    assert got.dtype == want.dtype
    assert got.to_list() == want.to_list()
