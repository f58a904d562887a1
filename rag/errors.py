"""One project error type, which the CLI and the app print as a single line."""

from __future__ import annotations

from pathlib import Path


class RagError(Exception):
    """An error a user can act on; its message says what is wrong and how to fix it."""


class LoaderError(RagError):
    """A file that cannot be read as papers; names the file and, when known, the line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
