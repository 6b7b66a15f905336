"""Mutation testing of the security-critical modules (`make mutation`, docs/security.md).

For each module named in tools/mutation.toml this makes small changes ("mutants") to its
syntax tree, one at a time, and runs the tests that cover the changed line against each. A
mutant that makes a test fail is killed; one that passes every test survived: some
behaviour of the module is pinned by no test. The score is killed / (killed + survived).

Mutations (each applied alone):

* comparisons: == and !=, < and <=, > and >=, in and not in, is and is not swapped;
* arithmetic and bitwise operators (+ and -, * and /, // to /, % to //, ** to *, << and >>,
  & and |, ^ to &), also in augmented assignments;
* `and` and `or` swapped, `not` and unary minus removed;
* constants, module-level ones included: a number n becomes n + 1, True and False swap,
  a non-empty str or bytes gets "XX" around it, an empty one becomes "XX";
* `return value` becomes `return None`;
* a call standing alone as a statement is removed.

Left out as message text (changing it changes what a person reads, not what the code does):
docstrings, the arguments of `_`/`_l`/`gettext`/`ngettext`, of exceptions being raised and
of logging calls, `assert` messages, and annotations.

How it runs: one pytest session imports the project and the test modules and collects the
tests once; its run loop then forks children. The first runs every test of the module's
test files against the plain module, recording which test runs which line of the module
and how long each takes (all must pass). Then each mutant gets a child that compiles the
mutated module and puts it in place of the imported one: functions get the mutated code
object, changed module-level and class-level values are changed in place where they can
be (instances of the module's classes, lists, dicts, sets) and rebound otherwise, also
where another module imported them by name. The child runs, stopping at the first failure,
only the tests that ran the mutated line (every test of the module's files for a mutation
outside any function), those that killed most mutants so far first, under a timeout (a
mutant that hangs counts as killed). A mutant on a line no test runs survives without
running. Limit: an immutable value (a number, bytes, a tuple) that a test module copied
into a parametrize list at import keeps its plain value there.

Known equivalent mutants (no behaviour changes, or none that can matter) are listed with a
reason in tools/mutation_known.toml; they are reported but left out of the score.

    python tools/mutation.py                 # every module of tools/mutation.toml
    python tools/mutation.py whistle/codes.py --jobs 2 --list-survivors
"""

from __future__ import annotations

import argparse
import ast
import builtins
import dataclasses
import importlib
import io
import json
import os
import signal
import sys
import tempfile
import threading
import time
import tomllib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tools" / "mutation.toml"
KNOWN = ROOT / "tools" / "mutation_known.toml"

MESSAGE_FUNCS = {"_", "_l", "gettext", "ngettext", "lazy_gettext", "pgettext"}
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}

COMPARE_SWAP = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
BINOP_SWAP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitAnd,
}
OP_TEXT = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+",
    ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
    ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
    ast.And: "and", ast.Or: "or",
}


# --------------------------------------------------------------------------- mutants


@dataclasses.dataclass
class Mutant:
    index: int
    line: int
    scope: str  # qualified name of the enclosing function, or "<module>" / "Class.<body>"
    in_function: bool
    what: str  # e.g. "< -> <="
    key: str = ""  # stable name: "scope: what #n" (n counts equal ones in the same scope)


