"""The shared parts of the generated reference documents (``docs/configuration.md``
from ``node.setup.config``, ``docs/metrics.md`` from ``node.ops.metrics``): the banner that
says how a file is regenerated and which test holds it to the code, and Markdown
table cells."""

from __future__ import annotations


def generated_header(title: str, sources: str, module: str, target: str, test: str) -> list[str]:
    """The title and the do-not-edit note of a document made by ``python -m module``."""
    return [
        f"# {title}",
        "",
        f"<!-- Generated from {sources} by",
        f"     `.venv/bin/python -m {module} > {target}`; do not edit by hand.",
        f"     {test} fails when this file and the code disagree. -->",
        "",
    ]


def table_cell(text: str) -> str:
    """``text`` fit for one Markdown table cell: pipes escaped, on one line."""
    return text.replace("|", "\\|").replace("\n", " ")
