"""The documentation site: its generated pages, the behaviour page, and the README's pointers."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import click
import griffe
import pytest
from click.testing import CliRunner
from markdown.extensions.toc import slugify

import importstate
from importstate import diagrams
from importstate.cli import cli
from importstate.http import DEFAULT_MAX_BODY, ENDPOINTS, openapi_document
from importstate.machine import DEFINITION

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
PAGES = DOCS / "pages"
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: The parts of the behaviour page, in their order; code and tests cite them by anchor.
BEHAVIOUR_PARTS = [
    "steps", "states", "document", "service", "counts", "durability", "rest", "records",
    "selection", "files", "file-api",
]


def _load_hooks():
    spec = importlib.util.spec_from_file_location("importstate_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


def _page(src_uri):
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))


def _section(markdown, heading):
    """The text under ``heading`` up to the next heading of its level or higher."""
    level = heading.split(" ", 1)[0]
    start = markdown.index(heading + "\n")
    rest = markdown[start + len(heading) + 1:]
    found = re.search(rf"^#{{1,{len(level)}}} ", rest, re.MULTILINE)
    return rest[: found.start()] if found else rest


# -- the REST API page, from the OpenAPI document ---------------------------------------------


def test_the_rest_page_has_one_section_per_route_of_the_openapi_document():
    document = openapi_document(DEFAULT_MAX_BODY)
    page = hooks.rest_api_page(document)
    routes = [(method.upper(), path) for path, item in document["paths"].items() for method in item]
    headings = re.findall(r"^## (GET|POST) `([^`]+)`", page, re.MULTILINE)
    assert headings == routes
    assert len(routes) == len(ENDPOINTS) + 2  # login and the document itself


def test_the_rest_page_names_each_routes_permission_body_and_responses():
    document = openapi_document(DEFAULT_MAX_BODY)
    page = hooks.rest_api_page(document)
    for endpoint in ENDPOINTS:
        section = _section(page, f"## {endpoint.method} `{endpoint.path}` "
                                 f"{{#{endpoint.method.lower()}-"
                                 + re.sub(r"[^a-z0-9]+", "-", endpoint.name.lower()) + "}")
        wanted = f"`{endpoint.permission}`" if endpoint.permission else "logged in"
        assert f"**Permission:** {wanted}." in section
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        statuses = re.findall(r"^\| (\d{3}) \|", section, re.MULTILINE)
        assert statuses == sorted(operation["responses"])
        if endpoint.body is not None:
            shown = re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1)
            assert json.loads(shown) == endpoint.body
    login = _section(page, "## POST `/api/v1/login` {#post-login}")
    assert "**Permission:** none (no credentials)." in login


# -- the command line page, from --help ---------------------------------------------------------


def _every_command(group=cli, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _every_command(command, (*path, name))


def test_the_command_line_page_holds_each_commands_help_as_the_command_prints_it():
    page = hooks.command_line_page(cli)
    runner = CliRunner()
    commands = list(_every_command())
    assert len(re.findall(r"^## importstate ", page, re.MULTILINE)) == len(commands)
    for path, _command in [((), cli), *commands]:
        printed = runner.invoke(cli, [*path, "--help"], prog_name="importstate",
                                terminal_width=hooks.HELP_WIDTH,
                                max_content_width=hooks.HELP_WIDTH)
        assert printed.exit_code == 0
        assert f"```text\n{printed.output}" in page, " ".join(path)


# -- the API reference ----------------------------------------------------------------------------


def test_the_names_page_links_every_top_level_name_to_a_module_with_a_page():
    page = hooks.names_page()
    modules = hooks.public_modules()
    rows = re.findall(r"^\| \[`(\w+)`\]\(([\w-]+)\.md(#[\w.]+)?\) \| `([\w.]+)` \|$", page,
                      re.MULTILINE)
    assert [name for name, *_ in rows] == list(importstate.__all__)
    for name, page_name, anchor, module in rows:
        assert module in modules
        assert page_name == module.removeprefix("importstate.").replace(".", "-")
        assert anchor in {"", f"#{module}.{name}"}
        assert name in importlib.import_module(module).__all__


def test_the_docstrings_sphinx_roles_become_code_linked_where_the_name_is_whole():
    html = ("<p>Raises :class:<code>~importstate.errors.ImportStateError</code>; see "
            ":meth:<code>run()</code> and :data:<code>importstate.machine.DEFINITION</code>.</p>")
    assert hooks.on_page_content(html, None, None, None) == (
        '<p>Raises <autoref identifier="importstate.errors.ImportStateError" optional>'
        "<code>ImportStateError</code></autoref>; see <code>run()</code> and "
        '<autoref identifier="importstate.machine.DEFINITION" optional>'
        "<code>importstate.machine.DEFINITION</code></autoref>.</p>")


def test_every_public_module_gets_a_reference_page_and_none_private():
    modules = hooks.public_modules()
    assert {"importstate.service", "importstate.stores", "importstate.testing.strategies",
            "importstate.http", "importstate.cli"} <= set(modules)
    assert not [module for module in modules if "._" in module]


def test_comments_above_an_assignment_are_its_docstring_in_the_reference():
    spec = importlib.util.spec_from_file_location("importstate_griffe_comments",
                                                  DOCS / "griffe_comments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = (
        "#: How many users a batch holds,\n"
        "#: and counts.\n"
        "BATCH = 50\n"
        "\n"
        "UNSAID = 1\n"
        "# a comment, not a docstring\n"
        "PLAIN = 2\n"
        "\n"
        "class Kind:\n"
        "    #: The wire name.\n"
        "    wire = 'user'\n"
        "    given = 'x'\n"
        '    """Its own docstring wins."""\n'
    )
    extensions = griffe.load_extensions(module.CommentDocstrings)
    with griffe.temporary_visited_module(code, extensions=extensions) as visited:
        assert visited["BATCH"].docstring.value == "How many users a batch holds, and counts."
        assert visited["UNSAID"].docstring is None
        assert visited["PLAIN"].docstring is None
        assert visited["Kind.wire"].docstring.value == "The wire name."
        assert visited["Kind.given"].docstring.value == "Its own docstring wins."


# -- the concepts page ----------------------------------------------------------------------------


def test_a_diagram_is_its_svg_where_drawn_and_its_mermaid_otherwise(tmp_path, monkeypatch):
    monkeypatch.setattr(hooks, "DIAGRAMS", tmp_path)
    (tmp_path / "states.mmd").write_text(diagrams.state_diagram(), encoding="utf-8")
    mermaid = hooks.diagram("states", _page("concepts.md"))
    assert mermaid == f"```mermaid\n{diagrams.state_diagram()}```"
    (tmp_path / "states.svg").write_text("<svg/>", encoding="utf-8")
    assert hooks.diagram("states", _page("concepts.md")) == (
        "![The states diagram](diagrams/states.svg)")
    assert hooks.diagram("states", _page("guide/x.md")).endswith("(../diagrams/states.svg)")


def test_the_concepts_page_markers_become_the_machines_tables_and_diagrams():
    concepts = (PAGES / "concepts.md").read_text(encoding="utf-8")
    rendered = hooks.on_page_markdown(concepts, _page("concepts.md"), None, None)
    assert "<!--" not in rendered
    rows = re.findall(r"^\| `(\w+)` \| `\w+`", rendered, re.MULTILINE)
    assert [event for event in rows if event in {t.event for t in DEFINITION.transitions}] == [
        t.event for t in DEFINITION.transitions]
    for state in importstate.State:
        assert f"| `{state}` |" in rendered


# -- the behaviour page -------------------------------------------------------------------------


def test_the_behaviour_page_has_a_stable_anchor_per_part():
    page = (PAGES / "behaviour.md").read_text(encoding="utf-8")
    anchors = re.findall(r"^## .* \{#([a-z-]+)\}$", page, re.MULTILINE)
    assert anchors == BEHAVIOUR_PARTS


# -- the README ---------------------------------------------------------------------------------


def test_the_readme_opens_with_what_it_is_how_to_install_and_the_two_commands():
    title, opening, rest = README.split("\n\n", 2)
    assert title == "# importstate"
    assert opening.endswith(".")
    assert ". " not in opening.replace("\n", " ")  # one sentence
    blocks = re.findall(r"```sh\n(.*?)```", rest, re.DOTALL)
    assert blocks[0].startswith("pip install 'importstate[all]'")
    assert re.findall(r"^make (\w+)", blocks[1], re.MULTILINE) == ["demo", "test"]
    assert rest.index(blocks[1]) < rest.index("## ")


def test_the_readme_contents_lists_its_sections_in_order():
    contents = _section(README, "## Contents")
    listed = re.findall(r"^- \[([^\]]+)\]\(#([\w-]+)\)", contents, re.MULTILINE)
    after = README[README.index("## Contents"):]
    headings = [h for h in re.findall(r"^## (.+)$", after, re.MULTILINE) if h != "Contents"]
    assert [title for title, _ in listed] == headings
    for title, anchor in listed:
        assert anchor == re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_the_readme_says_how_to_build_and_serve_the_docs():
    section = _section(README, "## Documentation")
    assert "make docs" in section
    assert "mkdocs serve -f docs/mkdocs.yml" in section


def _anchors(page):
    """The heading anchors of a Markdown page, as MkDocs makes them."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.MULTILINE):
        given = re.search(r"\{#([\w-]+)\}$", heading)
        anchors.add(given[1] if given else slugify(heading.replace("`", ""), "-"))
    return anchors