class _Walker(ast.NodeTransformer):
    """Walks a module in a fixed order, numbering every possible mutation. With `apply` set,
    carries out that one and leaves the rest."""

    def __init__(self, apply: int | None = None) -> None:
        self.apply = apply
        self.found: list[Mutant] = []
        self.scope: list[str] = []
        self.function_depth = 0
        self.message_depth = 0
        self.done = False

    # -- bookkeeping
    def _offer(self, node: ast.AST, what: str) -> bool:
        """Record a mutation at `node`; True if it is the one to carry out."""
        index = len(self.found)
        scope = ".".join(self.scope) if self.scope else "<module>"
        self.found.append(Mutant(index, getattr(node, "lineno", 0), scope, self.function_depth > 0, what))
        if index == self.apply:
            self.done = True
            return True
        return False

    def _in_message(self, fn):
        self.message_depth += 1
        try:
            return fn()
        finally:
            self.message_depth -= 1

    # -- scopes
    def _visit_function(self, node):
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.args = self.visit(node.args)
        self.scope.append(node.name)
        self.function_depth += 1
        body = node.body
        if body and _is_docstring(body[0]):
            body = body[1:]
        node.body[len(node.body) - len(body) :] = [self._visit_stmt(s) for s in body]
        self.function_depth -= 1
        self.scope.pop()
        return node

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_arguments(self, node: ast.arguments):
        node.defaults = [self.visit(d) for d in node.defaults]
        node.kw_defaults = [None if d is None else self.visit(d) for d in node.kw_defaults]
        return node  # annotations are left alone

    def visit_Lambda(self, node: ast.Lambda):
        node.args = self.visit(node.args)
        node.body = self.visit(node.body)
        return node

    def visit_ClassDef(self, node: ast.ClassDef):
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.bases = [self.visit(b) for b in node.bases]
        self.scope.append(node.name)
        body = node.body
        if body and _is_docstring(body[0]):
            body = body[1:]
        node.body[len(node.body) - len(body) :] = [self._visit_stmt(s) for s in body]
        self.scope.pop()
        return node

    def visit_Module(self, node: ast.Module):
        body = node.body
        if body and _is_docstring(body[0]):
            body = body[1:]
        node.body[len(node.body) - len(body) :] = [self._visit_stmt(s) for s in body]
        return node

    def _visit_stmt(self, stmt: ast.stmt) -> ast.stmt:
        # A call standing alone: remove it (unless it is a log line).
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and not _is_log_call(stmt.value):
            if self._offer(stmt, f"remove call {_call_name(stmt.value)}()"):
                return ast.copy_location(ast.Pass(), stmt)
        if isinstance(stmt, ast.Expr) and _is_docstring(stmt):
            return stmt
        return self.visit(stmt)

    def generic_visit(self, node):
        # Statements inside compound statements go through _visit_stmt too.
        for field, old in ast.iter_fields(node):
            if isinstance(old, list):
                new = []
                for item in old:
                    if isinstance(item, ast.stmt):
                        item = self._visit_stmt(item)
                    elif isinstance(item, ast.AST):
                        item = self.visit(item)
                    if item is not None:
                        new.append(item)
                old[:] = new
            elif isinstance(old, ast.AST):
                setattr(node, field, self.visit(old))
        return node

    # -- message text is left alone
    def visit_Call(self, node: ast.Call):
        name = _call_name(node)
        if name in MESSAGE_FUNCS or _is_log_call(node) or name in {"warn", "warnings.warn"}:
            node.func = self.visit(node.func)
            return node  # message text: not mutated
        return self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise):
        if isinstance(node.exc, ast.Call):
            node.exc.func = self.visit(node.exc.func)
            # the exception's message arguments are text; keyword arguments are not
            node.exc.keywords = [self.visit(kw) for kw in node.exc.keywords]
        elif node.exc is not None:
            node.exc = self.visit(node.exc)
        if node.cause is not None:
            node.cause = self.visit(node.cause)
        return node

    def visit_Assert(self, node: ast.Assert):
        node.test = self.visit(node.test)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign):
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr):
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                value.value = self.visit(value.value)
        return node  # the literal parts of an f-string are text

    # -- the mutations
    def visit_Compare(self, node: ast.Compare):
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            swap = COMPARE_SWAP.get(type(op))
            if swap and self._offer(node, f"{OP_TEXT[type(op)]} -> {OP_TEXT[swap]}"):
                node.ops[i] = swap()
        return node

    def visit_BinOp(self, node: ast.BinOp):
        self.generic_visit(node)
        swap = BINOP_SWAP.get(type(node.op))
        if swap and self._offer(node, f"{OP_TEXT[type(node.op)]} -> {OP_TEXT[swap]}"):
            node.op = swap()
        return node

    def visit_AugAssign(self, node: ast.AugAssign):
        self.generic_visit(node)
        swap = BINOP_SWAP.get(type(node.op))
        if swap and self._offer(node, f"{OP_TEXT[type(node.op)]}= -> {OP_TEXT[swap]}="):
            node.op = swap()
        return node

    def visit_BoolOp(self, node: ast.BoolOp):
        self.generic_visit(node)
        swap = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._offer(node, f"{OP_TEXT[type(node.op)]} -> {OP_TEXT[swap]}"):
            node.op = swap()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._offer(node, "remove not"):
            return node.operand
        if isinstance(node.op, ast.USub) and self._offer(node, "remove unary -"):
            return node.operand
        return node

    def visit_Constant(self, node: ast.Constant):
        value = node.value
        if isinstance(value, bool):
            if self._offer(node, f"{value} -> {not value}"):
                return ast.copy_location(ast.Constant(not value), node)
        elif isinstance(value, (int, float)):
            if self._offer(node, f"{value} -> {value + 1}"):
                return ast.copy_location(ast.Constant(value + 1), node)
        elif isinstance(value, (str, bytes)):
            marker = "XX" if isinstance(value, str) else b"XX"
            new = marker + value + marker if value else marker
            if self._offer(node, f"{_short(value)} -> {_short(new)}"):
                return ast.copy_location(ast.Constant(new), node)
        return node

    def visit_Return(self, node: ast.Return):
        self.generic_visit(node)
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            if self._offer(node, "return None"):
                node.value = None
        return node


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _call_name(call: ast.Call) -> str:
    try:
        return ast.unparse(call.func)
    except Exception:  # pragma: no cover - unparse handles every expression
        return "?"


