"""Streamlit in Snowflake: what ``snow streamlit deploy`` ships is all the app needs, and it renders.

``snowflake.yml`` says which files go up (and where); ``streamlit_app/environment.yml`` which packages
the warehouse runtime installs. Here:

* every module the app can import (app.py, its pages and the package modules they reach, at import
  time or inside a function) is shipped, is in the standard library, comes with the runtime
  (Streamlit, Snowpark) or is listed in environment.yml, checked statically on the deployed layout;
* the deployed layout itself, copied out of this repository, renders every page on an active,
  non-local Snowpark session (the recording connection of ``engagement.engines.snowflake_recorder``)
  in a fresh interpreter: the "No runs yet" state, reads of ENGAGEMENT.MARKETING only, its own
  copy of the package, and no DuckDB.

Nothing here talks to an account, and the Snowflake CLI is not needed (its own model classes
were used to check snowflake.yml once; see the README).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatchcase
from functools import cache
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import sqlglot
import yaml
from sqlglot import exp

from engagement.config import Settings
from engagement.model import TABLES

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = ROOT / "streamlit_app" / "environment.yml"
# What the runtime has without environment.yml: Python, Streamlit and Snowpark (Snowflake's docs on
# dependency management), and what Snowpark itself requires.
PREINSTALLED = {"streamlit", "snowflake-snowpark-python", "snowflake-connector-python"}
# Imported inside functions only, on paths that Streamlit in Snowflake never takes.
NOT_ON_SIS = {
    "engagement.engines.duckdb": "the DuckDB engine, opened only when no Snowpark session is active",
    "boto3": "S3 sources, read by pipeline runs, never by the dashboard",
    "botocore": "S3 sources, read by pipeline runs, never by the dashboard",
}
GLOB = re.compile(r"[*?\[\]]")


def normalize(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def streamlit_entity(definition: Path = ROOT / "snowflake.yml") -> dict[str, Any]:
    """The one streamlit entity of a Snowflake CLI project definition."""
    doc = yaml.safe_load(definition.read_text())
    assert int(doc["definition_version"]) == 2
    entities = [e for e in doc["entities"].values() if e["type"] == "streamlit"]
    assert len(entities) == 1, "one Streamlit app per project definition"
    return entities[0]


def _files_under(path: Path, ignore: list[str]) -> list[Path]:
    if path.is_file():
        return [path]
    found = []
    for directory, subdirs, names in os.walk(path):
        subdirs[:] = sorted(d for d in subdirs if not any(fnmatchcase(d, p) for p in ignore))
        found += [Path(directory, n) for n in sorted(names) if not any(fnmatchcase(n, p) for p in ignore)]
    return found


def deployed_files(root: Path = ROOT) -> dict[str, Path]:
    """Where ``snow streamlit deploy`` puts each file: {path under the app's source root: file here}.

    The Snowflake CLI's artifact rules, as far as snowflake.yml uses them (anything else fails
    here): ``src`` a file or folder, ``dest`` a new path or, ending in "/", a folder to put ``src``
    into, ``ignore`` names at any depth. Like the CLI (3.30), the main file, ``environment.yml`` and
    the pages folder at the project root are shipped too when no artifact puts them in place.
    """
    entity = streamlit_entity(root / "snowflake.yml")
    files: dict[str, Path] = {}

    def add(src: str, dest: str | None = None, ignore: list[str] | None = None) -> None:
        assert not GLOB.search(src), f"{src}: glob patterns are not modelled here"
        source = root / src
        assert source.exists(), f"{src} does not exist"
        target = PurePosixPath(src.rstrip("/"))
        if dest is not None:
            target = PurePosixPath(dest.rstrip("/")) / (source.name if dest.endswith("/") else "")
        for file in _files_under(source, ignore or []):
            path = str(target / file.relative_to(source).as_posix()) if file != source else str(target)
            assert files.setdefault(path, file) == file, f"{path} comes from two files"

    mappings = [{"src": a} if isinstance(a, str) else a for a in entity.get("artifacts") or []]
    for mapping in mappings:
        assert set(mapping) <= {"src", "dest", "ignore"}, f"not modelled here: {mapping}"
        add(mapping["src"], mapping.get("dest"), mapping.get("ignore"))

    def covered(path: str) -> bool:  # an artifact already puts it (or a folder holding it) in place
        for mapping in mappings:
            src, dest = PurePosixPath(mapping["src"].rstrip("/")), mapping.get("dest")
            lands = src if dest is None else PurePosixPath(dest.rstrip("/")) / (src.name if dest.endswith("/") else "")
            if PurePosixPath(path).is_relative_to(src) and lands == src:
                return True
        return False

    for implicit in (entity.get("main_file", "streamlit_app.py"), "environment.yml", entity.get("pages_dir") or "pages"):
        if (root / implicit).exists() and not covered(implicit):
            add(implicit)
    return files


def listed_packages(environment: Path = ENVIRONMENT) -> set[str]:
    """The package names environment.yml asks for (without version specs)."""
    doc = yaml.safe_load(environment.read_text())
    return {normalize(re.split(r"[=<>!~ ]", spec, maxsplit=1)[0]) for spec in doc["dependencies"]}


def imports(source: str, module: str | None, is_package: bool) -> list[tuple[str, bool, bool]]:
    """``(module name, at import time, may be a name in its parent)`` for each import: ``import a.b``
    means module ``a.b``; ``from a import b`` module ``a`` and ``a.b``, a submodule or a name in ``a``.
    ``if TYPE_CHECKING:`` blocks never run."""
    found: list[tuple[str, bool, bool]] = []

    def visit(node: ast.AST, eager: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, eager, False) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    assert module, "a relative import outside a package"
                    parts = module.split(".")[: len(module.split(".")) - child.level + (1 if is_package else 0)]
                    base = ".".join(parts + ([child.module] if child.module else []))
                found.append((base, eager, False))
                found.extend((f"{base}.{alias.name}", eager, True) for alias in child.names if alias.name != "*")
            visit(child, eager and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), True)
    return found


def bound_names(source: str) -> set[str]:
    """Every name a module binds anywhere (defs, classes, assignments, imports): generous on purpose."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@cache