def test_the_readmes_links_into_the_docs_name_pages_and_headings_that_exist():
    links = re.findall(r"\]\((docs/[^)#]+)(?:#([^)]*))?\)", README)
    assert len(links) > 20
    for link, anchor in links:
        assert (ROOT / link).exists(), link
        if anchor:
            assert anchor in _anchors(ROOT / link), f"{link}#{anchor}"


def test_the_docs_show_the_examples_the_tests_run():
    testing = (PAGES / "testing.md").read_text(encoding="utf-8")
    acme = (ROOT / "tests" / "downstream" / "test_acme.py").read_text(encoding="utf-8")
    example = acme.split('"""\n\n', 1)[1]
    assert "```python\n" + example + "```" in testing
    files = (PAGES / "guide" / "files.md").read_text(encoding="utf-8")
    teams = re.search(r"```python\nfrom importstate.records import DataType\n.*?```", README,
                      re.DOTALL).group(0)
    assert teams in files


# -- the build ------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_the_site_builds_strict_with_every_generated_page(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "-f", str(DOCS / "mkdocs.yml"), "-d", str(tmp_path)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stderr
    rest = (tmp_path / "rest-api" / "index.html").read_text(encoding="utf-8")
    assert all(endpoint.path in rest for endpoint in ENDPOINTS)
    service = (tmp_path / "reference" / "service" / "index.html").read_text(encoding="utf-8")
    assert 'id="importstate.service.ImportService.run"' in service
    behaviour = (tmp_path / "behaviour" / "index.html").read_text(encoding="utf-8")
    assert all(f'id="{part}"' in behaviour for part in BEHAVIOUR_PARTS)
    for module in hooks.public_modules():
        page = module.removeprefix("importstate.").replace(".", "-")
        assert (tmp_path / "reference" / page / "index.html").exists(), module


# -- the references to the behaviour page ---------------------------------------------------------


def _citing_files():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "importstate").rglob("*.py"))
    yield from sorted((ROOT / "tests").rglob("*.py"))
    yield from sorted(PAGES.rglob("*.md"))


def test_nothing_cites_the_specification_the_behaviour_page_replaced():
    old = "SPEC " + "\N{SECTION SIGN}"
    citing = [str(path.relative_to(ROOT)) for path in _citing_files()
              if old in path.read_text(encoding="utf-8")]
    assert citing == []


def test_every_reference_to_the_behaviour_page_names_one_of_its_parts():
    cited = set()
    for path in _citing_files():
        text = path.read_text(encoding="utf-8")
        parts = re.findall(r"Behaviour: ([a-z][a-z-]*)", text)
        parts += re.findall(r"behaviour\.md#([a-z-]+)", text)
        assert set(parts) <= set(BEHAVIOUR_PARTS), path
        cited.update(parts)
    assert len(cited) == len(BEHAVIOUR_PARTS)  # every part is cited somewhere