def _is_log_call(call: ast.Call) -> bool:
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in LOG_METHODS:
        return False
    owner = ast.unparse(func.value).lower()
    return "log" in owner


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def enumerate_mutants(source: str) -> list[Mutant]:
    walker = _Walker()
    walker.visit(ast.parse(source))
    counts: dict[str, int] = {}
    for mutant in walker.found:
        base = f"{mutant.scope}: {mutant.what}"
        n = counts.get(base, 0)
        counts[base] = n + 1
        mutant.key = f"{base} #{n}"
    return walker.found


def mutated_tree(source: str, index: int) -> ast.Module:
    walker = _Walker(apply=index)
    tree = walker.visit(ast.parse(source))
    if not walker.done:
        raise RuntimeError(f"mutant {index} not found")
    tree = ast.fix_missing_locations(tree)
    if ast.dump(tree) == ast.dump(ast.parse(source)):
        raise RuntimeError(f"mutant {index} changes nothing: the walker lost it")
    return tree


# --------------------------------------------------------------------------- putting a mutant in place


_SKIP_CLASS_ATTRS = {
    "__dict__", "__weakref__", "__doc__", "__module__", "__qualname__", "__dataclass_fields__",
    "__dataclass_params__", "__match_args__", "__slots__", "__annotations__", "__parameters__",
    "__orig_bases__",
}


