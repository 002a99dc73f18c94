"""Write the API reference pages (docs/api/*.rst) from the installed package's public names.

Why generated: pysim grows by modules (recommend, distributed, ...) and by names inside them;
a hand-kept list drifts. Each public module's names come from its ``__all__``, plus any
public function or class the module defines itself, plus, for a package that imports lazily
through ``__getattr__``, the names its ``__dir__`` offers. A name
is documented under the public module that defines it (``pysim.NCA`` lives in
``pysim.metric_learning._nca``, so it is documented as ``pysim.metric_learning.NCA``); the
top-level page links re-exports to their home instead of documenting them twice.

A public module whose optional dependencies are missing (``pysim.distributed`` without dask) is
listed with the reason instead of failing the build; CI installs the ``docs`` extra, which
pulls those dependencies in, so there the page is complete.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import types

import pysim

# The compiled module is private, but its stub is part of the typed surface: it is documented
# last, from its pybind11 docstrings.
COMPILED = "pysim._core"


def public_home(obj: object) -> str | None:
    """The public module an object belongs to: its ``__module__`` cut at the first private part."""
    module = getattr(obj, "__module__", None)
    if not module or not module.startswith("pysim"):
        return None
    parts = []
    for part in module.split("."):
        if part.startswith("_"):
            break
        parts.append(part)
    return ".".join(parts)


def public_modules() -> list[str]:
    names = ["pysim"]
    for info in pkgutil.iter_modules(pysim.__path__):
        if not info.name.startswith("_"):
            names.append(f"pysim.{info.name}")
    return sorted(names) + [COMPILED]


def module_names(module: types.ModuleType) -> list[str]:
    names = list(getattr(module, "__all__", []))
    # A public name defined in the module itself but missing from __all__ is still public.
    names += [
        n
        for n, obj in vars(module).items()
        if not n.startswith("_") and getattr(obj, "__module__", None) == module.__name__
    ]
    if hasattr(module, "__getattr__"):  # lazy loader: its __dir__ lists what it can import
        names += [n for n in dir(module) if not n.startswith("_")]
    if not names:  # the compiled module: every public attribute
        names = [n for n in dir(module) if not n.startswith("_")]
    seen: list[str] = []
    for name in names:
        if name not in seen and not name.startswith("__"):
            seen.append(name)
    return seen


def classify(modname: str, module: types.ModuleType) -> tuple[list, list, list, list]:
    """(classes, functions, re-exports, aliases) defined, re-exported or aliased by a module."""
    classes, functions, reexports, aliases = [], [], [], []
    for name in module_names(module):
        try:
            obj = getattr(module, name)
        except (AttributeError, ImportError):
            continue
        if isinstance(obj, types.ModuleType):
            continue
        if not (inspect.isclass(obj) or callable(obj)):
            continue
        home = modname if modname == COMPILED else public_home(obj)
        if home is None:
            continue
        if home != modname:
            reexports.append((name, home))
        elif getattr(obj, "__name__", name) != name and hasattr(module, obj.__name__):
            aliases.append((name, obj.__name__))  # Covariance = Whitening: one page, two names
        elif inspect.isclass(obj):
            classes.append(name)
        else:
            functions.append(name)
    return classes, functions, reexports, aliases


def module_page(modname: str) -> str:
    title = f"``{modname}``"
    lines = [title, "=" * len(title), ""]
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        lines += [
            f"``{modname}`` could not be imported where these pages were built ({exc}); "
            "install the ``docs`` extra to document it.",
            "",
        ]
        return "\n".join(lines)
    lines += [f".. automodule:: {modname}", "", f".. currentmodule:: {modname}"]
    classes, functions, reexports, aliases = classify(modname, module)
    for heading, names, template in (
        ("Classes", classes, "class.rst"),
        ("Functions", functions, "function.rst"),
    ):
        if not names:
            continue
        lines += ["", heading, "-" * len(heading), "", ".. autosummary::"]
        lines += ["   :toctree: generated/", f"   :template: {template}", "", *sorted_names(names)]
    if aliases:
        lines += ["", "Aliases", "-------", ""]
        lines += [f"- ``{modname}.{n}``: the same as :obj:`{modname}.{t}`" for n, t in aliases]
    if reexports:
        lines += ["", "Also importable from here", "-------------------------", ""]
        lines += [f"- ``{modname}.{n}``: :obj:`{home}.{n}`" for n, home in reexports]
    return "\n".join(lines) + "\n"


def sorted_names(names: list[str]) -> list[str]:
    return [f"   {n}" for n in sorted(names, key=str.lower)]


def write_api_pages(srcdir: str) -> None:
    """Write ``api/index.rst`` and one ``api/<module>.rst`` per public module (only if changed)."""
    outdir = os.path.join(srcdir, "api")
    os.makedirs(outdir, exist_ok=True)
    modules = public_modules()
    index = [
        "API reference",
        "=============",
        "",
        "Every public name of pysim, by module, generated from the modules' ``__all__``.",
        "The top-level ``pysim`` package re-exports the estimators and learners, so",
        "``pysim.NCA`` and ``pysim.metric_learning.NCA`` are the same class. ``pysim._core`` is",
        "the compiled module behind the Python layer: private (call the pysim package), listed",
        "for completeness, typed by ``pysim/_core.pyi``.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
        *[f"   {m}" for m in modules],
        "",
    ]
    pages = {"index.rst": "\n".join(index)}
    for modname in modules:
        pages[f"{modname}.rst"] = module_page(modname)
    for name in os.listdir(outdir):  # pages of modules that no longer exist
        if name.endswith(".rst") and name not in pages:
            os.remove(os.path.join(outdir, name))
    for name, text in pages.items():
        path = os.path.join(outdir, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
