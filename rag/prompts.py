"""Prompt templates live in `prompts/` as plain files; this fills them in.

Templates use `$name` placeholders (string.Template), so braces in paper text or in
JSON examples never need escaping.
"""

from __future__ import annotations

from functools import cache
from string import Template

from rag.config import PROMPTS_DIR
from rag.errors import RagError


@cache
def _template(name: str) -> Template:
    path = PROMPTS_DIR / f"{name}.md"
    try:
        return Template(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RagError(f"prompt template {path} is missing") from err


def render(name: str, **values: str) -> str:
    return _template(name).substitute(**values)
