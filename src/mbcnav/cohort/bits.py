"""The plan's steps over packed bit vectors: SQL three-valued logic, eight patients per byte.

The plan's steps (rule status, safety net, tests, decision point, concordance) are hundreds of
AND/OR/NOT/COALESCE texts over boolean columns. Polars spends about 150 µs on one AND of 500,000
booleans; numpy spends about 3 µs on the same bits packed into bytes. So the local engine runs
the plan's own SQL texts here: each text is parsed once into a shared program (a subexpression
that recurs, like ``COALESCE(_c119, FALSE)``, is one instruction), then every batch runs the
program over numpy arrays.

A boolean is two bit vectors, ``t`` (known true) and ``f`` (known false); a NULL has neither
bit. That is SQL's (Kleene) logic exactly: AND is ``t = ta & tb, f = fa | fb``, OR is the dual,
NOT swaps them. The subset is what plan.py writes: AND, OR, NOT, COALESCE, IS [NOT] NULL,
CASE WHEN ... THEN ... [ELSE ...] END, ``+`` and ``=`` on integers, TRUE, FALSE, integers and
column names. Anything else is refused when the program is built, not when a batch runs.
tests/cohort/test_bits.py holds the results to Polars' own SQL, operator by operator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]

Bytes = npt.NDArray[np.uint8]

_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(<>|!=|[(),=+])|(\S))")
_KEYWORDS = frozenset({"AND", "OR", "NOT", "COALESCE", "CASE", "WHEN", "THEN", "ELSE", "END", "IS", "NULL", "TRUE",
                       "FALSE"})


class PlanSyntaxError(ValueError):
    """A plan text outside the subset this evaluator implements."""


# -- parsing: text -> nested tuples ------------------------------------------------------------------

Node = tuple[object, ...]


class _Parser:
    """Recursive descent with SQL's precedence: OR < AND < NOT < (=, IS) < + < primary."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        for number, word, symbol, other in _TOKEN.findall(text):
            if other:
                raise PlanSyntaxError(f"unsupported character {other!r} in plan text: {text[:120]}")
            if number:
                self.tokens.append(("int", number))
            elif word:
                upper = word.upper()
                self.tokens.append(("kw", upper) if upper in _KEYWORDS else ("name", word))
            else:
                self.tokens.append(("sym", symbol))
        self.at = 0

    def parse(self) -> Node:
        node = self.or_()
        if self.at != len(self.tokens):
            self.fail("unexpected text after the expression")
        return node

    def fail(self, why: str) -> None:
        near = " ".join(v for _, v in self.tokens[self.at:self.at + 6])
        raise PlanSyntaxError(f"{why} near {near!r} in plan text: {self.text[:120]}")

    def peek(self, *values: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at][1] in values and self.tokens[self.at][0] != "name"

    def take(self, value: str) -> None:
        if not self.peek(value):
            self.fail(f"expected {value}")
        self.at += 1

    def or_(self) -> Node:
        return self.chain("or", "OR", self.and_)

    def and_(self) -> Node:
        return self.chain("and", "AND", self.not_)

    def chain(self, tag: str, token: str, operand: Callable[[], Node]) -> Node:
        """operand (token operand)*: one node for the whole run, or the operand alone."""
        parts = [operand()]
        while self.peek(token):
            self.at += 1
            parts.append(operand())
        return parts[0] if len(parts) == 1 else (tag, *parts)

    def not_(self) -> Node:
        if self.peek("NOT"):
            self.at += 1
            return ("not", self.not_())
        return self.compare()

    def compare(self) -> Node:
        left = self.add()
        if self.peek("="):
            self.at += 1
            return ("eq", left, self.add())
        if self.peek("<>", "!="):
            self.at += 1
            return ("not", ("eq", left, self.add()))
        if self.peek("IS"):
            self.at += 1
            negated = self.peek("NOT")
            if negated:
                self.at += 1
            self.take("NULL")
            return ("not", ("isnull", left)) if negated else ("isnull", left)
        return left

    def add(self) -> Node:
        return self.chain("add", "+", self.primary)

    def primary(self) -> Node:
        if self.at >= len(self.tokens):
            self.fail("the text ends early")
        kind, value = self.tokens[self.at]
        self.at += 1
        if kind == "int":
            return ("int", int(value))
        if kind == "name":
            return ("col", value)
        if value in ("TRUE", "FALSE"):
            return ("bool", value == "TRUE")
        if value == "(":
            node = self.or_()
            self.take(")")
            return node
        if value == "COALESCE":
            self.take("(")
            args = [self.or_()]
            while self.peek(","):
                self.at += 1
                args.append(self.or_())
            self.take(")")
            return ("coalesce", *args)
        if value == "CASE":
            branches: list[Node] = []
            while self.peek("WHEN"):
                self.at += 1
                when = self.or_()
                self.take("THEN")
                branches.append((when, self.or_()))
            if not branches:
                self.fail("CASE without WHEN")
            otherwise: Node = ("null",)
            if self.peek("ELSE"):
                self.at += 1
                otherwise = self.or_()
            self.take("END")
            return ("case", tuple(branches), otherwise)
        self.at -= 1
        self.fail(f"unsupported {value}")
        raise AssertionError  # fail() raises


