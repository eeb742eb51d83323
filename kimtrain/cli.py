"""`kimtrain` command line: split, fit, evaluate, eip-report, experiment, tables, convert."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path



def cmd_split(a):
    from .data.dataset import load_dataset
    from .data.splits import make_split, write_split
    data = load_dataset(a.data, a.energy_key)
    n_pool = len(load_dataset(a.pool_file)) if a.pool_file else 0
    groups = None
    if a.stratify:
        if a.stratify != "config_type":
            raise ValueError("--stratify supports config_type")
        groups = [t or "" for t in data.config_type]
    split = make_split(len(data), a.seed, {"pool": a.pool, "train": a.train, "val": a.val, "test": a.test},
                       groups, n_pool)
    write_split(split, a.out)
    print(f"wrote {a.out}: " + ", ".join(f"{k} {v}" for k, v in split.mark.value_counts().items()), file=sys.stderr)


def cmd_fit(a):
    from .config import load
    from .strategies.fit import run_fit
    over = {"data": a.data, "split": a.split, "table": a.table, "out": a.out, "energy_key": a.energy_key,
            "model.name": a.model, "train.epochs": a.epochs, "train.device": a.device, "train.seed": a.seed,
            "strategy.strategy": a.strategy, "strategy.alpha": a.alpha, "strategy.cut": a.cut,
            "train.threads": a.threads, "strategy.eip": a.eip, "train.force_weight": a.force_weight,
            "strategy.pretrain_force_weight": a.pretrain_force_weight,
            "strategy.augment_force_weight": a.augment_force_weight}
    from .training import ddp
    run = load(a.config, over)
    if not run.data or not run.split:
        raise ValueError("fit needs --data and --split (or data/split in --config)")
    if a.ddp and not ddp.launched():
        raise ValueError("--ddp: start kimtrain under torchrun, e.g. torchrun --nproc-per-node 2 -m kimtrain fit ...")
    try:
        metrics, main_rank = run_fit(run, resume=a.resume), ddp.is_main()
    finally:
        ddp.shutdown()
    if main_rank:
        print(json.dumps(metrics, indent=1))


def cmd_evaluate(a):
    from .reporting.evaluate import evaluate
    import pandas as pd
    metrics = evaluate(a.run_dir, a.data, a.split, a.energy_key)
    for mark, m in metrics.items():
        force = f"   force MAE {m['force_mae']:.4f} eV/Å" if "force_mae" in m else ""
        print(f"{mark:6} config MAE {m['mae']:.4f} eV   per-atom MAE {m['mae_per_atom']:.4f} eV/atom{force}")
    by_type = pd.read_csv(f"{a.run_dir}/errors_by_config_type.csv")
    print("\nper config_type:\n" + by_type.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {a.run_dir}/predictions.csv, evaluation.json, errors_by_config_type.csv, parity.png"
          + (", forces.parquet, parity_forces.png" if any("force_mae" in m for m in metrics.values()) else ""),
          file=sys.stderr)


def cmd_eip_report(a):
    from .data.dataset import load_dataset
    from .reporting.eip import eip_report
    from .data.splits import read_split
    data = load_dataset(a.data, a.energy_key)
    overall, best = eip_report(data, a.table, read_split(a.split, len(data)))
    print("EIP accuracy on the test marks after per-species alignment on train (paper Table 2):")
    print(overall.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nBest EIP per config_type (test marks):")
    print(best.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def cmd_experiment(a):
    from .experiment.run import Execution, run_experiment
    from .experiment.spec import load_spec
    spec = load_spec(a.config, a.models, a.seeds, a.strategies, a.alphas, a.train_sizes, a.quick, a.variants)  # before any work
    run_experiment(spec, a.out, Execution(a.quick, a.jobs, a.threads, a.scheduler, a.results))
    print(f"wrote {a.out}/results.csv and {a.out}/results.md", file=sys.stderr)


def cmd_tables(a):
    from .reporting.results import write_tables
    for path in write_tables(a.results, a.page):
        print(f"wrote {path}", file=sys.stderr)


def cmd_validate(a):
    import torch
    from .validation.run import eip_targets, run_target, validate
    torch.set_num_threads(a.threads)
    targets = [run_target(r) for r in a.runs] + (eip_targets(a.eips) if a.eips else [])  # checked before any work
    df = validate(targets, a.out, a.system, a.quick, log=lambda line: print(line, file=sys.stderr, flush=True))
    print((Path(a.out) / "validation.md").read_text())
    print(f"wrote {a.out}/validation.csv, validation.md and phonons_*.png ({len(df)} rows)", file=sys.stderr)


def cmd_convert(a):
    from .data.readers import convert
    n = convert(a.format, a.source, a.out)
    print(f"wrote {a.out}: {n} configurations", file=sys.stderr)


EXAMPLES = {
    "split": "kimtrain split data/si_demo_dft.extxyz.gz --pool-file data/si_demo_pool.extxyz.gz --pool 0.5 "
             "--train 0.2 --val 0.1 --test 0.2 --stratify config_type --out split.csv",
    "fit": "kimtrain fit --data data/si_demo_dft.extxyz.gz data/si_demo_pool.extxyz.gz --split split.csv "
           "--table si.parquet --strategy mp --model schnet --out runs/mp",
    "evaluate": "kimtrain evaluate runs/mp --data data/si_demo_dft.extxyz.gz data/si_demo_pool.extxyz.gz --split split.csv",
    "eip-report": "kimtrain eip-report --data data/si_demo_dft.extxyz.gz data/si_demo_pool.extxyz.gz "
                  "--table si.parquet --split split.csv",
    "experiment": "kimtrain experiment configs/demo.yaml --out runs/demo --quick",
    "tables": "kimtrain tables results --page docs/results.md",
    "convert": "kimtrain convert deepmd data/agau/raw --out data/agau/agau.extxyz.gz",
    "validate": "kimtrain validate runs/si/si-shared/schnet/seed0/baseline --eips SW_Balamane,EDIP --out validation/si",
}


def _command(sub, name: str, help: str):
    """A subcommand whose --help ends with an example."""
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                          epilog=f"example:\n  {EXAMPLES[name]}", formatter_class=argparse.RawDescriptionHelpFormatter)


def _data(parser, required: bool = True):
    parser.add_argument("--data", nargs="+", required=required,
                        help="configuration files (anything ase.io reads), main data first, then the pool file; "
                             "the order gives config_id, as in the kimlabel table")
    parser.add_argument("--energy-key", help="info key of the DFT energy (eV); default: the frame's calculator energy")


def build_parser():
    from .models import names as model_names
    from .strategies import names as strategy_names
    p = argparse.ArgumentParser(prog="kimtrain", description="Neural interatomic potentials trained on DFT with "
                                "knowledge from OpenKIM EIPs: SchNet, SOAPNet, CGCNN, GemNet; baseline, LA, MP, "
                                "MP+LA, delta.", epilog="example:\n  " + EXAMPLES["experiment"],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = _command(sub, "split", "a reproducible pool/train/val/test split, as a CSV of config_id and mark")
    s.add_argument("data", nargs="+", help="the labelled configuration files, in kimlabel's order")
    s.add_argument("--out", required=True, help="split CSV to write")
    s.add_argument("--seed", type=int, default=0, help="random seed of the shuffle (default 0)")
    for name, default in (("pool", 0.8), ("train", 0.12), ("val", 0.04), ("test", 0.04)):
        s.add_argument(f"--{name}", type=float, default=default, help=f"fraction marked {name} (default {default})")
    s.add_argument("--stratify", default=None, help="config_type: the fractions hold within each config_type")
    s.add_argument("--pool-file", default=None, help="extra unlabelled configurations, all pool (ids follow DATA)")
    s.add_argument("--energy-key", default=None, help="info key of the DFT energy (eV)")
    s.set_defaults(func=cmd_split)
    f = _command(sub, "fit", "train one model with one strategy, select on validation, score on test")
    _data(f, required=False)
    f.add_argument("--split", help="split CSV (kimtrain split)")
    f.add_argument("--model", choices=model_names(), help="registered model (default schnet)")
    f.add_argument("--out", help="run folder: checkpoints, history.csv, TensorBoard logs, metrics.json")
    f.add_argument("--table", help="kimlabel table of the same files (for la, mp, mp+la, delta)")
    f.add_argument("--strategy", choices=strategy_names(), help="how EIP knowledge is used (default baseline)")
    f.add_argument("--alpha", type=float, help="LA weight (default: chosen on validation)")
    f.add_argument("--cut", type=float, help="LA class cut, eV/atom (default 0.1)")
    f.add_argument("--eip", help="delta: the EIP (table short name) the network corrects (default: chosen on val)")
    f.add_argument("--epochs", type=int, help="training epochs (default 100)")
    f.add_argument("--force-weight", type=float, help="weight of the DFT force MSE ((eV/Å)^2) in the loss (default 0: "
                                                      "energies only)")
    f.add_argument("--pretrain-force-weight", type=float, help="mp, mp+la: weight of the EIP forces in pretraining "
                                                               "(needs a table labelled with --forces)")
    f.add_argument("--augment-force-weight", type=float, help="la, mp+la: weight of the picked EIP's forces in the "
                                                              "augmented labels' Tukey term (needs --forces tables)")
    f.add_argument("--seed", type=int, help="training seed: weights, batches (default 0)")
    f.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    f.add_argument("--config", help="YAML with any option (model, train, strategy sections); flags override it")
    f.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    f.add_argument("--resume", action="store_true", help="continue an interrupted run from its last epoch")
    f.add_argument("--ddp", action="store_true", help="require torchrun's environment (data-parallel training; "
                                                      "under torchrun it is used with or without this flag)")
    f.set_defaults(func=cmd_fit)
    e = _command(sub, "evaluate", "predictions, MAEs, errors per config_type and parity plots of a trained run")
    e.add_argument("run_dir", help="a run folder of kimtrain fit or experiment (with best.pt)")
    _data(e)
    e.add_argument("--split", help="split CSV: errors per mark (default: every configuration as one set)")
    e.set_defaults(func=cmd_evaluate)
    r = _command(sub, "eip-report", "each EIP's accuracy against DFT after per-species alignment (Table 2)")
    _data(r)
    r.add_argument("--table", required=True, help="kimlabel table of the same files")
    r.add_argument("--split", required=True, help="split CSV: aligned on train, scored on test")
    r.set_defaults(func=cmd_eip_report)
    x = _command(sub, "experiment", "the paper's protocol over datasets, models, strategies and seeds")
    x.add_argument("config", help="experiment YAML (docs/kimtrain.md, Experiment files)")
    x.add_argument("--out", default="runs/experiment", help="experiment folder (default runs/experiment); rerun "
                                                            "with the same --out to continue")
    x.add_argument("--quick", action="store_true", help="few epochs, small pool, one seed (for tests)")
    x.add_argument("--models", type=lambda t: t.split(","), help="override the config's models, e.g. soapnet")
    x.add_argument("--seeds", type=lambda t: [int(v) for v in t.split(",")], help="override the seeds, e.g. 0,1")
    x.add_argument("--strategies", type=lambda t: t.split(","), help="override the strategies, e.g. baseline,mp")
    x.add_argument("--variants", type=lambda t: [v.strip() for v in t.split(",")],
                   help="keep only these variants of the config, by label, e.g. 'baseline +F,mp +F' (none: no variant)")
    x.add_argument("--alphas", type=lambda t: [float(v) for v in t.split(",")],
                   help="override the LA alpha grid, e.g. 0.1,1,10")
    x.add_argument("--train-sizes", type=lambda t: [float(v) if "." in v else int(v) for v in t.split(",")],
                   help="learning curve: counts or fractions of the train marks, e.g. 10,30,0.5")
    x.add_argument("--jobs", type=int, default=1, help="trainings run in parallel worker processes (default 1)")
    x.add_argument("--threads", type=int, help="CPU threads per training (default: the cores divided among jobs)")
    x.add_argument("--scheduler", help="run the trainings on a Dask cluster instead of --jobs: local:N, tcp://HOST:PORT "
                                       "or a scheduler JSON file (needs the dask extra)")
    x.add_argument("--results", help="folder keeping each finished run's metrics.json (commit it): runs found "
                                     "there are skipped, and `kimtrain tables` rebuilds the tables from it")
    x.set_defaults(func=cmd_experiment)
    t = _command(sub, "tables", "results tables from a --results folder, and the documentation's results page")
    t.add_argument("results", help="a folder kept by kimtrain experiment --results")
    t.add_argument("--page", help="also write this documentation page (e.g. docs/results.md) with the main tables "
                                  "and learning curves, its plots copied beside it")
    t.set_defaults(func=cmd_tables)
    v = _command(sub, "validate", "equation of state, elastic constants, phonons, vacancy and MD stability of "
                                  "trained runs and EIPs, beside DFT and experiment")
    v.add_argument("runs", nargs="*", help="run folders with best.pt (a Δ run includes its EIP); models with forces")
    v.add_argument("--eips", help="EIPs too: a potential set (si, al) or short names / KIM IDs, comma-separated")
    v.add_argument("--system", choices=["si", "al"], help="the crystal (default: the run's or EIP's element)")
    v.add_argument("--out", required=True, help="folder of the results; a rerun skips finished targets and steps")
    v.add_argument("--quick", action="store_true", help="short MD (0.2 ps, one seed), coarse meshes, small cells, "
                                                        "loose relaxations (for tests)")
    v.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the cells are small, and "
                                                          "more threads only wait on each other)")
    v.set_defaults(func=cmd_validate)
    c = _command(sub, "convert", "ANI-Al HDF5 or DeePMD folders to extxyz")
    c.add_argument("format", choices=["ani-al", "deepmd"], help="the source's format")
    c.add_argument("source", help="ANI-Al HDF5 file or DeePMD system folder")
    c.add_argument("--out", required=True, help="extxyz file to write (.gz compresses)")
    c.set_defaults(func=cmd_convert)
    return p


def main(argv=None):
    from kimlabel import run_command
    return run_command("kimtrain", build_parser().parse_args(argv),
                       "interrupted; rerun with --resume (fit) or the same command (experiment) to continue")


if __name__ == "__main__":
    sys.exit(main())
