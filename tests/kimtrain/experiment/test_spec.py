"""The experiment file is typed: a misspelt key anywhere stops before any work, naming the key,
where it is and the file; omitted lists take the documented defaults."""
import pytest
import yaml

from kimtrain.cli import main
from kimtrain.experiment.spec import DEFAULT_STRATEGIES, load_spec

from conftest import demo_spec


def write(tmp_path, spec):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def edit(spec, place, key, value):
    node = spec
    for step in place:
        node = node[step]
    node[key] = value
    return spec


@pytest.mark.parametrize("place, key, value, bad, where", [
    ((), "modelz", ["schnet"], "modelz", "in the file"),
    (("datasets", 0), "potentialz", "si", "potentialz", "in datasets[0]"),
    (("datasets", 0, "split"), "trian", 0.2, "trian", "in datasets[0].split"),
    ((), "ablations", {"tukee": True}, "tukee", "in ablations"),
    ((), "quick", {"epoch": 2}, "epoch", "in quick"),
])
def test_a_misspelt_key_at_any_level_stops_before_any_work(tmp_path, capsys, place, key, value, bad, where):
    path = write(tmp_path, edit(demo_spec(), place, key, value))
    out = tmp_path / "out"
    assert main(["experiment", str(path), "--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: unknown key {bad!r} {where}" in err
    assert not out.exists()  # nothing was labelled, split or trained


@pytest.mark.parametrize("edit_args, message", [
    (((), "train", {"epochz": 3}), "unknown train option(s) ['epochz']"),
    (((), "variants", {"mp +F": {"strategy": "mp", "train.force_wieght": 1.0}}),
     "unknown option 'train.force_wieght' in variant 'mp +F'"),
    (((), "strategies", ["baseline", "lab"]), "strategies: unknown strategy 'lab'"),
    (((), "models", ["schnet", "schnett"]), "models: unknown model 'schnett'"),
    ((("datasets", 0), "pool_file", "no/such/pool.extxyz"), "datasets[0] (si-demo): no such file 'no/such/pool.extxyz'"),
    ((("datasets", 0, "split"), "train", 0.9), "datasets[0] (si-demo).split: fractions must be numbers >= 0 summing"),
    ((("datasets", 0, "split"), "stratify", "formula"), "split.stratify must be config_type, got 'formula'"),
    (((), "variants", {"delta +F": {"strategy": "delta", "adopt_choice_of": "deltaa"}}),
     "variants.delta +F.adopt_choice_of: 'deltaa' is not a strategy or another variant"),
])
def test_bad_values_are_named_with_the_file(tmp_path, capsys, edit_args, message):
    path = write(tmp_path, edit(demo_spec(), *edit_args))
    assert main(["experiment", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err
    assert not (tmp_path / "out").exists()


def test_omitted_lists_take_the_documented_defaults(tmp_path):
    spec = demo_spec()
    for key in ("strategies", "models", "seeds"):
        del spec[key]
    loaded = load_spec(write(tmp_path, spec))
    assert loaded.strategies == DEFAULT_STRATEGIES == ["baseline", "la", "mp", "mp+la"]
    assert loaded.model_names() == ["schnet", "soapnet", "cgcnn", "gemnet"]
    assert loaded.seeds == [0, 1, 2]
    assert loaded.datasets[0].split.stratify == "config_type" and loaded.quick.epochs == 3


def test_command_line_overrides_are_checked_too(tmp_path, capsys):
    path = write(tmp_path, demo_spec())
    assert main(["experiment", str(path), "--out", str(tmp_path / "out"), "--strategies", "baseline,mpp"]) == 2
    assert "unknown strategy 'mpp'" in capsys.readouterr().err


def test_a_variant_adopts_the_choice_of_the_run_it_names(tmp_path):
    from kimtrain.experiment.run import Execution, Plan, _plan_dataset
    spec = demo_spec()
    spec["strategies"] = ["delta"]
    spec["variants"] = {"delta +F": {"strategy": "delta", "train.force_weight": 1.0, "adopt_choice_of": "delta"}}
    spec["quick"] = {"models": ["schnet"], "pool_max": 40}
    loaded = load_spec(write(tmp_path, spec), quick=True)
    plan = Plan()
    _plan_dataset(plan, loaded, loaded.datasets[0], tmp_path / "out", Execution(quick=True))
    runs = {p.label: p for p in plan.runs}
    assert runs["delta +F"].choice_from == str(tmp_path / "out" / "si-demo" / "schnet" / "seed0" / "delta" / "metrics.json")
    assert runs["delta"].choice_from is None and runs["delta +F"].run.train.force_weight == 1.0


def test_the_command_line_keeps_the_variants_it_names(tmp_path, capsys):
    spec = demo_spec()
    spec["variants"] = {"baseline +F": {"strategy": "baseline", "train.force_weight": 1.0},
                        "mp +F": {"strategy": "mp", "train.force_weight": 1.0}}
    path = write(tmp_path, spec)
    assert list(load_spec(path, variants=["mp +F"]).variants) == ["mp +F"]
    assert load_spec(path, variants=["none"]).variants == {}
    assert main(["experiment", str(path), "--out", str(tmp_path / "out"), "--variants", "mp+F"]) == 2
    err = capsys.readouterr().err
    assert "--variants mp+F: not a variant" in err and "baseline +F, mp +F" in err and str(path) in err
    assert not (tmp_path / "out").exists()