def _top_level_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


@cache
def _owner(prefix: str, candidates: tuple[str, ...]) -> list[str]:
    return [n for n in candidates if any(str(f).startswith(prefix + "/") or str(f) == prefix + ".py"
                                         for f in metadata.distribution(n).files or [])]


def distribution(module: str) -> str | None:
    """The installed distribution that provides ``module`` (None: nothing installed does)."""
    names = sorted(set(_top_level_distributions().get(module.split(".")[0], [])))
    if len(names) > 1:  # a namespace package (snowflake.*): the one holding the subpackage
        names = _owner("/".join(module.split(".")[:2]), tuple(names))
    return normalize(names[0]) if names else None


def unavailable_imports(files: dict[str, Path], main_file: str, pages: list[str], listed: set[str]) -> list[str]:
    """Every import, reachable from the main file and pages, that the runtime could not satisfy.

    Modules are found where Streamlit looks first: the main file's folder (it puts it on sys.path).
    A top-level name shipped there must be shipped entirely; anything else is the standard library,
    preinstalled, listed, or (only inside a function) one of NOT_ON_SIS.
    """
    base = PurePosixPath(main_file).parent

    def shipped(name: str) -> tuple[str, bool] | None:
        if not name:
            return None
        path = base.joinpath(*name.split("."))
        for candidate, is_package in ((path / "__init__.py", True), (path.with_suffix(".py"), False)):
            if str(candidate) in files:
                return str(candidate), is_package
        return None

    bound: dict[str, set[str]] = {}

    def names_in(path: str) -> set[str]:
        if path not in bound:
            bound[path] = bound_names(files[path].read_text())
        return bound[path]

    problems: list[str] = []
    reported: set[tuple[str, str]] = set()  # (file, distribution) already told
    queue, seen = [(main_file, None, False)] + [(p, None, False) for p in pages], set()
    while queue:
        path, module, is_package = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for name, eager, maybe_attribute in imports(files[path].read_text(), module, is_package):
            top, where = name.split(".")[0], f"{path}: {name}"
            if any(name == lazy or name.startswith(lazy + ".") for lazy in NOT_ON_SIS):
                if eager:
                    problems.append(f"{where} at import time, but NOT_ON_SIS says only inside a function")
                continue
            if shipped(top):
                found, parent = shipped(name), shipped(name.rpartition(".")[0])
                if found:  # importing a.b.c runs a, a.b and a.b.c
                    parts = name.split(".")
                    queue += [(f[0], ".".join(parts[:i]), f[1]) for i in range(1, len(parts) + 1)
                              if (f := shipped(".".join(parts[:i])))]
                elif not (maybe_attribute and parent and name.rpartition(".")[2] in names_in(parent[0])):
                    problems.append(f"{where} is not shipped")
            elif top in sys.stdlib_module_names or top == "__future__":
                continue
            elif (dist := distribution(name)) is None:
                problems.append(f"{where} is neither shipped nor installed here")
            elif dist not in listed | PREINSTALLED and (path, dist) not in reported:
                reported.add((path, dist))
                problems.append(f"{where} needs {dist}, which streamlit_app/environment.yml does not list")
    return problems