def parse(text: str) -> Node:
    return _Parser(text).parse()


# -- values ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bool3:
    """Known-true and known-false bits; NULL where neither is set (bits past the last row: any)."""

    t: Bytes
    f: Bytes


@dataclass(frozen=True)
class Ints:
    """Integers of any width (a literal is a Python int, which adapts to the array beside it)."""

    values: npt.NDArray[np.integer] | int
    valid: npt.NDArray[np.bool_] | None  # None: no NULLs


@dataclass(frozen=True)
class Known:
    """A column of another type: only whether each value is NULL can be asked of it."""

    bits: Bytes


@dataclass(frozen=True)
class Null:
    """The NULL of a CASE without ELSE: a boolean or an integer, as its context needs."""


Value = Bool3 | Ints | Known | Null


def _pack(flags: npt.NDArray[np.bool_]) -> Bytes:
    return np.packbits(flags, bitorder="little")


def _unpack(bits: Bytes, n: int) -> npt.NDArray[np.bool_]:
    return np.unpackbits(bits, count=n, bitorder="little").view(np.bool_)


def _buffer_bits(buffer: pa.Buffer | None, offset: int, n: int) -> Bytes | None:
    if buffer is None:
        return None
    return np.frombuffer(buffer, dtype=np.uint8, count=(n + 7) // 8, offset=offset // 8)


def column(series: pl.Series) -> Value:
    """A Polars column as a bit-vector value (booleans without copying their bits)."""
    n = series.len()
    if series.dtype == pl.Boolean:
        array = series.to_arrow()
        if array.offset % 8:   # a slice that starts inside a byte: copy it to a fresh array
            array = pa.concat_arrays([array])
        validity, values = (_buffer_bits(b, array.offset, n) for b in array.buffers())
        assert values is not None
        if validity is None:
            return Bool3(values, ~values)
        return Bool3(values & validity, ~values & validity)
    if series.dtype.is_integer():
        valid = series.is_not_null().to_numpy() if series.has_nulls() else None
        return Ints(series.fill_null(0).to_numpy(), valid)
    return Known(_pack(series.is_not_null().to_numpy()))


def as_series(name: str, value: Value, n: int) -> pl.Series:
    """A boolean or integer value back as a Polars column."""
    if isinstance(value, Bool3):
        array = pa.Array.from_buffers(pa.bool_(), n, [pa.py_buffer(value.t | value.f), pa.py_buffer(value.t)])
        return pl.Series(name, array)
    if isinstance(value, Ints):
        values = np.broadcast_to(np.asarray(value.values), (n,))
        series = pl.Series(name, values)
        return series if value.valid is None else series.set(pl.Series(~value.valid), None)
    raise PlanSyntaxError(f"{name}: only booleans and integers can be read back")


# -- the program -------------------------------------------------------------------------------------

Instruction = tuple[str, tuple[int, ...], object]   # operation, argument slots, literal


class Program:
    """The steps' texts as one list of instructions, each shared subexpression computed once.

    Slots are numbered in evaluation order; a slot is dropped after its last use, so a batch
    holds only the bit vectors still to be read (the plan has thousands of subexpressions).
    """

    def __init__(self, steps: Iterable[Mapping[str, str]], outputs: Iterable[str]) -> None:
        self.code: list[Instruction] = []
        self.inputs: dict[str, int] = {}        # column read from the frame -> slot
        self._slots: dict[tuple[object, ...], int] = {}
        named: dict[str, int] = {}
        for step in steps:
            found = {name: self._compile(parse(text), named) for name, text in step.items()}
            named.update(found)
        self.outputs = {name: named[name] for name in outputs}
        self._last_use = self._lifetimes()

    def _slot(self, key: tuple[object, ...], instruction: Instruction) -> int:
        if key not in self._slots:
            self._slots[key] = len(self.code)
            self.code.append(instruction)
        return self._slots[key]

    def _compile(self, node: Node, named: Mapping[str, int]) -> int:
        op = node[0]
        if op == "col":
            name = str(node[1])
            if name in named:
                return named[name]
            slot = self._slot(node, ("input", (), name))
            self.inputs[name] = slot
            return slot
        if op in ("bool", "int", "null"):
            return self._slot(node, (str(op), (), node[1] if len(node) > 1 else None))
        if op == "case":
            branches, otherwise = node[1], node[2]
            assert isinstance(branches, tuple)
            args = tuple(self._compile(part, named) for branch in branches for part in branch)
            args += (self._compile(otherwise, named),)  # type: ignore[arg-type]
            return self._slot(("case", *args), ("case", args, None))
        args = tuple(self._compile(part, named) for part in node[1:])  # type: ignore[arg-type]
        if op in ("and", "or"):   # order and repeats do not change AND/OR: share more
            args = tuple(sorted(set(args)))
        return self._slot((op, *args), (str(op), args, None))

    def _lifetimes(self) -> dict[int, list[int]]:
        """instruction index -> the slots whose last reader it is (outputs are kept to the end)."""
        last: dict[int, int] = {}
        for at, (_, args, _) in enumerate(self.code):
            for a in args:
                last[a] = at
        kept = set(self.outputs.values())
        freed: dict[int, list[int]] = {}
        for slot, at in last.items():
            if slot not in kept:
                freed.setdefault(at, []).append(slot)
        return freed

    def run(self, frame: pl.DataFrame) -> dict[str, Value]:
        """The outputs for every row of `frame` (which holds the input columns)."""
        missing = sorted(set(self.inputs) - set(frame.columns))
        if missing:
            raise PlanSyntaxError(f"plan reads columns the frame lacks: {', '.join(missing)}")
        run = _Run(frame)
        slots: dict[int, Value] = {}
        for at, (op, args, literal) in enumerate(self.code):
            slots[at] = run.do(op, [slots[a] for a in args], literal)
            for slot in self._last_use.get(at, ()):
                del slots[slot]
        return {name: slots[slot] for name, slot in self.outputs.items()}


_SQL = {"and": "AND", "or": "OR", "not": "NOT", "coalesce": "COALESCE", "add": "+", "eq": "="}


class _Run:
    """One batch's evaluation: the operations over its row count."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self.n = frame.height
        size = (self.n + 7) // 8
        self.ones = np.full(size, 0xFF, dtype=np.uint8)
        self.zeros = np.zeros(size, dtype=np.uint8)

    def do(self, op: str, args: list[Value], literal: object) -> Value:
        if op == "input":
            return column(self.frame.get_column(str(literal)))
        if op == "bool":
            return Bool3(self.ones, self.zeros) if literal else Bool3(self.zeros, self.ones)
        if op == "int":
            assert isinstance(literal, int)
            return Ints(literal, None)
        if op == "null":
            return Null()
        if op == "case":
            return self.case(args)
        if op == "add":
            return self.add([self.ints(a, op) for a in args])
        if op == "eq":
            return self.eq(self.ints(args[0], op), self.ints(args[1], op))
        if op == "isnull":
            return self.isnull(args[0])
        bools = [self.bool3(a, op) for a in args]
        if op == "and":
            return Bool3(_all(b.t for b in bools), _any(b.f for b in bools))
        if op == "or":
            return Bool3(_any(b.t for b in bools), _all(b.f for b in bools))
        if op == "not":
            return Bool3(bools[0].f, bools[0].t)
        if op == "coalesce":
            t, f = bools[0].t, bools[0].f
            for b in bools[1:]:
                unknown = ~(t | f)
                t, f = t | (unknown & b.t), f | (unknown & b.f)
            return Bool3(t, f)
        raise PlanSyntaxError(f"unsupported operation {op}")

    def bool3(self, value: Value, op: str) -> Bool3:
        if isinstance(value, Null):
            return Bool3(self.zeros, self.zeros)
        if not isinstance(value, Bool3):
            raise PlanSyntaxError(f"{_SQL.get(op, op)} needs booleans, not {type(value).__name__}")
        return value

    def ints(self, value: Value, op: str) -> Ints:
        if isinstance(value, Null):
            return Ints(0, np.zeros(self.n, dtype=np.bool_))
        if not isinstance(value, Ints):
            raise PlanSyntaxError(f"{_SQL.get(op, op)} needs integers, not {type(value).__name__}")
        return value

    def isnull(self, value: Value) -> Bool3:
        if isinstance(value, Null):
            known = self.zeros
        elif isinstance(value, Bool3):
            known = value.t | value.f
        elif isinstance(value, Ints):
            known = self.ones if value.valid is None else _pack(value.valid)
        else:
            known = value.bits
        return Bool3(~known, known)

    def add(self, parts: list[Ints]) -> Ints:
        """A sum: in 16 unsigned bits when every addend is a byte (a CASE of 0 and 1; fewer than 256
        of them cannot overflow), else in 32 bits. Half the memory traffic of 32 bits."""
        arrays = [p.values for p in parts if not isinstance(p.values, int)]
        constant = sum(p.values for p in parts if isinstance(p.values, int))
        narrow = len(parts) < 256 and 0 <= constant < 256 and all(
            a.dtype.itemsize == 1 and a.dtype.kind in "ub" for a in arrays)
        total: npt.NDArray[np.integer] = np.full(self.n, constant, dtype=np.uint16 if narrow else np.int32)
        for a in arrays:
            total += a
        return Ints(total, _valid(parts, self.n))

    def eq(self, a: Ints, b: Ints) -> Bool3:
        same = np.broadcast_to(a.values == b.values, (self.n,))
        valid = _valid([a, b], self.n)
        if valid is None:
            return Bool3(_pack(same), _pack(~same))
        return Bool3(_pack(same & valid), _pack(~same & valid))

    def case(self, args: list[Value]) -> Value:
        """First WHEN that is true (NULL counts as not true) gives the value; else the ELSE."""
        pairs = list(zip(args[0:-1:2], args[1:-1:2], strict=True))
        result = args[-1]
        if any(isinstance(v, Ints) for _, v in pairs):
            return self.case_ints([(_unpack(self.bool3(w, "CASE").t, self.n), self.ints(v, "CASE"))
                                   for w, v in pairs], self.ints(result, "CASE"))
        out = self.bool3(result, "CASE")
        t, f = out.t, out.f
        for when, then in reversed(pairs):
            chosen, branch = self.bool3(when, "CASE").t, self.bool3(then, "CASE")
            t, f = (chosen & branch.t) | (~chosen & t), (chosen & branch.f) | (~chosen & f)
        return Bool3(t, f)


    def case_ints(self, pairs: list[tuple[npt.NDArray[np.bool_], Ints]], otherwise: Ints) -> Ints:
        if len(pairs) == 1 and _literal(pairs[0][1], 1) and _literal(otherwise, 0):
            return Ints(pairs[0][0].view(np.uint8), None)   # CASE WHEN x THEN 1 ELSE 0: the bits as bytes
        values: npt.NDArray[np.integer] = np.broadcast_to(np.asarray(otherwise.values), (self.n,))
        nulls = otherwise.valid is not None or any(v.valid is not None for _, v in pairs)
        valid = np.broadcast_to(True if otherwise.valid is None else otherwise.valid, (self.n,))
        for chosen, branch in reversed(pairs):   # later branches first, so the first true one wins
            values = np.where(chosen, branch.values, values)
            if nulls:
                valid = np.where(chosen, True if branch.valid is None else branch.valid, valid)
        return Ints(values, valid if nulls else None)


def _literal(value: Ints, number: int) -> bool:
    return isinstance(value.values, int) and value.values == number and value.valid is None


def _all(parts: Iterable[Bytes]) -> Bytes:
    it = iter(parts)
    out = next(it)
    for p in it:
        out = out & p
    return out


def _any(parts: Iterable[Bytes]) -> Bytes:
    it = iter(parts)
    out = next(it)
    for p in it:
        out = out | p
    return out


def _valid(parts: list[Ints], n: int) -> npt.NDArray[np.bool_] | None:
    masks = [p.valid for p in parts if p.valid is not None]
    if not masks:
        return None
    out = masks[0]
    for m in masks[1:]:
        out = out & m
    return np.broadcast_to(out, (n,))


# -- list masks --------------------------------------------------------------------------------------

# An 8x8 bit transpose of each 64-bit word (Hacker's Delight, "transpose8"): byte j bit i <-> byte i bit j.
_TRANSPOSE = ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))


def _transpose8(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    x = words
    for shift, mask in _TRANSPOSE:
        s, m = np.uint64(shift), np.uint64(mask)
        t = (x ^ (x >> s)) & m
        x = x ^ t ^ (t << s)
    return x


def mask_word(items: list[Bytes], n: int) -> npt.NDArray[np.int64]:
    """Per row, bit i set when items[i] is set for that row (at most 64 items).

    Eight items at a time: their bytes for rows 8k..8k+7 form an 8x8 bit matrix; transposed,
    each byte holds one row's eight bits, which is that row's byte of the word.
    """
    if len(items) > 64:
        raise ValueError("a mask word holds at most 64 items")
    size = (n + 7) // 8
    word = np.zeros((size * 8, 8), dtype=np.uint8)
    for group in range(0, len(items), 8):
        block = np.zeros((size, 8), dtype=np.uint8)
        for j, bits in enumerate(items[group:group + 8]):
            block[:, j] = bits[:size]
        rows = _transpose8(block.view(np.uint64).reshape(size)).view(np.uint8)
        word[:, group // 8] = rows
    return word.view(np.int64).reshape(size * 8)[:n]
