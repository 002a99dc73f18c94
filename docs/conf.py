# Sphinx configuration for pysim's documentation site.
#
# The API reference is not written by hand: at build time `_api.py` (beside this file) walks
# the installed pysim package, takes every public module (plus the compiled pysim._core), reads
# its `__all__` (and, for the lazily importing top-level package, its `__dir__`) and writes one
# page per module with an autosummary table, so a new module or a new public name appears in
# the reference without anyone editing these files. numpydoc renders the docstrings and its
# validation (PR01/PR02: a parameter missing from, or unknown to, the docstring) turns an
# undocumented parameter into a build error under `sphinx-build -W`.
#
# The gallery (examples/*.py, run by sphinx-gallery) is executed on every build; each example
# runs in seconds on data that ships with scikit-learn or is generated.

from __future__ import annotations

import os
import sys
import warnings

import pysim

sys.path.insert(0, os.path.dirname(__file__))
import _api  # noqa: E402  (docs/_api.py, found through the path entry above)

project = "pysim"
author = "the pysim developers"
copyright = "the pysim developers"
release = pysim.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_copybutton",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb"]
root_doc = "index"
default_role = "py:obj"
nitpicky = False

# --- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc's Parameters section carries the types
autodoc_docstring_signature = True  # pybind11 puts the signature on the docstring's first line
numpydoc_show_class_members = False  # the class template lists members itself
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
# Every documented public callable must list its parameters (PR01) and list no parameter it
# does not take (PR02). The compiled module's docstrings come from pybind11 and are summaries
# only; scikit-learn's inherited methods are scikit-learn's to document.
numpydoc_validation_checks = {"PR01", "PR02"}
numpydoc_validation_exclude = {
    r"^pysim\._core\.",
    r"\.set_\w+_request$",
    r"\.get_metadata_routing$",
    r"\.set_output$",
    r"\.__init__$",
}

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
}
# No network on the build machines: intersphinx inventories are optional. An offline build
# would warn about each unreachable inventory, so the mapping is only used when asked for.
if not os.environ.get("PYSIM_DOCS_INTERSPHINX"):
    intersphinx_mapping = {}

# --- gallery ---------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": os.path.join(os.path.dirname(__file__), "..", "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reference_url": {"pysim": None},
    "doc_module": ("pysim",),
    "backreferences_dir": "api/backreferences",
    "show_memory": False,
    "plot_gallery": os.environ.get("PYSIM_DOCS_PLOT_GALLERY", "True"),
}

# Matplotlib without a display; examples must not warn (the build treats warnings as errors).
os.environ.setdefault("MPLBACKEND", "agg")
warnings.filterwarnings("error", category=DeprecationWarning, module="pysim")

# --- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"pysim {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
html_sidebars = {"index": []}


def _skip_scikit_learn_members(app, what, name, obj, skip, options):
    """Leave out members a class inherits from scikit-learn (get_params, set_output, the
    metadata-routing setters, ...): they are scikit-learn's to document, their docstrings
    cross-reference scikit-learn's own pages, and every estimator page would repeat them."""
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn."):
        return True
    return None


copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True


def setup(app):
    app.connect("autodoc-skip-member", _skip_scikit_learn_members)


# Written before autosummary reads the sources (it runs at builder-inited).
_api.write_api_pages(os.path.dirname(os.path.abspath(__file__)))
