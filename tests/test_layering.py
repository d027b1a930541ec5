"""Dependencies go one way (docs/architecture.md): importing a package's modules loads none of the
packages it must not depend on.

- ``khop.model`` (the golden model) imports neither Amaranth nor ``khop.hw``, ``khop.sim``,
  ``khop.boards`` nor the command line (``khop.cli*``, ``khop.argtypes``, ``khop.options``);
  matplotlib is allowed (the paper's figures).
- ``khop.hw`` (the HDL and its cycle model) imports neither ``khop.sim``, ``khop.boards`` nor the
  command line.
- ``khop.sim`` (the cosimulation library) does not import the command line.
- ``khop.formal`` (the formal proofs) does not import the command line.

Each package is imported, every module of it, in a fresh interpreter, which then reports the
modules it loaded: an import made by another test of this session cannot hide a violation.
"""

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

CLI = ("khop.cli", "khop.argtypes", "khop.options")

#: package -> (prefixes of forbidden modules, modules not imported: (name, why)).
RULES = {
    "khop.model": (("amaranth", "khop.hw", "khop.sim", "khop.boards", *CLI), ()),
    "khop.hw": (("khop.sim", "khop.boards", *CLI), ()),
    "khop.sim": (CLI, (("khop.sim.test_khop_top",
                        "the cocotb test module: it runs inside the simulator only"),)),
    "khop.formal": (CLI, ()),
}

_PROBE = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    package, skip = sys.argv[1], set(json.loads(sys.argv[2]))
    root = importlib.import_module(package)
    imported = [package]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name in skip:
            continue
        importlib.import_module(info.name)
        imported.append(info.name)
    print(json.dumps({"imported": imported, "loaded": sorted(sys.modules)}))
""")


def _forbidden(name, prefixes):
    return any(name == p or name.startswith(p + ".") or (p.endswith("cli") and
               name.startswith(p + "_")) for p in prefixes)


def _imports(package, skip=()):
    r = subprocess.run([sys.executable, "-c", _PROBE, package, json.dumps(list(skip))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"importing {package} failed:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", list(RULES))
def test_package_imports_nothing_it_must_not_depend_on(package):
    prefixes, skip = RULES[package]
    out = _imports(package, [name for name, _ in skip])
    assert len(out["imported"]) > 1, f"{package}: no modules found"
    bad = [m for m in out["loaded"] if _forbidden(m, prefixes)]
    assert not bad, f"importing every module of {package} loads {bad}"


@pytest.mark.parametrize(("package", "module"), [
    (package, name) for package, (_, skip) in RULES.items() for name, _ in skip])
def test_modules_not_imported_import_nothing_forbidden_in_their_source(package, module):
    """A module that cannot be imported outside its host (the cocotb test module) is checked
    in its source: its own import statements name nothing forbidden."""
    prefixes = RULES[package][0]
    path = importlib.util.find_spec(module).origin
    names = []
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
    assert names, module
    bad = [n for n in names if _forbidden(n, prefixes)]
    assert not bad, f"{module} imports {bad}"


def test_the_model_does_not_import_amaranth_even_with_matplotlib():
    """``khop.model`` modules that plot may import matplotlib, never Amaranth (a plotting module
    must not pull the HDL in through a helper)."""
    out = _imports("khop.model")
    assert not [m for m in out["loaded"] if m == "amaranth" or m.startswith("amaranth.")]


def test_forbidden_prefixes_match_the_cli_split():
    assert _forbidden("khop.cli_boards", CLI) and _forbidden("khop.cli", CLI)
    assert _forbidden("khop.options", CLI) and not _forbidden("khop.outputs", CLI)
    assert _forbidden("amaranth.hdl", ("amaranth",))
    assert not _forbidden("amaranthine", ("amaranth",))
