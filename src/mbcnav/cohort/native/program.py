"""The rule conditions and the plan as one generated C function over 64 patients at a time.

The local engine's reference path evaluates the condition texts in Polars and the plan's steps
over packed bits in numpy (`bits.Program`). Here the same texts become C: every boolean is a
pair of 64-bit words (known true, known false: SQL's three-valued logic, as in bits.py), so one
instruction decides 64 patients; comparisons of a fact with a literal ("atoms") are worked out
row by row and packed; the few integers (counts, CASE positions) are bit planes, added and
compared 64 patients at a time as well.
The outputs are what `PolarsPlan.answer` reads: each output list's mask words per row (a 64x64
bit transpose of the item words), and the decision point and concordance positions.

Only what the condition checker (mbcnav.condition) and plan.py write is translated; anything
else raises `Unsupported` when the knowledge base is compiled, and the engine then runs the
Polars path, which stays the reference (tests/cohort/test_native.py holds the two together).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mbcnav.cohort import bits, native
from mbcnav.condition import Column

Layout = Literal["bool", "code", "number", "int"]   # how a column the program reads is laid out
Type = Literal["bool3", "int", "known", "null", "literal"]

INT_BITS = 8    # bit planes of an integer input (values 0 to 255)
_CMP = {"=": "==", "<>": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_FLIP = {"=": "=", "<>": "<>", ">": "<", ">=": "<=", "<": ">", "<=": ">="}


class Unsupported(ValueError):
    """A condition or plan text this generator does not translate (the Polars path runs)."""


# -- condition texts -> bits.Node trees with atoms ---------------------------------------------------

def condition_node(text: str, columns: Mapping[str, Column]) -> bits.Node:
    """A checked condition text as a bits.Node; comparisons with literals become ("atom", ...)."""
    import sqlglot

    return _Conditions(columns).node(sqlglot.parse_one(text))


class _Conditions:
    def __init__(self, columns: Mapping[str, Column]) -> None:
        self.columns = columns

    def node(self, node: object) -> bits.Node:
        from sqlglot import exp

        if isinstance(node, exp.Paren):
            return self.node(node.this)
        if isinstance(node, exp.And | exp.Or):
            return ("and" if isinstance(node, exp.And) else "or", self.node(node.this), self.node(node.expression))
        if isinstance(node, exp.Not):
            return ("not", self.node(node.this))
        if isinstance(node, exp.Boolean):
            return ("bool", bool(node.this))
        if isinstance(node, exp.Column):
            if self.columns[node.name].type != "bool":
                raise Unsupported(f"a {self.columns[node.name].type} column used as a boolean: {node.sql()}")
            return ("col", node.name)
        if isinstance(node, exp.Is):
            return ("isnull", self.value(node.this))
        if isinstance(node, exp.Coalesce):
            return ("coalesce", *(self.node(p) for p in [node.this, *node.expressions]))
        if isinstance(node, exp.In):
            column, default = self.operand(node.this)
            values = tuple(self.literal(v) for v in node.expressions)
            return ("atom", ("in", column, default, values))
        operators = {exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
        op = operators.get(type(node))  # type: ignore[arg-type]
        if op is None:
            raise Unsupported(f"unsupported condition construct: {getattr(node, 'sql', lambda: node)()}")
        left, right = node.this, node.expression  # type: ignore[attr-defined]
        if isinstance(left, exp.Literal):
            left, right, op = right, left, _FLIP[op]
        if not isinstance(right, exp.Literal | exp.Boolean):
            raise Unsupported(f"a comparison of two columns: {node.sql()}")  # type: ignore[attr-defined]
        column, default = self.operand(left)
        return ("atom", ("cmp", column, default, op, self.literal(right)))

    def value(self, node: object) -> bits.Node:
        """The operand of IS NULL: a boolean expression or a column of any type."""
        from sqlglot import exp

        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Column) and self.columns[node.name].type != "bool":
            return ("col", node.name)
        return self.node(node)

    def operand(self, node: object) -> tuple[str, object]:
        """`column` or `COALESCE(column, literal)`: (column, the literal or None)."""
        from sqlglot import exp

        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Column):
            return node.name, None
        if isinstance(node, exp.Coalesce) and isinstance(node.this, exp.Column) and len(node.expressions) == 1:
            return node.this.name, self.literal(node.expressions[0])
        raise Unsupported(f"a comparison of an expression: {getattr(node, 'sql', lambda: node)()}")

    def literal(self, node: object) -> object:
        from sqlglot import exp

        if isinstance(node, exp.Boolean):
            return bool(node.this)
        if isinstance(node, exp.Literal):
            return str(node.this) if node.is_string else float(node.this)
        raise Unsupported(f"not a literal: {getattr(node, 'sql', lambda: node)()}")


# -- generation -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Buffer:
    """A column as the compiled passes exchange it, padded to whole 64-row words: a bitmap
    (booleans; an integer's bit planes, [word][plane]), uint8 codes or doubles, and a validity
    bitmap (None: never unknown)."""

    kind: Literal["bool", "enum", "number"]
    values: npt.NDArray[np.generic]
    valid: npt.NDArray[np.uint8] | None


@dataclass(frozen=True)
class Input:
    """A column the program reads: its position in `in[]`, layout, and Enum categories if coded."""

    index: int
    kind: Layout
    categories: tuple[str, ...] = ()


@dataclass
class _Slot:
    type: Type
    name: str = ""          # C variable stem: t<name>/f<name>, p<name>[]/v<name>, k<name>
    value: int = 0          # a literal's value; an integer's largest possible value

    @property
    def width(self) -> int:
        """Bit planes an integer needs (its values are never negative)."""
        return max(1, self.value.bit_length())


@dataclass
class Generated:
    source: str
    inputs: dict[str, Input]
    lists: dict[str, list[list[str]]]     # list name -> its mask words -> the item outputs in each
    ints: list[str]                       # integer outputs, in `ints[]` order
    instructions: int = 0
    atoms: int = 0


@dataclass
class Generator:
    """Compiles nodes to C statements; each distinct subexpression once (as bits.Program does)."""

    columns: Mapping[str, Column]
    layout: Mapping[str, tuple[Layout, tuple[str, ...]]]    # readable column -> layout, categories
    lines: list[str] = field(default_factory=list)
    inputs: dict[str, Input] = field(default_factory=dict)
    slots: dict[object, _Slot] = field(default_factory=dict)
    named: dict[str, _Slot] = field(default_factory=dict)
    atoms: int = 0

    def emit(self, line: str) -> None:
        self.lines.append("        " + line)

    def new(self, key: object, type_: Type, largest: int = 0) -> tuple[_Slot, bool]:
        if key in self.slots:
            return self.slots[key], False
        slot = _Slot(type_, str(len(self.slots)), largest)
        self.slots[key] = slot
        if type_ == "bool3":
            self.emit(f"uint64_t t{slot.name}, f{slot.name};")
        elif type_ == "int":
            self.emit(f"uint64_t p{slot.name}[{slot.width}], v{slot.name};")
        elif type_ == "known":
            self.emit(f"uint64_t k{slot.name};")
        return slot, True

    def input(self, name: str) -> Input:
        if name not in self.inputs:
            if name not in self.layout:
                raise Unsupported(f"the plan reads a column the native pass does not provide: {name}")
            kind, categories = self.layout[name]
            self.inputs[name] = Input(len(self.inputs), kind, categories)
        return self.inputs[name]

    # -- nodes --------------------------------------------------------------------------------------

    def compile(self, node: bits.Node) -> _Slot:
        op = node[0]
        if op == "col":
            name = str(node[1])
            return self.named[name] if name in self.named else self.column(name)
        if op == "bool":
            slot, fresh = self.new(node, "bool3")
            if fresh:
                self.emit(f"t{slot.name} = {'ALL' if node[1] else '0'}; f{slot.name} = {'0' if node[1] else 'ALL'};")
            return slot
        if op == "int":
            return _Slot("literal", value=int(node[1]))  # type: ignore[call-overload]
        if op == "null":
            return _Slot("null")
        if op == "atom":
            return self.atom(node[1])  # type: ignore[arg-type]
        if op == "case":
            return self.case(node)
        args = [self.compile(part) for part in node[1:]]  # type: ignore[arg-type]
        if op in ("and", "or"):
            args = sorted({id(a): a for a in args}.values(), key=lambda s: int(s.name or -1))
        key = (op, *(a.name if a.type != "literal" else f"={a.value}" for a in args))
        if op == "isnull":
            return self.isnull(key, args[0])
        if op in ("add", "eq"):
            return self.integer(str(op), key, args)
        return self.logic(str(op), key, [self.bool3(a, str(op)) for a in args])

    def column(self, name: str) -> _Slot:
        info = self.input(name)
        key = ("col", name)
        if info.kind == "bool":
            slot, fresh = self.new(key, "bool3")
            if fresh:
                self.emit(f"{{ uint64_t v = word(&in[{info.index}], w), k = known(&in[{info.index}], w); "
                          f"t{slot.name} = v & k; f{slot.name} = ~v & k; }}")
            return slot
        if info.kind == "int":   # given as bit planes: INT_BITS words per 64 rows
            slot, fresh = self.new(key, "int", (1 << INT_BITS) - 1)
            if fresh:
                self.emit(f"v{slot.name} = known(&in[{info.index}], w); "
                          f"memcpy(p{slot.name}, (const uint64_t *)in[{info.index}].values + {INT_BITS} * w, "
                          f"sizeof p{slot.name});")
            return slot
        slot, fresh = self.new(key, "known")
        if fresh:
            self.emit(f"k{slot.name} = known(&in[{info.index}], w);")
        return slot

    def atom(self, spec: tuple[object, ...]) -> _Slot:
        """A fact compared with literals, row by row, packed into a (true, false) pair."""
        slot, fresh = self.new(("atom", spec), "bool3")
        if not fresh:
            return slot
        self.atoms += 1
        kind, column, default = spec[0], str(spec[1]), spec[2]
        if kind == "in":
            op, literals = "=", list(spec[3])  # type: ignore[call-overload]
        else:
            op, literals = str(spec[3]), [spec[4]]
        info = self.input(column)
        at = f"&in[{info.index}]"
        if info.kind == "code":
            if op not in ("=", "<>"):
                raise Unsupported(f"ordering a text column: {column} {op}")
            codes = [info.categories.index(v) for v in literals if v in info.categories]
            test = " || ".join(f"c[r] == {c}" for c in codes) or "0"
            test = f"({test})" if op == "=" else f"!({test})"
            row = f"const uint8_t *c = (const uint8_t *)({at})->values + 64 * w; "
            constant = None if default is None else (default in literals) == (op == "=")
        elif info.kind == "number":
            if len(literals) != 1 or isinstance(literals[0], bool | str):
                raise Unsupported(f"a number compared with {literals}: {column}")
            number = float(literals[0])
            test = f"x[r] {_CMP[op]} {_c_double(number)}"
            row = f"const double *x = (const double *)({at})->values + 64 * w; "
            constant = None if default is None else _compare(float(default), op, number)  # type: ignore[arg-type]
        else:
            raise Unsupported(f"cannot compare {column}")
        self.emit(f"{{ {row}uint64_t hit = 0, k = known({at}, w); "
                  f"for (int r = 0; r < 64; r++) hit |= (uint64_t)({test}) << r; ")
        if constant is None:
            self.emit(f"  t{slot.name} = hit & k; f{slot.name} = ~hit & k; }}")
        else:   # COALESCE(column, literal): a missing value takes the literal, so the answer is known
            fill = "ALL" if constant else "0"
            self.emit(f"  hit = (hit & k) | ({fill} & ~k); t{slot.name} = hit; f{slot.name} = ~hit; }}")
        return slot

    def bool3(self, slot: _Slot, op: str) -> _Slot:
        if slot.type == "null":
            return self._null_bool()
        if slot.type != "bool3":
            raise Unsupported(f"{op} needs booleans, not {slot.type}")
        return slot

    def _null_bool(self) -> _Slot:
        slot, fresh = self.new(("null-bool",), "bool3")
        if fresh:
            self.emit(f"t{slot.name} = 0; f{slot.name} = 0;")
        return slot

    def logic(self, op: str, key: object, args: list[_Slot]) -> _Slot:
        slot, fresh = self.new(key, "bool3")
        if not fresh:
            return slot
        s = slot.name
        trues, falses = [f"t{a.name}" for a in args], [f"f{a.name}" for a in args]
        if op == "and":   # Kleene: true when all are, false when any is
            self.emit(f"t{s} = {' & '.join(trues)}; f{s} = {' | '.join(falses)};")
        elif op == "or":
            self.emit(f"t{s} = {' | '.join(trues)}; f{s} = {' & '.join(falses)};")
        elif op == "not":
            self.emit(f"t{s} = f{args[0].name}; f{s} = t{args[0].name};")
        elif op == "coalesce":
            self.emit(f"t{s} = t{args[0].name}; f{s} = f{args[0].name};")
            for a in args[1:]:
                self.emit(f"{{ uint64_t u = ~(t{s} | f{s}); t{s} |= u & t{a.name}; f{s} |= u & f{a.name}; }}")
        else:
            raise Unsupported(f"unsupported operation {op}")
        return slot

    def isnull(self, key: object, arg: _Slot) -> _Slot:
        slot, fresh = self.new(key, "bool3")
        if fresh:
            known = {"bool3": f"(t{arg.name} | f{arg.name})", "int": f"v{arg.name}", "known": f"k{arg.name}",
                     "null": "0", "literal": "ALL"}[arg.type]
            self.emit(f"f{slot.name} = {known}; t{slot.name} = ~f{slot.name};")
        return slot

    def ints(self, slot: _Slot, op: str) -> tuple[list[str], str, int]:
        """(C words of the bit planes, validity word, largest value) of an integer operand."""
        if slot.type == "literal":
            if slot.value < 0:
                raise Unsupported(f"a negative integer: {slot.value}")
            return [("ALL" if slot.value >> b & 1 else "0") for b in range(slot.width)], "ALL", slot.value
        if slot.type == "null":
            return ["0"], "0", 0
        if slot.type != "int":
            raise Unsupported(f"{op} needs integers, not {slot.type}")
        return [f"p{slot.name}[{b}]" for b in range(slot.width)], f"v{slot.name}", slot.value

    def integer(self, op: str, key: object, args: list[_Slot]) -> _Slot:
        parts = [self.ints(a, op) for a in args]
        valid = " & ".join(dict.fromkeys(v for _, v, _ in parts))
        if op == "add":
            slot, fresh = self.new(key, "int", sum(m for _, _, m in parts))
            if fresh:
                self._sum(slot, [planes for planes, _, _ in parts])
                self.emit(f"v{slot.name} = {valid};")
            return slot
        slot, fresh = self.new(key, "bool3")
        if fresh:
            (a, _, _), (b, _, _) = parts
            width = max(len(a), len(b))
            a, b = a + ["0"] * (width - len(a)), b + ["0"] * (width - len(b))
            differ = " | ".join(f"({x} ^ {y})" for x, y in zip(a, b, strict=True))
            self.emit(f"{{ uint64_t k = {valid}, d = {differ}; t{slot.name} = ~d & k; f{slot.name} = d & k; }}")
        return slot

    def _sum(self, slot: _Slot, addends: list[list[str]]) -> None:
        """Ripple-carry addition of bit planes, one addend after another, into p<slot>."""
        s = slot.name
        self.emit(f"memset(p{s}, 0, sizeof p{s});")
        for planes in addends:
            self.emit(f"{{ uint64_t c = 0, x; const uint64_t a[] = {{{', '.join(planes)}}}; "
                      f"for (int b = 0; b < {slot.width}; b++) {{ uint64_t y = b < {len(planes)} ? a[b] : 0; "
                      f"x = p{s}[b] ^ y; uint64_t carry = (p{s}[b] & y) | (x & c); p{s}[b] = x ^ c; c = carry; }} }}")

    def case(self, node: bits.Node) -> _Slot:
        branches, otherwise = node[1], node[2]
        assert isinstance(branches, tuple)
        pairs = [(self.compile(w), self.compile(v)) for w, v in branches]
        last = self.compile(otherwise)  # type: ignore[arg-type]
        key = ("case", *(s.name if s.type != "literal" else f"={s.value}" for p in pairs for s in p),
               last.name if last.type != "literal" else f"={last.value}", last.type)
        whens = [self.bool3(w, "CASE") for w, _ in pairs]
        if any(v.type in ("int", "literal") for _, v in pairs) or last.type in ("int", "literal"):
            values = [self.ints(v, "CASE") for _, v in pairs]
            end = self.ints(last, "CASE")
            slot, fresh = self.new(key, "int", max(m for _, _, m in [*values, end]))
            if fresh:   # the first true WHEN wins: apply them last to first
                s, width = slot.name, slot.width
                planes, valid, _ = end
                self.emit(" ".join(f"p{s}[{b}] = {planes[b] if b < len(planes) else '0'};" for b in range(width))
                          + f" v{s} = {valid};")
                for w, (planes, valid, _) in reversed(list(zip(whens, values, strict=True))):
                    chosen = f"t{w.name}"
                    self.emit(" ".join(
                        f"p{s}[{b}] = ({chosen} & {planes[b] if b < len(planes) else '0'}) | (~{chosen} & p{s}[{b}]);"
                        for b in range(width)) + f" v{s} = ({chosen} & {valid}) | (~{chosen} & v{s});")
            return slot
        out = self.bool3(last, "CASE")
        slot, fresh = self.new(key, "bool3")
        if fresh:
            s = slot.name
            self.emit(f"t{s} = t{out.name}; f{s} = f{out.name};")
            for w, (_, v) in reversed(list(zip(whens, pairs, strict=True))):
                value = self.bool3(v, "CASE")
                self.emit(f"t{s} = (t{w.name} & t{value.name}) | (~t{w.name} & t{s}); "
                          f"f{s} = (t{w.name} & f{value.name}) | (~t{w.name} & f{s});")
        return slot


def _compare(a: float, op: str, b: float) -> bool:
    return {"=": a == b, "<>": a != b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


def _c_double(x: float) -> str:
    if not math.isfinite(x):
        raise Unsupported(f"a literal that is not a finite number: {x}")
    return repr(float(x))


_PRELUDE = r"""/* Generated by mbcnav/cohort/native/program.py from the knowledge base: do not edit. */
#include "common.h"

#define ALL (~(uint64_t)0)

static inline uint64_t word(const column *c, int64_t w) { return ((const uint64_t *)c->values)[w]; }
static inline uint64_t known(const column *c, int64_t w) {
    return c->valid ? ((const uint64_t *)c->valid)[w] : ALL;
}
"""


def generate(conditions: Mapping[str, str], steps: Sequence[Mapping[str, str]], columns: Mapping[str, Column],
             layout: Mapping[str, tuple[Layout, tuple[str, ...]]], lists: Mapping[str, Sequence[Sequence[str]]],
             ints: Sequence[str]) -> Generated:
    """The C for conditions then steps; outputs: `lists` (name -> mask words -> items), `ints`."""
    gen = Generator(columns, layout)
    for name, text in conditions.items():
        gen.named[name] = gen.compile(condition_node(text, columns))
    for step in steps:
        found = {name: gen.compile(bits.parse(text)) for name, text in step.items()}
        gen.named.update(found)
    body = list(gen.lines)
    # Every output is a run of words (a list's item words, an integer's bit planes) that becomes one
    # value per row. Runs are packed into 64-word groups and each group is transposed once.
    runs: list[tuple[str, int, Sequence[str]]] = []   # (target array, index, words)
    at = 0
    for name, words in lists.items():
        for items in words:
            runs.append(("masks", at, ["t" + gen.bool3(gen.named[item], f"list {name}").name for item in items]))
            at += 1
    valid_words = []
    for i, name in enumerate(ints):
        bit_planes, valid, _ = gen.ints(gen.named[name], name)
        runs.append(("values", i, bit_planes))
        valid_words.append(f"        valid[{i}][w] = {valid};")
    groups: list[list[tuple[str, int, Sequence[str]]]] = []
    for run in runs:
        if not groups or sum(len(r[2]) for r in groups[-1]) + len(run[2]) > 64:
            groups.append([])
        groups[-1].append(run)
    out: list[str] = []
    for group in groups:
        stacked = [word for _, _, run_words in group for word in run_words]
        out.append(f"        {{ uint64_t m[64] = {{{', '.join(stacked) or '0'}}}; transpose64(m);")
        start = 0
        for target, index, run_words in group:
            mask = f"0x{(1 << len(run_words)) - 1:x}ull" if run_words else "0"
            cast = "" if target == "masks" else "(int32_t)"
            out.append(f"          for (int r = 0; r < 64; r++) {target}[{index}][64 * w + r] = "
                       f"{cast}((m[r] >> {start}) & {mask});")
            start += len(run_words)
        out.append("        }")
    out += valid_words
    source = _PRELUDE + "\n".join([
        "",
        "void mbcnav_program(int64_t words, const column *in, uint64_t **masks, int32_t **values, uint64_t **valid) {",
        "    for (int64_t w = 0; w < words; w++) {",
        *body,
        *out,
        "    }",
        "}",
        "",
    ])
    generated_lists = {name: [list(items) for items in words] for name, words in lists.items()}
    return Generated(source, gen.inputs, generated_lists, list(ints), len(gen.slots), gen.atoms)


@dataclass(frozen=True)
class Outputs:
    """One run: per list, its mask words (per row, bit i = item i: uint64); per integer output, its
    values (int32) and validity words (uint64)."""

    masks: dict[str, list[npt.NDArray[Any]]]
    values: dict[str, npt.NDArray[Any]]
    known: dict[str, npt.NDArray[Any]]


class Program:
    """A generated program, compiled and loaded; `run` evaluates it over columns of buffers."""

    def __init__(self, generated: Generated, lib: ctypes.CDLL) -> None:
        self.generated = generated
        self.fn = lib.mbcnav_program
        self.fn.restype = None
        self.fn.argtypes = [ctypes.c_int64, ctypes.POINTER(native.Column), ctypes.c_void_p, ctypes.c_void_p,
                            ctypes.c_void_p]
        self.arena = native.Arena()

    def run(self, n: int, columns: Mapping[str, Buffer], reuse: bool = False) -> Outputs:
        """`columns`: every input the program reads, as buffers of at least (n + 63) // 64 words.

        `reuse`: write into this thread's buffers from its previous run (see `native.Arena`).
        """
        words = (n + 63) // 64
        inputs = (native.Column * max(1, len(self.generated.inputs)))()
        for name, spec in self.generated.inputs.items():
            b = columns[name]
            valid = None if b.valid is None else b.valid.ctypes.data
            inputs[spec.index] = native.Column(b.values.ctypes.data, valid, 0)
        take: Callable[[str, int, Any], npt.NDArray[Any]] = self.arena.take if reuse else native.zeros
        masks = {name: [take(f"{name}#{w}", words * 64, np.uint64) for w in range(len(items))]
                 for name, items in self.generated.lists.items()}
        values = {name: take(name, words * 64, np.int32) for name in self.generated.ints}
        known = {name: take(f"{name}/valid", max(1, words), np.uint64) for name in self.generated.ints}
        flat = [m for ms in masks.values() for m in ms]
        self.fn(words, inputs, _pointers(flat), _pointers([*values.values()]), _pointers([*known.values()]))
        return Outputs(masks, values, known)


def compiled(generated: Generated) -> Program | None:
    """The generated program built (~2.5 s for the shipped knowledge base, then cached)."""
    lib = native.library("program", {"program.c": generated.source, **native.headers()})
    return None if lib is None else Program(generated, lib)


def _pointers(arrays: Sequence[npt.NDArray[Any]]) -> ctypes.Array[ctypes.c_void_p]:
    return (ctypes.c_void_p * max(1, len(arrays)))(*(a.ctypes.data for a in arrays))
