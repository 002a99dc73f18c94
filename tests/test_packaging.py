"""What the package declares against what the build produced: the _core stub and the version.

Stub drift: pysim/_core.pyi (generated once with pybind11-stubgen, then kept by hand) must
describe the compiled module exactly. pybind11 writes each function's signature as the first
line of its docstring, which is Python syntax except for the reprs of some defaults; each one
is parsed with ``ast`` and compared with the stub's definition: parameter names, order and kind
(positional / keyword-only), which have defaults, annotations and return type (with the
``pysim._core.`` prefix dropped). Classes are compared member by member, properties by type,
and module constants by value. This is the check mypy's stubtest would make, without adding
mypy to the test extra.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

import pytest

import pysim
from pysim import _core

STUB = Path(__file__).resolve().parent.parent / "pysim" / "_core.pyi"
# In the stub, but compiled only into PYSIM_TESTING builds (every build from a checkout).
TESTING_ONLY = {"_pool_spin"}


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text())


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _public(names) -> set[str]:
    """Names compared between stub and module: dunders, pybind11's internals (_pybind11_*,
    an enum's __entries) left out."""
    return {n for n in names if not n.startswith("__") and not n.startswith("_pybind11")}


# How pybind11-stubgen spells some of the docstrings' types.
_STUBGEN_SPELLING = {"numpy.ndarray[typing.Any, numpy.dtype[typing.Any]]": "numpy.ndarray"}


def _norm(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    text = ast.unparse(node).replace("pysim._core.", "")
    for stub, doc in _STUBGEN_SPELLING.items():
        text = text.replace(stub, doc)
    return "typing.Any" if text == "object" else text


def _shape(fn: ast.FunctionDef, *, method: bool) -> tuple:
    """(name, kind, annotation, default) per parameter, and the return annotation."""
    a = fn.args
    positional = a.posonlyargs + a.args
    first_default = len(positional) - len(a.defaults)
    params = []
    for i, p in enumerate(positional):
        if method and i == 0:  # `self` (annotated with the class in the docstring only)
            params.append((p.arg, "positional", None, None))
            continue
        default = _norm(a.defaults[i - first_default]) if i >= first_default else None
        params.append((p.arg, "positional", _norm(p.annotation), default))
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        params.append((p.arg, "keyword", _norm(p.annotation), _norm(d)))
    return fn.name, tuple(params), _norm(fn.returns)


def _runtime_shapes(obj, name: str, *, method: bool) -> list[tuple]:
    """The signatures pybind11 wrote into obj's docstring (several when overloaded)."""
    doc = obj.__doc__ or ""
    if "\nOverloaded function.\n" in doc:
        lines = re.findall(rf"^\d+\. ({re.escape(name)}\(.*)$", doc, flags=re.M)
    else:
        lines = [doc.strip().splitlines()[0]]
    shapes = []
    for line in lines:
        # Defaults pybind11 cannot spell (an enum value, an object) appear as <...> reprs.
        # A property getter's has no name: "(self: Class) -> type".
        source = "def " + ("_" if line.startswith("(") else "") + re.sub(r"<[^<>]*>", "...", line)
        source += ": ..."
        fn = ast.parse(source).body[0]
        assert isinstance(fn, ast.FunctionDef), line
        shapes.append(_shape(fn, method=method))
    return shapes


def _stub_functions(body: list[ast.stmt]) -> dict[str, list[ast.FunctionDef]]:
    out: dict[str, list[ast.FunctionDef]] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef):
            out.setdefault(node.name, []).append(node)
    return out


def _decorators(fn: ast.FunctionDef) -> set[str]:
    return {ast.unparse(d) for d in fn.decorator_list}


def _stub_attributes(body: list[ast.stmt]) -> dict[str, ast.expr | None]:
    """Annotated / assigned names of a body: name -> value node (None if only annotated)."""
    out: dict[str, ast.expr | None] = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node.value
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node.value
    return out