class _Patcher:
    def __init__(self, module: types.ModuleType, fresh: dict) -> None:
        self.module = module
        self.fresh = fresh
        self.old_classes: dict[type, type] = {}  # new class -> old class of the same name

    def map_classes(self, old_owner, new_ns: dict) -> None:
        for name, new in new_ns.items():
            old = getattr(old_owner, name, None) if not isinstance(old_owner, dict) else old_owner.get(name)
            if isinstance(new, type) and isinstance(old, type) and new is not old and new.__qualname__ == old.__qualname__:
                self.old_classes[new] = old
                self.map_classes(old, dict(vars(new)))

    def same(self, old, new, depth: int = 0) -> bool:
        if old is new:
            return True
        if depth > 20:
            return True
        if isinstance(new, type) and self.old_classes.get(new) is old:
            return True
        if type(old) is not type(new) and self.old_classes.get(type(new)) is not type(old):
            return False
        if isinstance(old, (int, float, str, bytes, bool, complex, type(None), frozenset, range)):
            return old == new
        if isinstance(old, (tuple, list)):
            return len(old) == len(new) and all(self.same(a, b, depth + 1) for a, b in zip(old, new))
        if isinstance(old, dict):
            return list(old) == list(new) and all(self.same(old[k], new[k], depth + 1) for k in old)
        if isinstance(old, set):
            return old == new
        if isinstance(old, types.FunctionType):
            return (
                old.__code__ == new.__code__
                and self.same(old.__defaults__, new.__defaults__, depth + 1)
                and self.same(old.__kwdefaults__, new.__kwdefaults__, depth + 1)
                and self.same(_cells(old), _cells(new), depth + 1)
            )
        if type(old).__module__ == self.module.__name__ and hasattr(old, "__dict__"):
            return self.same(vars(old), vars(new), depth + 1)
        if type(old).__name__ == "Pattern":
            return old.pattern == new.pattern and old.flags == new.flags
        # Anything else (locks, suites, loggers...) is taken as unchanged: rebinding it could
        # only lose state that other modules put into it.
        return True

    def adopt(self, value):
        """`value` with its class swapped for the already-imported class of the same name,
        so that isinstance checks elsewhere still hold."""
        old_class = self.old_classes.get(type(value))
        if old_class is not None:
            object.__setattr__(value, "__class__", old_class)
        return value

    def changed_in_place(self, old, new) -> bool:
        """Give `old` the mutated value where it can be changed in place (an instance of the
        module's own classes, a list, dict or set), so that what tests took from it at
        import (a parametrize list, a default argument) sees the mutant too."""
        if type(old).__module__ == self.module.__name__ and hasattr(old, "__dict__") and hasattr(new, "__dict__"):
            for name, value in vars(new).items():
                object.__setattr__(old, name, self.adopt(value))
            return True
        if type(old) is type(new) and isinstance(old, list):
            old[:] = new
            return True
        if type(old) is type(new) and isinstance(old, (dict, set)):
            old.clear()
            old.update(new)
            return True
        return False

    def patch_function(self, owner, name: str, old, new) -> None:
        while hasattr(old, "__wrapped__") and hasattr(new, "__wrapped__"):
            old, new = old.__wrapped__, new.__wrapped__
        if not isinstance(old, types.FunctionType) or not isinstance(new, types.FunctionType):
            return
        if self.same(old, new):
            return
        if not old.__code__.co_freevars and not new.__code__.co_freevars:
            old.__code__ = new.__code__
            old.__defaults__ = new.__defaults__
            old.__kwdefaults__ = new.__kwdefaults__
            return
        # A closure (e.g. a method using super(), or dataclass's generated __init__): a new
        # function with the module's globals and the already-imported class in its cells.
        cells = []
        for var, cell in zip(new.__code__.co_freevars, new.__closure__ or ()):
            content = cell.cell_contents
            cells.append(types.CellType(self.old_classes.get(content, content) if isinstance(content, type) else content))
        glob = self.module.__dict__ if new.__globals__ is self.fresh else new.__globals__
        replacement = types.FunctionType(new.__code__, glob, new.__name__, new.__defaults__, tuple(cells))
        replacement.__kwdefaults__ = new.__kwdefaults__
        replacement.__qualname__ = new.__qualname__
        replacement.__dict__.update(old.__dict__)
        if owner is not None:
            current = vars(owner).get(name) if isinstance(owner, type) else None
            if isinstance(current, (staticmethod, classmethod)):
                replacement = type(current)(replacement)
            setattr(owner, name, replacement)

    def patch_member(self, owner: type, name: str, old, new) -> None:
        if isinstance(new, (staticmethod, classmethod)) and isinstance(old, type(new)):
            self.patch_function(None, name, old.__func__, new.__func__)
            if not self.same(old.__func__, new.__func__):
                setattr(owner, name, new)
        elif isinstance(new, property) and isinstance(old, property):
            for part in ("fget", "fset", "fdel"):
                if getattr(new, part) is not None and getattr(old, part) is not None:
                    self.patch_function(None, name, getattr(old, part), getattr(new, part))
        elif hasattr(new, "func") and hasattr(old, "func") and isinstance(new.func, types.FunctionType):
            self.patch_function(None, name, old.func, new.func)  # functools.cached_property
        elif isinstance(new, types.FunctionType) or hasattr(new, "__wrapped__"):
            self.patch_function(owner, name, old, new)
        elif isinstance(new, type) and self.old_classes.get(new) is old:
            self.patch_class(old, new)
        elif not self.same(old, new) and not self.changed_in_place(old, new):
            setattr(owner, name, self.adopt(new))

    def patch_class(self, old: type, new: type) -> None:
        for name, value in vars(new).items():
            if name in _SKIP_CLASS_ATTRS:
                continue
            if name not in vars(old):  # e.g. a __repr__ that dataclass(repr=True) now makes
                setattr(old, name, self.adopt(value))
                continue
            self.patch_member(old, name, vars(old)[name], value)
        for name in [n for n in vars(old) if n not in vars(new) and n not in _SKIP_CLASS_ATTRS]:
            delattr(old, name)  # e.g. one that dataclass no longer makes

    def run(self) -> None:
        module = self.module
        self.map_classes(module.__dict__, self.fresh)
        for name, new in self.fresh.items():
            if (name.startswith("__") and name != "__all__") or name not in module.__dict__:
                continue
            old = module.__dict__[name]
            if old is new or isinstance(new, types.ModuleType):
                continue
            if isinstance(new, type):
                if self.old_classes.get(new) is old:
                    self.patch_class(old, new)
                continue  # a class imported from elsewhere
            if isinstance(new, types.FunctionType) or hasattr(new, "__wrapped__"):
                if getattr(new, "__module__", None) == module.__name__:
                    self.patch_function(module, name, old, new)
                continue
            if not self.same(old, new) and not self.changed_in_place(old, new):
                new = self.adopt(new)
                module.__dict__[name] = new
                # also where another module imported it by name (`from .x import NAME`)
                for other in list(sys.modules.values()):
                    other_dict = getattr(other, "__dict__", None)
                    if other is module or not isinstance(other_dict, dict):
                        continue
                    if other_dict.get(name) is old and _ours(other):
                        other_dict[name] = new


