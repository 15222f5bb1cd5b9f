"""Every TensorRT attribute our source uses, found by reading the source (AST), and the API snapshots to check them.

No list of names is kept by hand. A small forward type inference follows TensorRT objects through
each function: ``trt`` (a parameter, ``import_tensorrt()``, ``self._trt``) is the module,
``trt.Builder(...)`` a ``Builder``, and a method call returns the type its real pybind11
signature in the snapshot names (``builder.create_builder_config()`` -> ``IBuilderConfig``);
attributes assigned on ``self`` carry their type to the other methods, and our own helpers
return what their ``return`` statements return (``create_runtime(...)`` -> ``Runtime``). Parameters that receive a
TensorRT object from a caller are typed by :data:`PARAMETER_TYPES` (the only hand-written part:
which of our parameter names hold TensorRT objects, not what we call on them).

Each use is recorded with how it is used (``call``, ``read``, ``store``) and whether the code
feature-detects it (a ``hasattr(obj, "name")`` on the same expression in the same function).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SNAPSHOT_DIR = Path(__file__).resolve().parent / "api"
MODULE = "<tensorrt>"
SOURCE_DIRS = ("exporters", "runtimes", "acmix_deploy", "scripts")
#: Our parameter names that hold TensorRT objects handed in by a caller (annotated ``Any``).
PARAMETER_TYPES = {
    "trt": MODULE,
    "builder": "Builder",
    "config": "IBuilderConfig",
    "network": "INetworkDefinition",
    "engine": "ICudaEngine",
    "runtime": "Runtime",
    "context": "IExecutionContext",
    "err": "ParserError",
}
CALLABLE_KINDS = {"method", "staticmethod", "function", "class", "enum"}
READABLE_KINDS = {"property", "member", "value", "class", "enum"}


@dataclass(frozen=True)
class Use:
    """One use of a TensorRT attribute: ``owner.name``, how it is used and where."""

    owner: str  # an API path ("IBuilderConfig", "ILogger.Severity") or MODULE
    name: str
    how: str  # "call" | "read" | "store"
    where: str  # "path/to/module.py:line"
    detected: bool = False  # guarded by hasattr(obj, name)

    @property
    def path(self) -> str:
        return self.name if self.owner == MODULE else f"{self.owner}.{self.name}"


@dataclass(frozen=True)
class Override:
    """A method our subclass of a TensorRT interface defines (TensorRT calls it back)."""

    base: str
    name: str
    where: str


@cache
def snapshots() -> dict[str, dict[str, dict]]:
    """``{release: {api path: entry}}`` from the committed snapshots."""
    found = {}
    for path in sorted(SNAPSHOT_DIR.glob("tensorrt-*.json")):
        data = json.loads(path.read_text())
        found[data["tensorrt_version"]] = data["api"]
    return found


def enum_values(release: str, enum: str) -> dict[str, int]:
    """``trt.<enum>.__members__`` of a snapshotted release, as ``{name: value}``."""
    return dict(snapshots()[release][enum]["values"])


def releases(major: int | None = None) -> list[str]:
    """The snapshotted releases (of one major), oldest first."""
    found = sorted(snapshots(), key=lambda v: tuple(int(p) for p in v.split(".")))
    return [v for v in found if major is None or v.split(".")[0] == str(major)]


def tensorrt_sources() -> list[Path]:
    """Our modules that touch TensorRT: those naming ``trt``/``tensorrt`` or calling ``import_tensorrt``."""
    found = []
    for top in SOURCE_DIRS:
        for path in sorted((REPO / top).rglob("*.py")):
            if path.is_symlink() or "__pycache__" in path.parts:
                continue
            text = path.read_text()
            if re.search(r"\btrt\b|import tensorrt\b|import_tensorrt\(", text):
                found.append(path)
    return found


class _Collector(ast.NodeVisitor):
    def __init__(self, api: dict[str, dict], rel: str, returns: dict[str, str]) -> None:
        self.api, self.rel = api, rel
        self.returns = returns  # our functions that return a TensorRT object: name -> its type
        self.current: list[str] = []
        self.uses: list[Use] = []
        self.overrides: list[Override] = []
        self.self_types: dict[str, str] = {}

    # -- typing ---------------------------------------------------------------------------------
    def type_of(self, node: ast.AST, env: dict[str, str]) -> str | None:
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return self.self_types.get(node.attr)
            owner = self.type_of(node.value, env)
            return self._member_type(owner, node.attr) if owner else None
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in self.returns:
                return self.returns[node.func.id]
            if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2:
                owner = self.type_of(node.args[0], env)
                name = node.args[1]
                if owner and isinstance(name, ast.Constant) and isinstance(name.value, str):
                    return self._member_type(owner, name.value)
                return None
            callee = self.type_of(node.func, env)
            if callee and self.api.get(callee, {}).get("kind") in ("class", "enum"):
                return callee  # an instance of the class
            if isinstance(node.func, ast.Attribute):
                owner = self.type_of(node.func.value, env)
                entry = self.api.get(f"{owner}.{node.func.attr}" if owner and owner != MODULE else node.func.attr)
                for signature in (entry or {}).get("signatures", []) if owner else []:
                    match = re.search(r"-> ([\w.]+)$", signature)  # the first overload that names a type
                    if match and self.api.get(match.group(1), {}).get("kind") in ("class", "enum"):
                        return match.group(1)
        return None

    def _member_type(self, owner: str, attr: str) -> str | None:
        path = attr if owner == MODULE else f"{owner}.{attr}"
        entry = self.api.get(path)
        if entry is None:
            return None
        if entry["kind"] in ("class", "enum"):
            return path
        if entry["kind"] == "property" and self.api.get(entry.get("type", ""), {}).get("kind") in ("class", "enum"):
            return entry["type"]
        return None

    # -- walking ----------------------------------------------------------------------------------
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = [self.type_of(b, {"trt": MODULE}) for b in node.bases]
        base = next((b for b in bases if b), None)
        if base is not None:  # our implementation of a TensorRT interface: its callbacks
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    self.overrides.append(Override(base, item.name, f"{self.rel}:{item.lineno}"))
            saved, self.self_types = self.self_types, {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    self.function(item, outer={}, typed_self=False)
            self.self_types = saved
            return
        self.self_types = {}
        methods = [item for item in node.body if isinstance(item, ast.FunctionDef)]
        for _ in range(2):  # attributes set in one method are used in others: two passes settle them
            for item in methods:
                self.function(item, outer={}, typed_self=True, record=False)
        for item in methods:
            self.function(item, outer={}, typed_self=True)
        self.self_types = {}

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.function(node, outer={}, typed_self=False)

    def function(self, node: ast.FunctionDef, *, outer: dict[str, str], typed_self: bool, record: bool = True) -> None:
        env = dict(outer)
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
            untyped = arg.annotation is None or ast.unparse(arg.annotation) in ("Any", "typing.Any")
            if arg.arg in PARAMETER_TYPES and untyped:  # our TensorRT parameters are annotated Any
                env[arg.arg] = PARAMETER_TYPES[arg.arg]
        detected = set()  # (receiver expression, name) of every hasattr() in the function
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "hasattr":
                if len(sub.args) == 2 and isinstance(sub.args[1], ast.Constant):
                    detected.add((ast.unparse(sub.args[0]), sub.args[1].value))
        self.current.append(node.name)
        for stmt in node.body:
            self.statement(stmt, env, detected, typed_self, record)
        self.current.pop()

    def statement(self, stmt: ast.stmt, env: dict, detected: set, typed_self: bool, record: bool) -> None:
        if isinstance(stmt, ast.ClassDef):
            if record:
                self.record_uses(stmt, env, detected)  # the TensorRT base classes
            self.visit_ClassDef(stmt)
            return
        if isinstance(stmt, ast.FunctionDef):
            self.function(stmt, outer=env, typed_self=False, record=record)
            return
        if record:
            self.record_uses(stmt, env, detected)
        if isinstance(stmt, ast.Return) and stmt.value is not None and self.current:
            kind = self.type_of(stmt.value, env)
            if kind:
                self.returns[self.current[-1]] = kind
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                self.bind(target, stmt.value, env, typed_self)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self.bind(stmt.target, stmt.value, env, typed_self)
        if isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Tuple | ast.Name):
            for name in ast.walk(stmt.target):  # loop variables named like a TensorRT parameter
                if isinstance(name, ast.Name) and name.id in PARAMETER_TYPES:
                    env[name.id] = PARAMETER_TYPES[name.id]
        for field in ("body", "orelse", "finalbody", "handlers"):
            for child in getattr(stmt, field, []) or []:
                if isinstance(child, ast.ExceptHandler):
                    for inner in child.body:
                        self.statement(inner, env, detected, typed_self, record)
                elif isinstance(child, ast.stmt):
                    self.statement(child, env, detected, typed_self, record)
        if isinstance(stmt, ast.With):
            for item in stmt.items:
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, item.context_expr, env, typed_self)

    def bind(self, target: ast.AST, value: ast.AST, env: dict, typed_self: bool) -> None:
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts, strict=True):
                self.bind(t, v, env, typed_self)
            return
        kind = self.type_of(value, env)
        if isinstance(target, ast.Name):
            if kind:
                env[target.id] = kind
            else:
                env.pop(target.id, None)
        elif typed_self and isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            if target.value.id == "self" and kind:
                self.self_types[target.attr] = kind

    def record_uses(self, stmt: ast.stmt, env: dict, detected: set) -> None:
        stores = set()
        if isinstance(stmt, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            stores = {id(t) for t in targets if isinstance(t, ast.Attribute)}
        called = set()
        nodes = [stmt] if not isinstance(stmt, ast.If | ast.For | ast.While | ast.With | ast.Try) else []
        if isinstance(stmt, ast.ClassDef):
            nodes = list(stmt.bases)
        elif isinstance(stmt, ast.If | ast.While):
            nodes = [stmt.test]
        elif isinstance(stmt, ast.For):
            nodes = [stmt.iter]
        elif isinstance(stmt, ast.With):
            nodes = [item.context_expr for item in stmt.items]
        for root in nodes:
            for sub in ast.walk(root):
                if isinstance(sub, ast.Call):
                    called.add(id(sub.func))
                    if isinstance(sub.func, ast.Name) and sub.func.id == "getattr" and len(sub.args) >= 2:
                        owner, name = self.type_of(sub.args[0], env), sub.args[1]
                        if owner and isinstance(name, ast.Constant) and isinstance(name.value, str):
                            self.add(owner, name.value, "read", sub, (ast.unparse(sub.args[0]), name.value) in detected)
            for sub in ast.walk(root):
                if isinstance(sub, ast.Attribute):
                    if isinstance(sub.value, ast.Name) and sub.value.id == "self":
                        continue
                    owner = self.type_of(sub.value, env)
                    if owner:
                        how = "store" if id(sub) in stores else "call" if id(sub) in called else "read"
                        guarded = (ast.unparse(sub.value), sub.attr) in detected
                        self.add(owner, sub.attr, how, sub, guarded)

    def add(self, owner: str, name: str, how: str, node: ast.AST, detected: bool) -> None:
        self.uses.append(Use(owner, name, how, f"{self.rel}:{node.lineno}", detected))


def collect(api: dict[str, dict], sources: list[Path] | None = None) -> tuple[list[Use], list[Override]]:
    """The TensorRT uses and callback overrides in ``sources`` (default: :func:`tensorrt_sources`), typed by ``api``."""
    paths = sources if sources is not None else tensorrt_sources()
    trees = [(str(p.relative_to(REPO)) if p.is_relative_to(REPO) else p.name, ast.parse(p.read_text())) for p in paths]
    returns = {"import_tensorrt": MODULE}
    for _ in range(2):  # first what our helpers return (create_runtime -> Runtime ...), then the uses
        uses: list[Use] = []
        overrides: list[Override] = []
        for rel, tree in trees:
            collector = _Collector(api, rel, returns)
            collector.visit(tree)
            uses += collector.uses
            overrides += collector.overrides
    return uses, overrides


def problems(api: dict[str, dict], uses: list[Use]) -> list[str]:
    """What ``api`` lacks or has with another kind, for every use that is not feature-detected."""
    found = []
    for use in uses:
        entry = api.get(use.path)
        if entry is None:
            if not use.detected:
                found.append(f"{use.where}: {use.path} does not exist")
            continue
        kind = entry["kind"]
        if use.how == "call" and kind not in CALLABLE_KINDS:
            found.append(f"{use.where}: {use.path} is called but is a {kind}")
        elif use.how == "read" and kind not in READABLE_KINDS:
            found.append(f"{use.where}: {use.path} is read as a value but is a {kind} (call it?)")
        elif use.how == "store" and not (kind == "property" and entry.get("settable")):
            found.append(f"{use.where}: {use.path} is assigned but is a {kind} without a setter")
    return found
