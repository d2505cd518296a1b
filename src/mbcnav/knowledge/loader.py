"""Load, check and compile the knowledge base (data only lives in ``knowledge/data``).

Loading fails loudly on: an unknown key, a duplicate id, a rule file named differently from its
id, a condition that uses an undeclared column or value, a drug not in the catalogue, a source id
that does not exist. Every condition text is compiled once into one Python function.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import os
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mbcnav import condition as cond
from mbcnav.facts import DrugClasses
from mbcnav.knowledge import schema as s
from mbcnav.vocabulary import NON_DRUG, key

M = TypeVar("M", bound=BaseModel)

RULE_FOLDERS = {"options": "option", "local_and_supportive": "local_and_supportive",
                "not_recommended": "not_recommended"}


class KnowledgeError(ValueError):
    """The knowledge base is inconsistent; the message names the file and the problem."""


def data_root() -> Traversable:
    return resources.files("mbcnav") / "knowledge" / "data"


@dataclass
class Knowledge:
    version: str
    columns: dict[str, cond.Column]
    sources: dict[str, s.Source]
    drugs: dict[str, s.Drug]
    rules: list[s.Rule]
    adjuncts: list[s.Adjunct]
    safety: list[s.SafetyBlock]
    tests: dict[str, s.TestSuggestion]
    interactions: list[s.Interaction]
    medications: dict[str, s.Medication]
    medication_groups: dict[str, s.MedicationGroup]
    questions: list[s.Question]
    warnings: list[s.Warning]
    decision_points: list[dict[str, str]]
    drug_classes: DrugClasses
    rule_files: dict[str, str]
    resolvers: dict[str, str] = field(default_factory=dict)          # fact column -> test id
    medication_names: dict[str, str] = field(default_factory=dict)   # typed-name key -> medication/drug id
    conditions: list[cond.Condition] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)   # condition text -> position
    evaluate: cond.Evaluator = field(default=lambda f: ())

    interaction_sets: list[tuple[s.Interaction, frozenset[str], frozenset[str]]] = field(default_factory=list)

    def __getstate__(self) -> dict[str, Any]:
        # The generated evaluator is rebuilt from the conditions' Python text on unpickling.
        state = dict(self.__dict__)
        del state["evaluate"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.evaluate = cond.compile_all(self.conditions)

    def slot(self, text: str) -> int:
        """Position of a condition's truth value in the evaluator's output."""
        return self.index[text]

    def condition(self, text: str) -> cond.Condition:
        return self.conditions[self.index[text]]

    def drug_ids(self) -> set[str]:
        return set(self.drugs) | set(NON_DRUG)

    def last_reviewed(self) -> dt.date:
        return max(item.reviewed for item in self.reviewed_items())

    def reviewed_items(self) -> Iterator[s.Reviewed]:
        yield from self.drugs.values()
        yield from self.rules
        yield from self.adjuncts
        yield from self.safety
        yield from self.tests.values()
        yield from self.interactions
        yield from self.medication_groups.values()
        yield from self.questions
        yield from self.warnings


# libyaml's C parser is ~10x faster than the pure-Python one; fall back when it is missing.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml(item: Traversable) -> Any:
    try:
        return yaml.load(item.read_text(encoding="utf-8"), Loader=_Loader)  # safe: CSafeLoader/SafeLoader
    except yaml.YAMLError as err:
        raise KnowledgeError(f"{item.name}: not valid YAML: {err}") from None


def _model(model: type[M], data: Any, where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise KnowledgeError(f"{where}: {problems}") from None


def _list_file(root: Traversable, name: str, model: type[M]) -> list[M]:
    item = root / name
    return [_model(model, x, f"{name}[{i}]") for i, x in enumerate(_yaml(item) or [])]


def _list_folder(root: Traversable, folder: str, model: type[M]) -> list[tuple[str, M]]:
    out: list[tuple[str, M]] = []
    for item in sorted((root / folder).iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yaml"):
            for i, x in enumerate(_yaml(item) or []):
                out.append((f"{folder}/{item.name}", _model(model, x, f"{folder}/{item.name}[{i}]")))
    return out


def _walk_rules(root: Traversable) -> Iterator[tuple[str, str, Traversable]]:
    base = root / "rules"
    for folder, kind in RULE_FOLDERS.items():
        stack = [(base / folder, f"rules/{folder}")]
        while stack:
            directory, rel = stack.pop()
            if not directory.is_dir():
                continue
            for item in sorted(directory.iterdir(), key=lambda p: p.name):
                if item.is_dir():
                    stack.append((item, f"{rel}/{item.name}"))
                elif item.name.endswith(".yaml"):
                    yield kind, f"{rel}/{item.name}", item


def _unique(items: list[tuple[str, Any]], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for where, item in items:
        if item.id in out and out[item.id] != item:
            raise KnowledgeError(f"{where}: duplicate {what} id {item.id!r}")
        out[item.id] = item
    return out


def _columns(root: Traversable) -> dict[str, cond.Column]:
    spec = _yaml(root / "facts.yaml")
    columns: dict[str, cond.Column] = {}
    for entry in spec["columns"]:
        columns[entry["name"]] = cond.Column(entry["name"], entry["type"], frozenset(entry.get("allowed", [])))
    flags = spec["history_flags"]
    for name in [*flags["classes"], *flags["drugs"]]:
        for prefix in ("prior_", "met_"):
            columns[prefix + name] = cond.Column(prefix + name, "bool")
    return columns


def column_tests(root: Traversable | None = None) -> dict[str, str]:
    """Fact column -> id of the test (or history question) that can fill it in."""
    spec = _yaml((root or data_root()) / "facts.yaml")
    return {e["name"]: e["resolved_by"] for e in spec["columns"] if e.get("resolved_by")}


def _version(root: Traversable) -> str:
    """VERSION plus a hash of every data file: any change to the data changes the version."""
    digest = hashlib.sha256()
    stack = [root]
    files: list[tuple[str, bytes]] = []
    while stack:
        directory = stack.pop()
        for item in directory.iterdir():
            if item.is_dir():
                stack.append(item)
            elif item.name.endswith((".yaml", "VERSION")):
                files.append((str(item), item.read_bytes()))
    for name, content in sorted(files):
        digest.update(name.rsplit("/data/", 1)[-1].encode())
        digest.update(content)
    base = (root / "VERSION").read_text(encoding="utf-8").strip()
    return f"{base}+{digest.hexdigest()[:8]}"


def load(root: Traversable | None = None) -> Knowledge:
    root = root or data_root()
    columns = _columns(root)
    sources = _unique(_list_folder(root, "sources", s.Source), "source")
    drugs: dict[str, s.Drug] = _unique(_list_folder(root, "drugs", s.Drug), "drug")
    rules: list[s.Rule] = []
    rule_files: dict[str, str] = {}
    for kind, rel, item in _walk_rules(root):
        data = _yaml(item)
        if not isinstance(data, dict):
            raise KnowledgeError(f"{rel}: a rule file holds one mapping")
        if data.setdefault("kind", kind) != kind:
            raise KnowledgeError(f"{rel}: kind {data['kind']!r} does not match its folder ({kind})")
        rule = _model(s.Rule, data, rel)
        if item.name != f"{rule.id}.yaml":
            raise KnowledgeError(f"{rel}: file name must be the rule id ({rule.id}.yaml)")
        if rule.id in rule_files:
            raise KnowledgeError(f"{rel}: duplicate rule id {rule.id!r} (also {rule_files[rule.id]})")
        rule_files[rule.id] = rel
        rules.append(rule)
    spec = _yaml(root / "facts.yaml")["history_flags"]
    drug_classes = DrugClasses(
        classes={d.id: frozenset(d.classes) for d in drugs.values()},
        counts_as={d.id: tuple(d.counts_as) for d in drugs.values() if d.counts_as},
        flag_classes=tuple(spec["classes"]),
        flag_drugs=tuple(spec["drugs"]),
    )
    kb = Knowledge(
        version=_version(root),
        columns=columns,
        sources=sources,
        drugs=drugs,
        rules=rules,
        adjuncts=_list_file(root, "adjuncts.yaml", s.Adjunct),
        safety=_list_file(root, "safety.yaml", s.SafetyBlock),
        tests={t.id: t for t in _list_file(root, "tests.yaml", s.TestSuggestion)},
        interactions=_list_file(root, "interactions.yaml", s.Interaction),
        medications={m.id: m for m in _list_file(root, "medications.yaml", s.Medication)},
        medication_groups={g.id: g for g in _list_file(root, "medication_groups.yaml", s.MedicationGroup)},
        questions=_list_file(root, "questions.yaml", s.Question),
        warnings=_list_file(root, "warnings.yaml", s.Warning),
        decision_points=_yaml(root / "decision_points.yaml"),
        drug_classes=drug_classes,
        rule_files=rule_files,
    )
    _check_references(kb, root)
    _compile(kb)
    kb.resolvers = column_tests(root)
    kb.medication_names = _medication_names(kb)
    kb.interaction_sets = _interaction_sets(kb)
    return kb


def _interaction_sets(kb: Knowledge) -> list[tuple[s.Interaction, frozenset[str], frozenset[str]]]:
    """Each interaction with its class and group patterns expanded to concrete ids, once."""
    out = []
    for inter in kb.interactions:
        drugs = {d.id for d in kb.drugs.values()
                 if d.id in inter.drugs or any(f"class:{c}" in inter.drugs for c in d.classes)}
        meds: set[str] = set()
        for name in inter.with_:
            meds |= set(kb.medication_groups[name[6:]].members) if name.startswith("group:") else {name}
        out.append((inter, frozenset(drugs), frozenset(meds)))
    return out


def _medication_names(kb: Knowledge) -> dict[str, str]:
    """Lookup for current_medications: non-cancer medicines first, then catalogue drugs."""
    lookup: dict[str, str] = {}
    for med in kb.medications.values():
        for name in [med.id, *med.names]:
            lookup[key(name)] = med.id
    for drug in kb.drugs.values():
        for name in [drug.id, drug.name, *drug.brands, *drug.aliases]:
            lookup.setdefault(key(name), drug.id)
    return lookup


def condition_texts(kb: Knowledge) -> Iterator[tuple[str, str]]:
    """(where, text) for every condition in the knowledge base."""
    for rule in kb.rules:
        yield f"{rule.id}.applies_when", rule.applies_when
        for clause in [*rule.requires, *rule.excludes]:
            yield f"{rule.id}.{clause.id}", clause.when
        for i, caution in enumerate(rule.cautions):
            yield f"{rule.id}.cautions[{i}]", caution.when
    for adjunct in kb.adjuncts:
        yield f"adjunct {adjunct.id}", adjunct.when
    for block in kb.safety:
        yield f"safety {block.id}", block.when
    for test in kb.tests.values():
        if test.when:
            yield f"test {test.id}", test.when
    for question in kb.questions:
        if question.when:
            yield f"question {question.id}", question.when
    for warning in kb.warnings:
        yield f"warning {warning.id}", warning.when
    for i, point in enumerate(kb.decision_points):
        yield f"decision_points[{i}]", point["when"]


def _compile(kb: Knowledge) -> None:
    for where, text in condition_texts(kb):
        if text in kb.index:
            continue
        try:
            kb.index[text] = len(kb.conditions)
            kb.conditions.append(cond.parse(text, kb.columns))
        except cond.ConditionError as err:
            raise KnowledgeError(f"{where}: {err}") from None
    kb.evaluate = cond.compile_all(kb.conditions)


def _check_references(kb: Knowledge, root: Traversable) -> None:
    known_drugs = kb.drug_ids()
    classes = {c for d in kb.drugs.values() for c in d.classes}
    tests_needed = set(column_tests(root).values())
    missing_tests = tests_needed - set(kb.tests)
    if missing_tests:
        raise KnowledgeError(f"facts.yaml: resolved_by names unknown tests: {sorted(missing_tests)}")
    for item in kb.reviewed_items():
        for source in item.sources:
            if source not in kb.sources:
                raise KnowledgeError(f"{type(item).__name__} {getattr(item, 'id', '?')}: unknown source {source!r}")
    for rule in kb.rules:
        where = kb.rule_files[rule.id]
        for ev in rule.evidence:
            if ev.source not in kb.sources:
                raise KnowledgeError(f"{where}: evidence cites unknown source {ev.source!r}")
        for drug in (d for component in rule.drugs for d in component):
            if drug not in known_drugs:
                raise KnowledgeError(f"{where}: drug {drug!r} is not in the catalogue")
        if rule.kind != "not_recommended" and rule.tier is None:
            raise KnowledgeError(f"{where}: {rule.kind} rules need a tier")
        if rule.kind == "option" and not rule.drugs:
            raise KnowledgeError(f"{where}: an option names its drugs")
    for adjunct in kb.adjuncts:
        _known_items(adjunct.add, known_drugs, f"adjunct {adjunct.id}")
        _known_items(adjunct.for_classes, classes, f"adjunct {adjunct.id} classes")
    for block in kb.safety:
        _known_items(block.block_classes, classes, f"safety {block.id} classes")
        _known_items([*block.block_drugs, *block.except_drugs], known_drugs, f"safety {block.id}")
    meds = set(kb.medications) | known_drugs
    for group in kb.medication_groups.values():
        _known_items(group.members, meds, f"medication group {group.id}")
    for inter in kb.interactions:
        for name in inter.drugs:
            if name.startswith("class:"):
                _known_items([name[6:]], classes, f"interaction {inter.id}")
            else:
                _known_items([name], known_drugs, f"interaction {inter.id}")
        for name in inter.with_:
            if name.startswith("group:"):
                _known_items([name[6:]], set(kb.medication_groups), f"interaction {inter.id}")
            else:
                _known_items([name], meds, f"interaction {inter.id}")


def _known_items(items: list[str], known: set[str], where: str) -> None:
    unknown = [i for i in items if i not in known]
    if unknown:
        raise KnowledgeError(f"{where}: unknown names {unknown}")


def _cache_dir() -> Path:
    configured = os.environ.get("MBCNAV_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mbcnav"


def _code_fingerprint() -> str:
    """Python version plus a hash of the modules whose objects are pickled.

    The data hash alone is not enough: the same data loaded by changed code (a new field on
    Knowledge, a changed compiler) must not come back from an old cache file.
    """
    digest = hashlib.sha256(sys.version.encode())
    package = resources.files("mbcnav")
    for name in ("knowledge/loader.py", "knowledge/schema.py", "condition.py", "facts.py"):
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:12]


def load_cached(root: Traversable | None = None) -> Knowledge:
    """Load through a compiled cache keyed by the data version (like .pyc files for rules).

    Parsing YAML and SQL dominates load time; the cache brings a warm load to tens of
    milliseconds. A stale or unreadable cache is ignored and rewritten; the cache is only ever
    a copy of what `load` produces for exactly the same data (same version hash).
    """
    root = root or data_root()
    version = _version(root)
    path = _cache_dir() / f"knowledge-{version}-{_code_fingerprint()}.pickle"
    try:
        with path.open("rb") as handle:
            cached = pickle.load(handle)  # our own cache file, written below
        if isinstance(cached, Knowledge) and cached.version == version:
            return cached
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        pass
    kb = load(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            pickle.dump(kb, handle, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    except OSError:
        pass  # a read-only home is fine: we just load from source next time too
    return kb


@cache
def knowledge() -> Knowledge:
    """The packaged knowledge base, loaded and compiled once per process."""
    kb = load_cached()
    # The knowledge base lives for the whole process: keep its ~10^5 objects out of the
    # garbage collector's scans, which otherwise show up as multi-millisecond tail latency.
    gc.freeze()
    return kb