def page_paths(app: Path) -> list[str]:
    """The paths of ``st.Page("...")`` in the app (relative to the main file's folder)."""
    return [node.args[0].value for node in ast.walk(ast.parse(app.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Page"
            and node.args and isinstance(node.args[0], ast.Constant)]


# -- what is deployed --------------------------------------------------------------------------


def test_the_definition_publishes_the_dashboard_where_it_reads() -> None:
    entity, files = streamlit_entity(), deployed_files()
    main = entity["main_file"]
    assert files[main] == ROOT / "streamlit_app" / "app.py"
    defaults = Settings.model_fields
    assert entity["identifier"]["database"] == defaults["snowflake_database"].default
    assert entity["identifier"]["schema"] == defaults["snowflake_schema"].default
    assert entity["query_warehouse"] == "ENGAGEMENT_WH"  # sql/01_setup.sql
    folder = PurePosixPath(main).parent
    pages = page_paths(ROOT / main)
    assert len(pages) == 4
    for page in pages:
        assert files[str(folder / page)] == ROOT / "streamlit_app" / page
    assert files[str(folder / "environment.yml")] == ENVIRONMENT  # at the same level as the main file
    assert files[str(folder / "engagement" / "checks.yml")] == ROOT / "engagement" / "checks.yml"
    assert not [p for p in files if "__pycache__" in p]


def test_the_environment_uses_the_snowflake_channel_only() -> None:
    doc = yaml.safe_load(ENVIRONMENT.read_text())
    assert doc["channels"] == ["snowflake"]
    assert all(isinstance(spec, str) for spec in doc["dependencies"]), "no pip section: conda packages only"
    assert "python=3.11" in doc["dependencies"]  # datetime.UTC and friends need 3.11
    assert "duckdb" not in listed_packages()


def test_every_import_is_shipped_or_listed() -> None:
    entity, files = streamlit_entity(), deployed_files()
    folder = PurePosixPath(entity["main_file"]).parent
    pages = [str(folder / p) for p in page_paths(ROOT / entity["main_file"])]
    assert unavailable_imports(files, entity["main_file"], pages, listed_packages()) == []


def test_an_unlisted_import_is_caught(tmp_path: Path) -> None:
    """The check itself: a new third-party import (at import time or inside a function), a module
    left out, and a NOT_ON_SIS import made eager are each reported."""
    (tmp_path / "pkg").mkdir()
    sources = {
        "app.py": "import streamlit as st\nimport yaml\nimport requests\nfrom pkg import tools\n",
        "pkg/__init__.py": "",
        "pkg/tools.py": "import json\nfrom pkg import missing\n\ndef read():\n    import duckdb\n    import boto3\n",
        "page.py": "import boto3\nfrom snowflake.snowpark.functions import col\n",
    }
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    files = {name: tmp_path / name for name in sources}
    problems = unavailable_imports(files, "app.py", ["page.py"], listed_packages())
    assert sorted(problems) == sorted([
        "app.py: requests needs requests, which streamlit_app/environment.yml does not list",
        "pkg/tools.py: pkg.missing is not shipped",
        "pkg/tools.py: duckdb needs duckdb, which streamlit_app/environment.yml does not list",
        "page.py: boto3 at import time, but NOT_ON_SIS says only inside a function",
    ])


# -- the deployed layout on an active Snowpark session -------------------------------------------

RUNNER = """
import json, os, sys
main, pages = sys.argv[1], sys.argv[2:]
sys.path.insert(0, os.path.dirname(main))  # as Streamlit does for the main file
from snowflake.snowpark import Session
from streamlit.testing.v1 import AppTest
from engagement.engines.snowflake_recorder import RecordingConnection

connection = RecordingConnection()
session = Session.builder.configs({"connection": connection}).create()  # the active session
shown = {}
for page in pages:
    at = AppTest.from_file(main, default_timeout=60)
    at.switch_page(page).run()
    shown[page] = {
        "exceptions": [e.value for e in at.exception], "errors": [e.value for e in at.error],
        "titles": [t.value for t in at.title], "info": [i.value for i in at.info],
        "sidebar": [c.value for c in at.sidebar.caption],
    }
statements = [{"sql": s.sql, "describe": s.describe} for s in connection.statements]
session.close()
modules = {name: getattr(m, "__file__", None) for name, m in list(sys.modules.items())}
print(json.dumps({"pages": shown, "statements": statements, "modules": modules}))
"""


@pytest.fixture(scope="module")
def on_snowflake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The deployed files, copied alone into a folder, each page rendered there by AppTest in a new
    interpreter (no PYTHONPATH, no ENGAGEMENT_* settings, that folder as working directory)."""
    app = tmp_path_factory.mktemp("sis") / "app"
    for path, source in deployed_files().items():
        (app / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, app / path)
    entity = streamlit_entity()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("ENGAGEMENT_")}
    done = subprocess.run([sys.executable, "-c", RUNNER, str(app / entity["main_file"]),
                           *page_paths(ROOT / entity["main_file"])],
                          cwd=app, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"app": app, **json.loads(done.stdout.strip().splitlines()[-1])}


def test_every_page_renders_on_the_active_session(on_snowflake: dict[str, Any]) -> None:
    assert len(on_snowflake["pages"]) == 4
    for page, shown in on_snowflake["pages"].items():
        assert shown["exceptions"] == [] and shown["errors"] == [], page
        assert shown["titles"] == ["No runs yet"], page  # the recorder answers with no rows
        assert shown["sidebar"] == ["Warehouse: Snowflake ENGAGEMENT.MARKETING"], page


def test_the_pages_read_the_model_tables_in_engagement_marketing(on_snowflake: dict[str, Any]) -> None:
    model = {f"ENGAGEMENT.MARKETING.{t.name.upper()}" for t in TABLES}
    read: set[str] = set()
    for statement in on_snowflake["statements"]:
        if re.match(r"\s*alter session set query_tag = ", statement["sql"], re.I):
            continue  # each read names its step in QUERY_HISTORY
        tree = sqlglot.parse_one(statement["sql"], read="snowflake")
        assert isinstance(tree, exp.Select), f"the dashboard only reads: {statement['sql']}"
        read |= {".".join(p.name for p in (t.args.get("catalog"), t.args.get("db"), t.this))
                 for t in tree.find_all(exp.Table)}
    assert read and read <= model, read - model
    assert "ENGAGEMENT.MARKETING.INGESTION_LOGS" in read  # the runs, and the data version


def test_the_app_runs_on_its_shipped_code_without_duckdb(on_snowflake: dict[str, Any]) -> None:
    modules, app = on_snowflake["modules"], on_snowflake["app"]
    ours = {name: file for name, file in modules.items() if name.split(".")[0] == "engagement"}
    assert "engagement.dashboard.ui" in ours and "engagement.engines.snowpark" in ours
    assert all(file and Path(file).is_relative_to(app) for file in ours.values()), ours
    leaked = {"duckdb", "engagement.engines.duckdb"} & set(modules)  # (boto3 comes with the connector here)
    assert not leaked, leaked
    assert "engagement.engines.snowflake_session" not in modules  # no session of its own: the active one