def _cells(fn: types.FunctionType) -> tuple:
    out = []
    for cell in fn.__closure__ or ():
        try:
            out.append(cell.cell_contents)
        except ValueError:
            out.append(None)
    return tuple(out)


def _ours(module: types.ModuleType) -> bool:
    name = getattr(module, "__name__", "") or ""
    return name.split(".")[0] in {"whistle", "tests", "bench", "tools"}


def install_mutant(module: types.ModuleType, tree: ast.Module) -> None:
    code = compile(tree, module.__file__, "exec")
    fresh = {
        "__name__": module.__name__,
        "__file__": module.__file__,
        "__package__": module.__package__,
        "__spec__": module.__spec__,
        "__builtins__": builtins,
    }
    exec(code, fresh)
    _Patcher(module, fresh).run()


# --------------------------------------------------------------------------- running tests in children


def _run_items(
    items: list, trace=None, durations: dict | None = None, lines: dict | None = None, failed: list | None = None
) -> tuple[int, str | None]:
    """Run pytest items in this process, in order, stopping at the first failure (unless
    `failed` collects them): (0 all passed | 1 one failed, the failed test's id)."""
    from _pytest.runner import runtestprotocol

    for n, item in enumerate(items):
        nextitem = items[n + 1] if n + 1 < len(items) else None
        started = time.perf_counter()
        if trace is not None:
            trace.current = lines.setdefault(item.nodeid, set())
            sys.settrace(trace)
            threading.settrace(trace)
        try:
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
        finally:
            if trace is not None:
                sys.settrace(None)
                threading.settrace(None)
        if durations is not None:
            durations[item.nodeid] = time.perf_counter() - started
        if any(r.failed for r in reports):
            if failed is None:
                return 1, item.nodeid
            failed.append(item.nodeid)
    return 0, None


