"""`kimlabel` command line: models, label, merge, export, refit."""
from __future__ import annotations

import argparse
import json
import sys


def _species(text):
    return [s.strip() for s in text.split(",") if s.strip()]


def _shard(text):
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants I/N (0-based I), got {text!r}") from None
    return i, n


def cmd_models(args):
    from .discovery import models_for_species
    found = models_for_species(args.species)
    if args.json:
        print(json.dumps(found, indent=1))
    else:
        for m in found:
            sm = ""
            if m.get("simulator_model"):
                sm = "  (simulator model: " + ("runs here through LAMMPS" if m["runs_here"] == "yes"
                                               else f"cannot run here: {m['runs_here']}") + ")"
            print(f"{m['kim_id']}  [{' '.join(m['species'])}]{sm}")
        print(f"{len(found)} installed models support {','.join(args.species)}", file=sys.stderr)


def cmd_label(args):
    from .job import LabelJob
    from .potentials import resolve
    job = LabelJob(inputs=args.inputs, potentials=resolve(args.potentials), out=args.out, forces=args.forces,
                   jobs=args.jobs, resume=args.resume, shard=args.shard, energy_key=args.energy_key,
                   csv=args.csv, progress=not args.quiet, scheduler=args.scheduler)
    summary = job.run()
    print(f"wrote {args.out}: {summary['n_configs']} configurations", file=sys.stderr)
    for name, counts in summary["status"].items():
        bad = {k: v for k, v in counts.items() if k != "ok"}
        if bad:
            print(f"  {name}: " + ", ".join(f"{v} {k}" for k, v in sorted(bad.items())), file=sys.stderr)
        if summary.get("unsupported", {}).get(name):
            print(f"  {name} ({job.potentials[name]}) does not support species "
                  f"{', '.join(summary['unsupported'][name])}", file=sys.stderr)
        for why, ids in sorted(summary.get("errors", {}).get(name, {}).items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(map(str, ids[:5])) + (", ..." if len(ids) > 5 else "")
            print(f"  {name} model_error on {len(ids)} configuration(s) (config_id {shown}): {why}", file=sys.stderr)


def cmd_merge(args):
    from .merge import merge
    df = merge(args.shards, args.out)
    print(f"wrote {args.out}: {len(df)} configurations from {len(args.shards)} shards", file=sys.stderr)


def cmd_export(args):
    from .export import export
    n = export(args.table, args.format, args.out, args.energy_key_template, args.ref_keys)
    print(f"wrote {args.out}: {n} configurations", file=sys.stderr)


def cmd_refit(args):
    from .refit import refit
    from .potentials import resolve
    pots = resolve(args.model)
    if len(pots) != 1:
        raise ValueError(f"refit takes one model, got the set {args.model!r} ({', '.join(pots)})")
    (name, kim_id), = pots.items()
    report = refit(kim_id, args.data, args.split, args.out, args.params, args.forces_weight, args.maxiter,
                   args.keep_signs, name)
    print(json.dumps(report, indent=1))
    print(f"wrote {args.out}: use it as --potentials {name}@{args.out}", file=sys.stderr)


EXAMPLES = {
    "models": "kimlabel models --species Si",
    "label": "kimlabel label data/samples/si_samples.extxyz --potentials si --forces --out si.parquet --jobs 2",
    "merge": "kimlabel merge shards/part*.parquet --out all.parquet",
    "export": "kimlabel export si.parquet --format extxyz --out si_eip.extxyz",
    "refit": "kimlabel refit SW_Balamane --data data/si_demo_dft.extxyz.gz --split split.csv --params A,lambda "
             "--out sw_refit.yaml",
}


def _command(sub, name: str, help: str):
    """A subcommand whose --help ends with an example."""
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                          epilog=f"example:\n  {EXAMPLES[name]}", formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser():
    p = argparse.ArgumentParser(prog="kimlabel", description="Multi-EIP energy and force tables from OpenKIM models.",
                                epilog="example:\n  " + EXAMPLES["label"], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = _command(sub, "models", "installed KIM models supporting some species (asked of the KIM API)")
    m.add_argument("--species", type=_species, required=True, help="comma list of element symbols, e.g. Si or Ag,Au")
    m.add_argument("--json", action="store_true", help="print JSON (KIM ID, species, simulator model or not)")
    m.set_defaults(func=cmd_models)
    lab = _command(sub, "label", "evaluate a potential set on configuration files into a table")
    lab.add_argument("inputs", nargs="+", help="files ase.io.read understands (extxyz, .gz too)")
    lab.add_argument("--potentials", required=True, help="system (si, al, agau) or comma list of names/KIM IDs; "
                                                         "NAME@params.yaml overrides parameters")
    lab.add_argument("--out", required=True, help="output table (.parquet); never replaced without --resume")
    lab.add_argument("--csv", action="store_true", help="also write a CSV copy")
    lab.add_argument("--forces", action="store_true", help="also write per-atom forces to TABLE.forces.parquet")
    lab.add_argument("--jobs", type=int, default=1, help="worker processes on this machine (default 1)")
    lab.add_argument("--scheduler", default=None,
                     help="run on a Dask cluster instead: local:N (N workers here), tcp://HOST:PORT, or a scheduler "
                          "JSON file (needs the dask extra)")
    lab.add_argument("--resume", action="store_true", help="continue an interrupted run (same command)")
    lab.add_argument("--shard", type=_shard, default=(0, 1), help="I/N: label config_id %% N == I only (job arrays)")
    lab.add_argument("--energy-key", default=None, help="info key holding the reference energy (eV)")
    lab.add_argument("--quiet", action="store_true", help="no progress bar")
    lab.set_defaults(func=cmd_label)
    mg = _command(sub, "merge", "combine the shard tables of one run (--shard) into one table")
    mg.add_argument("shards", nargs="+", help="the shard tables (every shard of the run, each once)")
    mg.add_argument("--out", required=True, help="merged table (.parquet; its forces file beside it)")
    mg.set_defaults(func=cmd_merge)
    ex = _command(sub, "export", "a table's configurations with every EIP's labels, as extxyz or an ASE database")
    ex.add_argument("table", help="a kimlabel table (its input files must be unchanged)")
    ex.add_argument("--format", required=True, choices=["extxyz", "asedb"], help="extxyz file or ASE database")
    ex.add_argument("--out", required=True, help="new file (an existing one is never replaced)")
    ex.add_argument("--energy-key-template", default="energy__{name}", help="info key of each EIP's energy (eV)")
    ex.add_argument("--ref-keys", choices=["REF"], help="reference energy and forces as REF_energy / REF_forces "
                                                        "(MACE's defaults) instead of the calculator's energy / forces")
    ex.set_defaults(func=cmd_export)
    rf = _command(sub, "refit", "fit a portable model's parameters to DFT (KLIFF), for NAME@refit.yaml")
    rf.add_argument("model", help="a short name from potentials.yaml or a KIM ID (portable models only)")
    rf.add_argument("--data", nargs="+", required=True, help="DFT files (energies; forces with --forces-weight)")
    rf.add_argument("--split", required=True, help="split CSV (kimtrain split): fits on its train marks only")
    rf.add_argument("--params", type=_species, help="parameters to fit, e.g. A,lambda (default: every real, "
                                                    "non-cutoff one)")
    rf.add_argument("--forces-weight", type=float, default=0.0, help="weight of the force residuals (default 0)")
    rf.add_argument("--maxiter", type=int, default=100, help="L-BFGS-B iterations (default 100)")
    rf.add_argument("--keep-signs", action="store_true", help="each fitted value keeps the sign of the model's own "
                                                             "(bounds at 0)")
    rf.add_argument("--out", required=True, help="parameter YAML to write (never over an existing file)")
    rf.set_defaults(func=cmd_refit)
    return p


def run_command(prog: str, args, interrupted: str | None = None) -> int:
    """Run args.func; user errors print one line naming the problem (exit 2), Ctrl-C exits 130."""
    try:
        args.func(args)
    except KeyboardInterrupt as err:
        print(f"{prog}: {interrupted or err}", file=sys.stderr)
        return 130
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    return run_command("kimlabel", build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
