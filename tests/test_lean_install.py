"""The lean install: the built wheel, installed with no extras in a fresh venv, runs an import.

The venv gets attrs and transitions from the package index (the only two
dependencies); everything else needs an extra, and says which in one line.
"""

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

import importstate

ROOT = Path(__file__).resolve().parent.parent
#: Seconds for building the wheel or installing it (the index is fetched from).
INSTALL_TIMEOUT = 300
CLI_MISSING = (
    "importstate: importstate's command line needs the cli extra:"
    " pip install 'importstate[cli]'\n"
)
#: What each extra holds, by distribution name; ``all`` is every one of them.
EXTRAS = {
    "aio": {"anyio"},
    "cli": {"click", "rich"},
    "diagrams": {"graphviz"},
    "postgres": {"psycopg", "psycopg-pool"},
    "server": {"anyio", "graphviz", "starlette", "uvicorn"},
    "testing": {"hypothesis", "pytest"},
}


def _env():
    # Nothing of the test run's own environment may leak into the lean venv.
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(*args, cwd, timeout=60):
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    done = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "--quiet", "--wheel-dir", out, ROOT, cwd=out, timeout=INSTALL_TIMEOUT)
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("importstate-*.whl")
    return built


@pytest.fixture(scope="module")
def lean(tmp_path_factory, wheel):
    """A fresh venv holding the wheel and its two dependencies; its directory."""
    venv = tmp_path_factory.mktemp("lean") / "venv"
    done = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    assert done.returncode == 0, done.stderr
    done = _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
                "--quiet", wheel, cwd=venv.parent, timeout=INSTALL_TIMEOUT)
    assert done.returncode == 0, done.stderr
    return venv


@pytest.fixture
def work(tmp_path):
    # Run outside the checkout, so that its importstate/ is not what gets imported.
    return tmp_path


def test_the_venv_holds_no_extras_package(lean, work):
    done = _run(sys.executable, "-m", "pip", "--python", lean / "bin" / "python", "list",
                "--format=json", cwd=work)
    installed = {re.sub(r"[-_.]+", "-", d["name"]).lower() for d in json.loads(done.stdout)}
    assert {"importstate", "attrs", "transitions"} <= installed
    assert not installed & set().union(*EXTRAS.values(), {"typing-extensions"})


def test_a_whole_import_runs_without_any_extra(lean, work):
    script = shutil.copy(ROOT / "tests" / "lean_import.py", work)
    done = _run(lean / "bin" / "python", script, work, cwd=work)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert Path(result["from"]).is_relative_to(lean)
    counts = {"total": 9, "completed": 9, "error": 0, "users": 3, "channels": 1, "messages": 5}
    for store in ("sqlite", "memory"):
        assert result[store] == {"state": "done", "status": "importer_done", "count": counts}
    assert result["tables"] == {"user": 3, "channel": 1, "message": 5}
    assert result["recorded"] == ["u0", "u1", "u2"]
    assert result["slack"] == {"state": "done", "completed": 18, "records": 18}
    assert result["mermaid"] == "stateDiagram-v2"
    assert result["loaded"] == []


@pytest.mark.parametrize("command", [["bin/importstate"], ["bin/python", "-m", "importstate"]])
@pytest.mark.parametrize("args", [["status"], ["--version"], []])
def test_the_command_line_names_the_cli_extra_in_one_line(lean, work, command, args):
    done = _run(lean / command[0], *command[1:], *args, cwd=work)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", CLI_MISSING)


#: What needs an extra, and the extra it names.
NEEDS = {
    "import importstate.http": "server",
    "import importstate.stores.postgres": "postgres",
    "from importstate import PostgresStore": "postgres",
    "import importstate.aio": "aio",
    "import importstate.testing.strategies": "testing",
    "from importstate.testing import StoreTests": "testing",
    "from importstate.testing import ImportServiceMachine": "testing",
    "from importstate.testing import BatchClaimsTests": "testing",
    "importstate.diagrams.state_diagram(format='dot')": "diagrams",
    "importstate.diagrams.steps_diagram(format='svg')": "diagrams",
}

