"""Stop a run before any work when one of its models cannot be created here."""
from __future__ import annotations

import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .evaluator import creation_failures
from .session import flush_c_stdio, process_context, silence_stdout


def _creatable(potentials) -> dict:
    """creation_failures in a child process: from a scratch directory, banners muted."""
    os.chdir(tempfile.mkdtemp(prefix="kimlabel-"))  # the KIM API writes kim.log to the cwd
    silence_stdout()
    return creation_failures(potentials)


def crashed(potentials) -> RuntimeError:
    """The error for a process that died while creating these models."""
    return RuntimeError(f"creating the models {', '.join(potentials)} crashed the process")


def refuse(failed: dict):
    """ValueError naming each model that could not be created, with why."""
    if failed:
        raise ValueError("; ".join(f"{name}: {why}" for name, why in failed.items()))


def check_models(potentials):
    """Stop before any work, naming each EIP whose model cannot be created, from a child process
    (creating a model may crash). Pool runs check in their own workers instead (ProcessEngine.check)."""
    flush_c_stdio()
    with ProcessPoolExecutor(1, mp_context=process_context()) as pool:
        try:
            failed = pool.submit(_creatable, dict(potentials)).result()
        except BrokenProcessPool:
            raise crashed(potentials) from None
    refuse(failed)
