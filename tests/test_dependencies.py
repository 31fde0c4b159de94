"""Dependencies run one way, checked on the source with ``ast`` (no module is imported).

The rules:

1. ``synth_core.metrics`` imports neither ``synth_core.select``, ``synth_core.report`` nor
   ``synth_core.cli``: the metric is the judge, and it must not depend on what it judges.
2. ``synth_core`` is a library: none of its modules imports ``dagster``, ``synth_orchestration``
   or, outside ``synth_core/cli/`` itself, ``synth_core.cli``.
3. A private module (a name starting with ``_``) belongs to its package: only that package's own
   modules, subpackages included, import it; everyone else goes through the package's
   ``__init__``.
4. ``mostlyai``'s private modules are touched by :data:`MOSTLYAI_PRIVATE_ALLOWED` only.

Every ``import`` and ``from ... import`` counts, inside functions and ``if TYPE_CHECKING:``
blocks too; relative imports are resolved first.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("synth_core", "synth_orchestration")

# Generation runs the SDK's local generation job in this process (the SDK has no public way to), so
# one module depends on mostlyai's internals (``_sdk``, with the SDK's file layout); a second module
# would double what breaks on an SDK upgrade.
MOSTLYAI_PRIVATE_ALLOWED = frozenset({"synth_core/generate/_sdk.py"})

METRICS_FORBIDDEN = ("synth_core.select", "synth_core.report", "synth_core.cli")


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def module_name(path: str) -> tuple[str, bool]:
    """The dotted name of the module at ``path`` (relative to the repository, ``/``-separated) and
    whether it is a package's ``__init__``."""
    parts = path[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def known_modules() -> frozenset[str]:
    """Every first-party module and package: tells ``from package import name`` a submodule from an
    attribute."""
    return frozenset(module_name(p.relative_to(REPO).as_posix())[0]
                     for top in FIRST_PARTY for p in (REPO / top).rglob("*.py"))


def imported_modules(tree: ast.AST, module: str, is_package: bool,
                     known: frozenset[str]) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every module the source imports; ``from X import name`` gives ``X``,
    and also ``X.name`` where that is a module (known, or private and third-party: a private name of
    another project counts as its private module)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            yield node.lineno, source
            for alias in node.names:
                name = f"{source}.{alias.name}"
                first_party = source.split(".")[0] in FIRST_PARTY
                if name in known or (not first_party and _private(alias.name)):
                    yield node.lineno, name


def broken_rules(path: str, module: str, imported: str) -> Iterator[str]:
    """The rules that importing ``imported`` from ``module`` (at ``path``) breaks."""
    top = imported.split(".")[0]
    if _within(module, "synth_core.metrics"):
        for forbidden in METRICS_FORBIDDEN:
            if _within(imported, forbidden):
                yield f"synth_core.metrics never imports {forbidden}"
    if _within(module, "synth_core"):
        if top == "dagster" or top.startswith("dagster_"):
            yield "synth_core never imports dagster"
        if top == "synth_orchestration":
            yield "synth_core never imports synth_orchestration"
        if _within(imported, "synth_core.cli") and not _within(module, "synth_core.cli"):
            yield "only synth_core.cli imports synth_core.cli"
    parts = imported.split(".")
    private_at = next((i for i, part in enumerate(parts) if _private(part)), None)
    if private_at is None:
        return
    if top in FIRST_PARTY:
        owner = ".".join(parts[:private_at])
        if not _within(module, owner):
            yield f"private module of {owner}: import it from {owner}"
    elif top == "mostlyai" and path not in MOSTLYAI_PRIVATE_ALLOWED:
        yield "mostlyai private module outside MOSTLYAI_PRIVATE_ALLOWED"


def violations(source: str, path: str, known: frozenset[str] = frozenset()) -> list[str]:
    """``path:line imports module (rule)`` for every broken rule in ``source``, the text of the
    module at ``path`` (relative to the repository, ``/``-separated)."""
    module, is_package = module_name(path)
    tree = ast.parse(source, filename=path)
    return [f"{path}:{line} imports {imported} ({rule})"
            for line, imported in imported_modules(tree, module, is_package, known)
            for rule in broken_rules(path, module, imported)]


def _sources() -> Iterator[tuple[str, str]]:
    for top in FIRST_PARTY:
        for file in sorted((REPO / top).rglob("*.py")):
            yield file.relative_to(REPO).as_posix(), file.read_text(encoding="utf-8")


def test_dependencies_run_one_way():
    known = known_modules()
    found = [v for path, source in _sources() for v in violations(source, path, known)]
    assert not found, "dependency rules broken (see tests/test_dependencies.py):\n" + "\n".join(found)


def test_mostlyai_allow_list_is_still_needed():
    # an exception nobody uses any more is one a second module could start to use unnoticed
    for path in MOSTLYAI_PRIVATE_ALLOWED:
        source = (REPO / path).read_text(encoding="utf-8")
        module, is_package = module_name(path)
        reached = [m for _, m in imported_modules(ast.parse(source), module, is_package, frozenset())
                   if m.split(".")[0] == "mostlyai" and any(_private(p) for p in m.split("."))]
        assert reached, f"{path} no longer imports a private mostlyai module: drop it from MOSTLYAI_PRIVATE_ALLOWED"


def test_checker_reports_each_rule_and_passes_clean_code():
    known = frozenset({"synth_core.select", "synth_core.select._features", "synth_core.select.flat",
                       "synth_core.select.flat._refine", "synth_core.cli", "synth_core.cli._main"})
    bad = {
        "synth_core/dp/_mechanism.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from synth_core.select._features import FeatureSet\n"
        ),
        "synth_core/metrics/_gate.py": "def f():\n    from synth_core.select import GuardSettings\n",
        "synth_core/report/__init__.py": "import dagster as dg\nfrom synth_orchestration.common import Stage\n",
        "synth_core/select/sequential/_pipeline.py": "from synth_core.cli import read_inputs\n",
        "synth_core/select/flat/_pipeline.py": "from ...cli import _main\n",
        "synth_orchestration/assets/generator.py": "from synth_core.select import _features\n",
        "synth_core/generate/_pool.py": "from mostlyai.sdk._local.execution.jobs import run\n",
        "synth_core/io.py": "from mostlyai.sdk import _local\n",
    }
    expected = {
        "synth_core/dp/_mechanism.py:3 imports synth_core.select._features (private module of synth_core.select: "
        "import it from synth_core.select)",
        "synth_core/metrics/_gate.py:2 imports synth_core.select (synth_core.metrics never imports synth_core.select)",
        "synth_core/report/__init__.py:1 imports dagster (synth_core never imports dagster)",
        "synth_core/report/__init__.py:2 imports synth_orchestration.common (synth_core never imports "
        "synth_orchestration)",
        "synth_core/select/sequential/_pipeline.py:1 imports synth_core.cli (only synth_core.cli imports "
        "synth_core.cli)",
        "synth_core/select/flat/_pipeline.py:1 imports synth_core.cli (only synth_core.cli imports synth_core.cli)",
        "synth_core/select/flat/_pipeline.py:1 imports synth_core.cli._main (only synth_core.cli imports "
        "synth_core.cli)",
        "synth_core/select/flat/_pipeline.py:1 imports synth_core.cli._main (private module of synth_core.cli: "
        "import it from synth_core.cli)",
        "synth_orchestration/assets/generator.py:1 imports synth_core.select._features (private module of "
        "synth_core.select: import it from synth_core.select)",
        "synth_core/generate/_pool.py:1 imports mostlyai.sdk._local.execution.jobs (mostlyai private module "
        "outside MOSTLYAI_PRIVATE_ALLOWED)",
        "synth_core/io.py:1 imports mostlyai.sdk._local (mostlyai private module outside MOSTLYAI_PRIVATE_ALLOWED)",
    }
    found = {v for path, source in bad.items() for v in violations(source, path, known)}
    assert found == expected

    clean = {
        # a package's own private modules, from a subpackage and relatively
        "synth_core/select/flat/_refine.py": "from synth_core.select._features import FeatureSet\n"
                                             "from .._features import check_codes\nfrom . import _refine\n",
        "synth_core/select/__init__.py": "from synth_core.select._features import FeatureSet\n",
        "synth_core/cli/_select.py": "def f():\n    from synth_core.cli._main import typed_tables\n",
        # public faces, and private names (not modules) of a package's own module
        "synth_core/dp/_mechanism.py": "from synth_core.select import FeatureSet\n",
        "synth_orchestration/assets/generator.py": "from synth_core.generate import DPTraining\nimport dagster as dg\n",
        "synth_core/select/flat/_trim.py": "from synth_core.select._objective import _check_vec\n",
        "synth_core/generate/_sdk.py": "from mostlyai.sdk._local.execution.jobs import execute_generation_job\n",
        "synth_core/metrics/_evaluate.py": "from synth_core.conform import conform_table\nimport numpy as np\n",
    }
    assert [v for path, source in clean.items() for v in violations(source, path, known)] == []