_PROBE = textwrap.dedent("""
    import json, sys
    import importstate.diagrams
    from importstate.errors import MissingExtra
    said = {}
    for code in json.loads(sys.argv[1]):
        try:
            exec(code)
        except MissingExtra as exc:
            said[code] = [exc.extra, str(exc), isinstance(exc, ImportError)]
    print(json.dumps(said))
""")


@pytest.fixture(scope="module")
def said(lean, tmp_path_factory):
    """What each entry of NEEDS raised in the lean venv: the extra, the message, an ImportError."""
    done = _run(lean / "bin" / "python", "-c", _PROBE, json.dumps(list(NEEDS)),
                cwd=tmp_path_factory.mktemp("probe"))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(("code", "extra"), NEEDS.items())
def test_what_needs_an_extra_names_it(said, code, extra):
    assert code in said, f"{code} raised no MissingExtra"
    named, message, import_error = said[code]
    assert named == extra
    assert message.endswith(f" needs the {extra} extra: pip install 'importstate[{extra}]'")
    assert "\n" not in message
    assert import_error


def _metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(info).decode())
        licence = archive.read(info.replace("METADATA", "licenses/LICENSE")).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    return names, metadata, licence, entry_points


def _requirement_name(requirement):
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower()


def test_the_core_needs_attrs_and_transitions_only(wheel):
    _, metadata, _, _ = _metadata(wheel)
    core = [r for r in metadata.get_all("Requires-Dist") if ";" not in r]
    assert sorted(map(_requirement_name, core)) == ["attrs", "transitions"]


def test_each_extra_brings_its_packages(wheel):
    _, metadata, _, _ = _metadata(wheel)
    # Besides the users' extras: all of them, and the contributors' docs and dev.
    assert set(metadata.get_all("Provides-Extra")) == {*EXTRAS, "all", "docs", "dev"}
    held = {}
    for requirement in metadata.get_all("Requires-Dist"):
        if match := re.search(r"extra == ['\"](\w+)['\"]", requirement):
            held.setdefault(match[1], set()).add(_requirement_name(requirement))
    for extra, packages in EXTRAS.items():
        assert held[extra] == packages, extra
    assert held["all"] == set().union(*EXTRAS.values())
    assert held["docs"] == {"mkdocs", "mkdocs-material", "mkdocstrings"}
    assert held["dev"] > held["all"] | held["docs"]


def test_the_wheel_carries_version_licence_urls_and_types(wheel):
    names, metadata, licence, entry_points = _metadata(wheel)
    assert metadata["Version"] == importstate.__version__ == "0.2.0"
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License-File"] == "LICENSE"
    assert "Copyright (c) 2026 the importstate authors" in licence
    assert licence == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = set(metadata.get_all("Classifier"))
    assert {"Typing :: Typed", "Programming Language :: Python :: 3.11",
            "Programming Language :: Python :: 3 :: Only"} <= classifiers
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues", "Changelog"}
    assert all(url.startswith("https://") for url in urls.values())
    assert urls["Source"] == "https://github.com/importstate/importstate"
    assert urls["Issues"] == "https://github.com/importstate/importstate/issues"
    assert "importstate/py.typed" in names
    assert "importstate = importstate.__main__:main" in entry_points


def test_the_source_distribution_holds_what_a_clone_does(tmp_path):
    done = _run(sys.executable, "-m", "hatchling", "build", "--target", "sdist",
                "--directory", tmp_path, cwd=ROOT, timeout=INSTALL_TIMEOUT)
    assert done.returncode == 0, done.stderr
    (built,) = tmp_path.glob("importstate-*.tar.gz")
    with tarfile.open(built) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {name.split("/", 1)[0] for name in names} == {
        ".ci", ".gitignore", "CHANGELOG.md", "CONTRIBUTING.md", "LICENSE", "Makefile",
        "PKG-INFO", "README.md", "SECURITY.md", "benchmarks", "diagrams", "docs", "examples",
        "importstate", "pyproject.toml", "tests",
    }
    assert {"importstate/py.typed", "diagrams/states.svg", "tests/lean_import.py"} <= names