class _LineTrace:
    """A trace function recording the lines of one file the current test runs."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.current: set[int] = set()

    def __call__(self, frame, event, arg):
        if frame.f_code.co_filename != self.filename:
            return None
        lines = self.current
        lines.add(frame.f_lineno)

        def local(frame, event, arg):
            if event == "line":
                lines.add(frame.f_lineno)
            return local

        return local


def _quiet() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def _fork(fn) -> int:
    """Start fn() in a forked child, in its own process group; its exit code is fn's result
    (4 if it raised)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 4
        try:
            os.setpgid(0, 0)
            _quiet()
            code = fn()
        except BaseException:  # noqa: BLE001 - any error in the child kills the mutant
            code = 4
        finally:
            os._exit(code if isinstance(code, int) else 4)
    return pid


def _end_group(pid: int) -> None:
    """Whatever the tests in a child left running (servers, subprocesses) goes with it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ModuleRun:
    def __init__(self, path: str, settings: dict, items: list, known: dict[str, str], args) -> None:
        self.path = path
        self.module_name = path[:-3].replace("/", ".")
        self.settings = settings
        wanted = tuple(settings["tests"])
        self.items = [item for item in items if item.nodeid.split("::")[0] in wanted]
        self.known = known
        self.jobs = args.jobs
        self.verbose = args.verbose
        self.only = {int(x) for x in args.only.split(",")} if args.only else None
        self.source = (ROOT / path).read_text()

    def baseline(self) -> dict:
        out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
        out.close()
        trace = _LineTrace(str(ROOT / self.path))

        def child() -> int:
            durations: dict[str, float] = {}
            lines: dict[str, set[int]] = {}
            failed: list[str] = []
            _run_items(self.items, trace, durations, lines, failed)
            Path(out.name).write_text(
                json.dumps({"lines": {k: sorted(v) for k, v in lines.items()}, "durations": durations, "failed": failed})
            )
            return 0

        pid = _fork(child)
        _, status = os.waitpid(pid, 0)
        _end_group(pid)
        text = Path(out.name).read_text()
        os.unlink(out.name)
        if not text:
            raise SystemExit(f"{self.path}: the plain run did not finish (status {status})")
        return json.loads(text)

    def run(self) -> dict:
        started = time.perf_counter()
        base = self.baseline()
        if base["failed"]:
            raise SystemExit(f"{self.path}: tests fail without any mutant: {base['failed'][:5]}")
        durations = base["durations"]
        by_id = {item.nodeid: item for item in self.items}
        by_line: dict[int, list[str]] = {}
        for test, lines in base["lines"].items():
            for line in lines:
                by_line.setdefault(line, []).append(test)
        all_tests = sorted(durations, key=durations.get)
        module = importlib.import_module(self.module_name)
        mutants = enumerate_mutants(self.source)
        if self.only is not None:
            mutants = [m for m in mutants if m.index in self.only]
        statement_lines = _statement_lines(self.source)
        results: dict[int, tuple[str, float, str | None]] = {}
        pending: dict[int, tuple[Mutant, float, float]] = {}
        queue = list(mutants)
        killers: dict[str, int] = {}
        killer_dir = tempfile.mkdtemp(prefix="mutation-")

        def launch(mutant: Mutant) -> None:
            if mutant.in_function:
                lines = statement_lines.get(mutant.line, {mutant.line})
                tests = sorted({t for line in lines for t in by_line.get(line, [])}, key=durations.get)
            else:
                tests = list(all_tests)
            if not tests:
                results[mutant.index] = ("no test", 0.0, None)
                return
            # The tests that killed the most mutants so far go first: a child stops at the first failure.
            tests.sort(key=lambda t: -killers.get(t, 0))
            timeout = 10 + 3 * sum(durations[t] for t in tests)
            tree = mutated_tree(self.source, mutant.index)

            def child() -> int:
                install_mutant(module, tree)
                code, nodeid = _run_items([by_id[t] for t in tests])
                if nodeid:
                    Path(killer_dir, str(os.getpid())).write_text(nodeid)
                return code

            pid = _fork(child)
            now = time.perf_counter()
            pending[pid] = (mutant, now + timeout, now)

        while queue or pending:
            while queue and len(pending) < self.jobs:
                launch(queue.pop(0))
            if not pending:
                continue
            time.sleep(0.01)
            for pid in list(pending):
                mutant, deadline, began = pending[pid]
                done, status = os.waitpid(pid, os.WNOHANG)
                if not done and time.perf_counter() < deadline:
                    continue
                if not done:
                    _end_group(pid)
                    os.waitpid(pid, 0)
                    outcome = "timeout"
                else:
                    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
                    outcome = {0: "survived", 1: "killed"}.get(code, "error")
                _end_group(pid)
                del pending[pid]
                killer = None
                marker = Path(killer_dir, str(pid))
                if marker.exists():
                    killer = marker.read_text()
                    killers[killer] = killers.get(killer, 0) + 1
                    marker.unlink()
                results[mutant.index] = (outcome, time.perf_counter() - began, killer)
                if self.verbose:
                    print(f"  [{mutant.index}] {outcome} in {results[mutant.index][1]:.1f} s: {mutant.key}", flush=True)
        os.rmdir(killer_dir)

        report = {"module": self.path, "seconds": round(time.perf_counter() - started, 1), "mutants": []}
        used_known = set()
        for mutant in mutants:
            outcome, seconds, killer = results[mutant.index]
            status = outcome
            if outcome in ("timeout", "error"):
                status = "killed"  # a mutant that hangs or breaks the module is caught
            if status in ("survived", "no test") and mutant.key in self.known:
                status = "equivalent"
                used_known.add(mutant.key)
            report["mutants"].append(
                {**dataclasses.asdict(mutant), "status": status, "outcome": outcome, "seconds": round(seconds, 2), "killer": killer}
            )
        report["known_unused"] = sorted(set(self.known) - used_known) if self.only is None else []
        return report


def _statement_lines(source: str) -> dict[int, set[int]]:
    """For each line, the lines of the innermost simple statement (or the condition of an
    if/while, the head of a for) containing it: a test that ran any of them ran the
    mutated expression's statement (tracing reports a statement at one of its lines)."""
    out: dict[int, set[int]] = {}

    def add(first: int, last: int) -> None:
        span = set(range(first, last + 1))
        for line in span:
            out[line] = span  # walked outer first: inner statements win

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.If, ast.While)):
            add(node.test.lineno, node.test.end_lineno or node.test.lineno)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            add(node.lineno, node.iter.end_lineno or node.lineno)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            add(node.lineno, node.items[-1].context_expr.end_lineno or node.lineno)
        elif isinstance(node, ast.stmt) and not isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Try, ast.Match)
        ):
            add(node.lineno, node.end_lineno or node.lineno)
    return out


