"""The task runner behind `kimtrain experiment --jobs`: order, failures, nothing finished lost."""
import io
from pathlib import Path

import pytest

from kimtrain.experiment.parallel import Task, run_tasks


def write(path, text):
    Path(path).write_text(text)
    return text


def append_after(path, needed):
    text = Path(needed).read_text() + "+" + Path(path).name
    Path(path).write_text(text)
    return text


def fail(message):
    raise ValueError(message)


@pytest.mark.parametrize("jobs", [1, 2])
def test_needs_run_first_and_a_failure_keeps_finished_work(tmp_path, jobs):
    a, b = tmp_path / "a", tmp_path / "b"
    tasks = [Task("b", append_after, (b, a), ["a"]), Task("a", write, (a, "a")),
             Task("boom", fail, ("planted",), ["b"])]
    log = io.StringIO()
    with pytest.raises(RuntimeError, match="boom failed: planted"):
        run_tasks(tasks, jobs=jobs, log=log)
    assert a.read_text() == "a" and b.read_text() == "a+b"  # b ran after a; both kept
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("[1/3] a done") and lines[1].startswith("[2/3] b done") and "ETA" in lines[1]


def test_results_and_unknown_needs(tmp_path):
    assert run_tasks([Task("x", write, (tmp_path / "x", "hello"))], jobs=2, log=io.StringIO()) == {"x": "hello"}
    with pytest.raises(ValueError, match="task y needs unknown task"):
        run_tasks([Task("y", write, (tmp_path / "y", ""), ["nowhere"])])


def test_tasks_that_others_wait_on_start_first(tmp_path):
    """A shared pretraining goes before independent trainings, so its dependants are not left for last."""
    tasks = [Task("la alpha", write, (tmp_path / "x", "")), Task("baseline", write, (tmp_path / "y", "")),
             Task("pretrain", write, (tmp_path / "p", "")),
             Task("mp+la alpha", write, (tmp_path / "q", ""), ["pretrain"]),
             Task("mp+la", write, (tmp_path / "r", ""), ["mp+la alpha"])]
    log = io.StringIO()
    run_tasks(tasks, jobs=1, log=log)
    order = [line.split("] ")[1].split(" done")[0] for line in log.getvalue().splitlines()]
    assert order == ["pretrain", "mp+la alpha", "la alpha", "baseline", "mp+la"]
