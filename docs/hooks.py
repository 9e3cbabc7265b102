"""MkDocs hooks: the pages importstate computes rather than keeps.

The REST API page is rendered from the OpenAPI document the server serves,
the command-line page from every command's own ``--help``, the names of the
top-level package from its ``__all__``, and the diagrams on the concepts page
from ``diagrams/`` (the SVG files where ``make diagrams`` drew them, else the
Mermaid text). Nothing here is written to ``docs/pages``: MkDocs gets the
generated pages as files of the build.
"""

from __future__ import annotations

import json
import pkgutil
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

import importstate
from importstate.cli import cli
from importstate.http import DEFAULT_MAX_BODY, openapi_document
from importstate.machine import DEFINITION, MachineDefinition
from importstate.steps import State, steps_of

ROOT = Path(__file__).resolve().parent.parent
DIAGRAMS = ROOT / "diagrams"
#: The import page's picture, shown by the README too.
SCREENSHOT = ROOT / "docs" / "import-page.png"
#: The generated pages, by their path inside the site.
REST_PAGE = "rest-api.md"
CLI_PAGE = "command-line.md"
NAMES_PAGE = "reference/index.md"
#: ``<!-- diagram: states -->`` on a page becomes that diagram.
_DIAGRAM = re.compile(r"<!-- diagram: (?P<name>[a-z]+) -->")
#: ``<!-- table: transitions -->`` becomes that table, computed from the machine.
_TABLE = re.compile(r"<!-- table: (?P<name>[a-z]+) -->")
#: The width ``--help`` is wrapped at on the command-line page.
HELP_WIDTH = 88