def test_the_version_is_written_once():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^version\s*=", pyproject, re.MULTILINE) is None
    assert 'dynamic = ["version"]' in pyproject
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{importstate.__version__}] - " in changelog


# -- one extra missing, the others installed (the blocked packages cannot be imported) -------

_BLOCKED = textwrap.dedent("""
    import sys

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    BLOCKED = set(sys.argv[1].split(","))
    sys.meta_path.insert(0, Blocked())
    sys.argv[1:] = sys.argv[2:]
""")


def _without(packages, code, *args, cwd):
    return _run(sys.executable, "-c", _BLOCKED + textwrap.dedent(code), ",".join(packages),
                *args, cwd=cwd)


def _cli_without(packages, *args, cwd):
    code = "import sys\nfrom importstate.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return _without(packages, code, *args, cwd=cwd)


def test_serve_without_the_server_extra_names_it(work):
    done = _cli_without(["starlette", "uvicorn"], "serve", "--db", work / "x.db", cwd=work)
    assert (done.returncode, done.stderr) == (1, (
        "importstate: importstate's REST server needs the server extra:"
        " pip install 'importstate[server]'\n"))


def test_a_dsn_without_the_postgres_extra_names_it(work):
    done = _cli_without(["psycopg", "psycopg_pool"], "status", "--dsn", "postgresql://x/y",
                        "--db", work / "x.db", cwd=work)
    assert (done.returncode, done.stderr) == (1, (
        "importstate: PostgresStore needs the postgres extra:"
        " pip install 'importstate[postgres]'\n"))


@pytest.mark.parametrize("form", ["dot", "svg"])
def test_a_dot_or_svg_diagram_without_the_diagrams_extra_names_it(work, form):
    done = _cli_without(["graphviz"], "diagram", "--format", form, cwd=work)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", (
        "importstate: a DOT or SVG diagram needs the diagrams extra:"
        " pip install 'importstate[diagrams]'\n"))


def test_a_mermaid_diagram_needs_no_extra(work):
    done = _cli_without(["graphviz"], "diagram", cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "diagrams" / "states.mmd").read_text(encoding="utf-8")


def test_the_pytest_plugin_and_the_importers_work_without_hypothesis(work):
    (work / "test_plugin.py").write_text(textwrap.dedent("""
        import sys

        def test_fixture(import_service, recording_importer):
            import_service.new_operation(user_id="u1")
            import_service.add_users([{"emails": ["a@example.com"], "importIds": ["a"]}])
            assert import_service.run().state == "done"
            assert recording_importer.import_ids == ["a"]
            assert "hypothesis" not in sys.modules
    """), encoding="utf-8")
    # Hypothesis' own pytest plugin goes too: it would not be installed without Hypothesis.
    code = ("import sys, pytest\nsys.exit(pytest.main(['-q', '-p', 'no:cacheprovider',"
            " '-p', 'no:hypothesispytest', *sys.argv[1:]]))\n")
    done = _without(["hypothesis"], code, "test_plugin.py", cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_the_readme_lists_every_extra_and_the_line_a_missing_one_prints():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Installing\n", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)) == {*EXTRAS, "all"}
    assert f"$ importstate status\n{CLI_MISSING}" in section


def test_the_hypothesis_entry_point_works_without_pytest(work):
    code = """
        import sys
        from hypothesis import find, strategies as st
        from importstate import Operation, State
        found = find(st.from_type(Operation), lambda op: op.state is State.DONE)
        print(type(found).__name__, found.state, "pytest" in sys.modules)
    """
    done = _without(["pytest", "_pytest"], code, cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Operation done False\n"
