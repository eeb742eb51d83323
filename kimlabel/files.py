"""Files that are whole or absent: written beside their place, then moved in one atomic step."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path):
    """Yield a temporary path beside `path`; when the block succeeds it replaces `path` atomically,
    so an interruption never leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path, text: str):
    with replacing(path) as tmp:
        tmp.write_text(text)