def _runtime_names() -> set[str]:
    names = _public(dir(_core))
    return names | (TESTING_ONLY if not TESTING_ONLY & names else set())


def test_stub_names_match_the_module():
    tree = _stub()
    stub = set(_stub_functions(tree.body)) | {
        n.name for n in tree.body if isinstance(n, ast.ClassDef)
    }
    stub |= set(_stub_attributes(tree.body)) - {"__all__"}
    assert _public(stub) == _runtime_names()


def test_stub_all_lists_the_public_names():
    declared = next(v for k, v in _stub_attributes(_stub().body).items() if k == "__all__")
    names = set(ast.literal_eval(declared))
    assert names == {n for n in _runtime_names() if not n.startswith("_")}


def test_stub_function_signatures_match():
    checked = 0
    for name, defs in _stub_functions(_stub().body).items():
        if name in TESTING_ONLY and not hasattr(_core, name):
            continue
        want = [_shape(fn, method=False) for fn in defs]
        assert _runtime_shapes(getattr(_core, name), name, method=False) == want, name
        checked += 1
    assert checked >= 20


def _check_class(node: ast.ClassDef) -> int:
    cls = getattr(_core, node.name)
    functions = _stub_functions(node.body)
    attributes = _stub_attributes(node.body)
    members = {n for n in vars(cls) if n != "__init__"} | {"__init__"}
    stub_members = set(functions) | set(attributes)
    missing = _public(members) - _public(stub_members)
    extra = _public(stub_members) - _public(dir(cls))
    assert not missing and not extra, (node.name, missing, extra)
    checked = 0
    for name, defs in functions.items():
        if _is_dunder(name) and name not in vars(cls):
            continue  # pybind11's inherited object dunders, written out by stubgen
        member = vars(cls)[name]
        if "property" in _decorators(defs[0]):
            # The getter's docstring is "(self: Class) -> type"; compare the type.
            got = _runtime_shapes(member.fget, "", method=True)[0][2]
            assert got == _norm(defs[0].returns), (node.name, name)
        else:
            method = "staticmethod" not in _decorators(defs[0])
            want = [_shape(fn, method=method) for fn in defs]
            got = _runtime_shapes(getattr(cls, name), name, method=method)
            assert got == want, (node.name, name)
        checked += 1
    for name in attributes:
        member = vars(cls).get(name)
        if isinstance(member, property) and not _is_dunder(name):  # def_readwrite fields
            want = _norm(next(n.annotation for n in node.body if _target(n) == name))
            assert _runtime_shapes(member.fget, "", method=True)[0][2] == want, (node.name, name)
            checked += 1
    return checked


def _target(node: ast.stmt) -> str | None:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def test_stub_classes_match():
    classes = [n for n in _stub().body if isinstance(n, ast.ClassDef)]
    assert {c.name for c in classes} >= {"HnswIndex", "HnswState", "KDTree_f32", "Metric"}
    assert sum(_check_class(c) for c in classes) >= 50


def test_stub_constants_match():
    constants = {
        name: value
        for name, value in _stub_attributes(_stub().body).items()
        if name != "__all__" and value is not None
    }
    assert constants, "the stub declares no module constants"
    for name, value in constants.items():
        assert ast.literal_eval(value) == getattr(_core, name), name


@pytest.mark.testing_hooks
def test_checkout_builds_have_the_test_hooks():
    # pyproject.toml turns PYSIM_TESTING on for builds from a checkout (release wheels turn it
    # off and deselect this marker): the hooks must be there, never silently missing.
    assert TESTING_ONLY <= set(dir(_core))


def test_version_is_defined_once():
    # pysim/__init__.py holds the only definition; the installed metadata is read from it.
    assert pysim.__version__ == importlib.metadata.version("pysim")
    assert not hasattr(_core, "__version__")
    pyproject = (STUB.parent.parent / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert re.search(r"^version\s*=", pyproject, flags=re.M) is None
