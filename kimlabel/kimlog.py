"""The KIM API's own account of a failure: the error lines it writes to kim.log.

kimpy reports a failed compute as a bare RuntimeError and a failed refresh not at all; the KIM
API and the model drivers write why (`refresh: Parameter B (Si-Si) may not be smaller than
zero.`) to kim.log in the working directory. A KIMLog reads what was appended since its last look.
"""
from __future__ import annotations

import os
from pathlib import Path


class KIMLog:
    """New lines of kim.log (in the working directory when made) since the previous look."""

    def __init__(self, path: str | Path = "kim.log"):
        self.path = Path(path).resolve()
        self.offset = self._size()

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def errors(self) -> list[str]:
        """The messages of the error lines appended since the last call (oldest first)."""
        size = self._size()
        if size < self.offset:  # the log was replaced
            self.offset = 0
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            text = fh.read(size - self.offset).decode("utf-8", "replace")
        self.offset = size
        out = []
        for line in text.splitlines():
            fields = line.split(" * ", 5)  # date * count * severity * object * file:line * message
            if len(fields) == 6 and fields[2].strip() == "error":
                out.append(fields[5].strip())
        return out

    def last_error(self) -> str | None:
        """The first error message appended since the last look (the model's own, before the KIM
        API's follow-up 'routine returned error'), or None."""
        errors = self.errors()
        return errors[0] if errors else None