# --------------------------------------------------------------------------- main


def load_known() -> dict[str, dict[str, str]]:
    if not KNOWN.exists():
        return {}
    data = tomllib.loads(KNOWN.read_text())
    out: dict[str, dict[str, str]] = {}
    for entry in data.get("equivalent", []):
        if not entry.get("reason", "").strip():
            raise SystemExit(f"{KNOWN.name}: {entry.get('mutant')!r} has no reason")
        out.setdefault(entry["module"], {})[entry["mutant"]] = entry["reason"]
    return out


def summary(report: dict) -> dict:
    counts: dict[str, int] = {}
    for m in report["mutants"]:
        counts[m["status"]] = counts.get(m["status"], 0) + 1
    killed = counts.get("killed", 0)
    survived = counts.get("survived", 0) + counts.get("no test", 0)
    score = 100.0 * killed / (killed + survived) if killed + survived else 100.0
    return {"killed": killed, "survived": survived, "equivalent": counts.get("equivalent", 0), "score": score}


class _MutationLoop:
    """pytest plugin: takes over the run loop of a session that collected every test once."""

    def __init__(self, modules: list[str], config: dict, known: dict, args) -> None:
        self.modules = modules
        self.config = config
        self.known = known
        self.args = args
        self.failed = False
        self.reports: list[dict] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session) -> bool:
        args = self.args
        total_start = time.perf_counter()
        for path in self.modules:
            settings = self.config["modules"][path]
            run = ModuleRun(path, settings, session.items, self.known.get(path, {}), args)
            report = run.run()
            self.reports.append(report)
            s = summary(report)
            target = settings.get("target", 95)
            mark = "ok" if s["score"] >= target else "BELOW TARGET"
            print(
                f"{path}: {s['score']:.1f}% ({s['killed']} killed, {s['survived']} survived, "
                f"{s['equivalent']} known equivalent, {len(run.items)} tests; {report['seconds']} s) "
                f"{mark} (target {target}%)",
                flush=True,
            )
            self.failed |= s["score"] < target and not args.only
            for m in report["mutants"]:
                if m["status"] in ("survived", "no test") and (args.list_survivors or args.only):
                    print(f"  {path}:{m['line']}: [{m['index']}] {m['status']}: {m['key']}", flush=True)
            for key in report["known_unused"]:
                print(f"  note: known equivalent mutant not found, or now killed: {key!r}", flush=True)
        print(f"total {time.perf_counter() - total_start:.0f} s", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(self.reports, indent=1))
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths like whistle/codes.py (default: all of tools/mutation.toml)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants at once (default 1)")
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    parser.add_argument("--list-survivors", action="store_true", help="print every surviving mutant")
    parser.add_argument("--json", help="write the full results here")
    parser.add_argument("--only", help="comma-separated mutant numbers to run (with one module)")
    parser.add_argument("--verbose", action="store_true", help="print each mutant's outcome")
    args = parser.parse_args(argv)

    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    config = tomllib.loads(CONFIG.read_text())
    modules = args.modules or list(config["modules"])
    known = load_known()

    if args.list:
        for path in modules:
            for m in enumerate_mutants((ROOT / path).read_text()):
                print(f"{path}:{m.line}: [{m.index}] {m.key}")
        return 0

    # The server: one pytest session imports the project and the test modules and collects
    # the tests once; its run loop forks a child per mutant.
    marker = config.get("marker", "not postgres and not slow and not attack and not faults")
    test_files = sorted({t for path in modules for t in config["modules"][path]["tests"]})
    loop = _MutationLoop(modules, config, known, args)
    code = pytest.main(
        ["-q", "-p", "no:cacheprovider", "-o", "addopts=--strict-markers", "--tb=no", "-m", marker, *test_files],
        plugins=[loop],
    )
    if code not in (0, 5) or not loop.reports:
        return 2
    return 1 if loop.failed else 0


if __name__ == "__main__":
    sys.exit(main())