def public_modules() -> list[str]:
    """Every public module of the package (no ``_``-prefixed part), ``importstate`` itself aside."""
    return sorted(
        info.name
        for info in pkgutil.walk_packages(importstate.__path__, "importstate.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    )


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """End the navigation with the API reference: the top-level names, then each module."""
    modules = [{module: f"reference/{_module_page(module)}"} for module in public_modules()]
    config.nav = [*(config.nav or []), {"API reference": [{"importstate": NAMES_PAGE}, *modules]}]
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated pages, and the SVG diagrams that ``diagrams/`` holds."""
    pages = {
        REST_PAGE: rest_api_page(openapi_document(DEFAULT_MAX_BODY)),
        CLI_PAGE: command_line_page(cli),
        NAMES_PAGE: names_page(),
    }
    for module in public_modules():
        pages[f"reference/{_module_page(module)}"] = f"# `{module}`\n\n::: {module}\n"
    for uri, content in pages.items():
        files.append(File.generated(config, uri, content=content))
    files.append(File.generated(config, "images/import-page.png", abs_src_path=str(SCREENSHOT)))
    for svg in sorted(DIAGRAMS.glob("*.svg")):
        files.append(File.generated(config, f"diagrams/{svg.name}", abs_src_path=str(svg)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:  # noqa: ARG001 - MkDocs passes every argument by name
    """Put the content of each ``<!-- diagram: NAME -->`` and ``<!-- table: NAME -->``."""
    markdown = _TABLE.sub(lambda match: TABLES[match["name"]](DEFINITION), markdown)
    return _DIAGRAM.sub(lambda match: diagram(match["name"], page), markdown)


#: A Sphinx role the docstrings use (``:class:`~importstate.errors.X```), as Markdown renders it.
_ROLE = re.compile(r":(?:class|func|meth|data|attr|exc|mod|obj):<code>(~?)([\w.]+)(\(\))?</code>")


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:  # noqa: ARG001 - MkDocs passes every argument by name
    """The docstrings' Sphinx roles as code, linked to the API reference where they are whole."""
    return _ROLE.sub(_role, html)


def _role(match: re.Match[str]) -> str:
    tilde, name, call = match.groups()
    shown = (name.rsplit(".", 1)[-1] if tilde else name) + (call or "")
    if name.startswith("importstate."):
        return f'<autoref identifier="{name}" optional><code>{shown}</code></autoref>'
    return f"<code>{shown}</code>"


def steps_table(_definition: MachineDefinition) -> str:
    """Each state and the progress steps that fall into it, in their natural order."""
    rows = ["| state | its steps |", "|---|---|"]
    for state in State:
        steps = ", ".join(f"`{step}`" for step in steps_of(state)) or "(no operation)"
        rows.append(f"| `{state}` | {steps} |")
    return "\n".join(rows)


def transitions_table(definition: MachineDefinition) -> str:
    """One row per transition of ``definition``: event, from, to, the step it sets, its meaning."""
    rows = ["| event | from | to | step it sets | meaning |", "|---|---|---|---|---|"]
    for move in definition.transitions:
        sources = ", ".join(f"`{state}`" for state in move.sources)
        step = f"`{move.step}`" if move.step is not None else (
            "the caller's, later than the current one" if move.forward_only else "unchanged")
        if move.invalidates:
            step += "; `valid` becomes false"
        if move.after_step is not None:
            step += f", from `{move.after_step}` only"
        rows.append(f"| `{move.event}` | {sources} | `{move.dest}` | {step} | {move.doc} |")
    return "\n".join(rows)


TABLES = {"steps": steps_table, "transitions": transitions_table}


def diagram(name: str, page: Page) -> str:
    """The diagram ``diagrams/NAME``: its SVG as an image if drawn, else its Mermaid block."""
    if (DIAGRAMS / f"{name}.svg").exists():
        depth = page.file.src_uri.count("/")
        return f"![The {name} diagram]({'../' * depth}diagrams/{name}.svg)"
    mermaid = (DIAGRAMS / f"{name}.mmd").read_text(encoding="utf-8")
    return f"```mermaid\n{mermaid}```"


# -- the REST API, from the OpenAPI document ------------------------------------------------


def rest_api_page(document: Mapping[str, Any]) -> str:
    """A section per route of ``document``: method, path, permission, body and responses."""
    lines = [
        "# REST API reference",
        "",
        "Generated from the OpenAPI document that `importstate serve` answers at",
        "`GET /api/v1/openapi.json`, so it is the server's own description of each",
        "route. [The REST API](guide/rest.md) guide shows a whole import with `curl`.",
        "",
        document["info"]["description"],
        "",
        "| method | path | permission | summary |",
        "|---|---|---|---|",
    ]
    routes = list(_routes(document))
    for method, path, operation in routes:
        lines.append(
            f"| {method.upper()} | [`{path}`](#{_slug(method, path)}) "
            f"| {_permission(operation)} | {operation['summary']} |"
        )
    for method, path, operation in routes:
        lines += ["", f"## {method.upper()} `{path}` {{#{_slug(method, path)}}}", ""]
        lines += [operation["summary"] + ".", "", f"**Permission:** {_permission(operation)}."]
        for parameter in operation.get("parameters", []):
            lines.append(
                f"- parameter `{parameter['name']}` ({parameter['in']}): "
                f"{parameter.get('description', '')}"
            )
        body = operation.get("requestBody")
        if body is not None:
            lines += ["", "**Request body** (" + ", ".join(f"`{kind}`" for kind in body["content"])
                      + "):", ""]
            schema = next(iter(body["content"].values()))["schema"]
            lines += _schema_block(schema)
        lines += ["", "**Responses:**", "", "| status | meaning | body |", "|---|---|---|"]
        for status, response in sorted(operation["responses"].items()):
            content = response.get("content", {}).get("application/json")
            shape = _schema_summary(content["schema"]) if content else ""
            lines.append(f"| {status} | {response['description']} | {shape} |")
    lines += ["", "## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        lines += [f"### {name} {{#schema-{name.lower()}}}", ""]
        lines += _schema_block(schema)
        lines.append("")
    return "\n".join(lines) + "\n"


def _routes(document: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def _slug(method: str, path: str) -> str:
    return f"{method}-" + re.sub(r"[^a-z0-9]+", "-", path.removeprefix("/api/v1/").lower())


def _permission(operation: Mapping[str, Any]) -> str:
    if operation.get("security") == []:
        return "none (no credentials)"
    description = operation.get("description", "")
    found = re.search(r"Permission required: ([\w-]+)", description)
    return f"`{found[1]}`" if found else "logged in"


def _schema_summary(schema: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#schema-{name.lower()})"
    if schema.get("type") == "array" and "items" in schema:
        return "array of " + _schema_summary(schema["items"])
    text = json.dumps(schema, separators=(", ", ": "))
    if len(text) > 80:  # noqa: PLR2004 - what fits a table cell
        kind = schema.get("type", "value")
        keys = ", ".join(f"`{key}`" for key in schema.get("properties", {}))
        return f"{kind} {keys}".strip()
    return f"`{text}`".replace("|", "\\|")


def _schema_block(schema: Mapping[str, Any]) -> list[str]:
    return ["```json", json.dumps(schema, indent=2), "```"]


# -- the command line, from --help ------------------------------------------------------------


def command_line_page(group: click.Group) -> str:
    """A section per command of ``group``, holding its ``--help`` as Click prints it."""
    lines = [
        "# Command-line reference",
        "",
        "Generated from each command's `--help` (`importstate COMMAND --help` prints",
        "the same text). [The command line](guide/command-line.md) guide explains exit",
        "statuses, output, Ctrl-C and SIGTERM.",
        "",
    ]
    settings = {**group.context_settings, "terminal_width": HELP_WIDTH,
                "max_content_width": HELP_WIDTH}
    root = click.Context(group, info_name="importstate", **settings)
    commands = list(_commands(group, root, ()))
    lines += ["| command | what it does |", "|---|---|"]
    for path, command, _context in commands:
        name = " ".join(path)
        summary = command.get_short_help_str(limit=200)
        lines.append(f"| [`{name}`](#{_command_slug(path)}) | {summary} |")
    lines += ["", "## importstate", "", "```text", group.get_help(root), "```"]
    for path, command, context in commands:
        lines += ["", f"## importstate {' '.join(path)} {{#{_command_slug(path)}}}", "", "```text",
                  command.get_help(context), "```"]
    return "\n".join(lines) + "\n"


def _command_slug(path: tuple[str, ...]) -> str:
    return "importstate-" + "-".join(path)


def _commands(
    group: click.Group, parent: click.Context, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    for name, command in group.commands.items():
        context = click.Context(command, info_name=name, parent=parent,
                                terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH)
        yield (*path, name), command, context
        if isinstance(command, click.Group):
            yield from _commands(command, context, (*path, name))


# -- the top-level names ------------------------------------------------------------------------


def names_page() -> str:
    """``importstate.__all__``, each name linked to the module page that documents it."""
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings. `import importstate` gives the names below;",
        "each is documented on the page of the module that defines it.",
        "",
        "| name | module |",
        "|---|---|",
    ]
    for name in importstate.__all__:
        module = defining_module(name)
        # A type alias has no docstring of its own, so no heading: its link is its module's.
        anchor = "" if name in _ALIAS_MODULES else f"#{module}.{name}"
        lines.append(f"| [`{name}`]({_module_page(module)}{anchor}) | `{module}` |")
    return "\n".join(lines) + "\n"


def defining_module(name: str) -> str:
    """The public module whose reference page documents ``importstate.<name>``."""
    module = getattr(getattr(importstate, name), "__module__", "")
    if not module.startswith("importstate.") or module.startswith("importstate.stores._"):
        return _ALIAS_MODULES.get(name, "importstate.stores")
    return module


#: Type aliases (their ``__module__`` is ``types``) and their modules.
_ALIAS_MODULES = {
    "Importer": "importstate.importers",
    "OperationEvent": "importstate.events",
    "Listener": "importstate.events",
}


def _module_page(module: str) -> str:
    return module.removeprefix("importstate.").replace(".", "-") + ".md"
