"""The ``est-fairchem`` command: demo data, QM9 conversion, parameter counts, the demo.

Training, prediction and SLURM submission are fairchem's own ``fairchem`` command; this one
only adds what fairchem lacks. Heavy imports happen inside each subcommand.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import warnings
from pathlib import Path

from est_fairchem.errors import InputError, require_file


def _make_demo_data(args: argparse.Namespace) -> int:
    if args.systems is None:
        args.systems = {"s2ef": 48, "oc22": 48, "bulk": 48, "adsorption": 48,
                        "qm9": 200}.get(args.task, 64)
    if args.systems < 1 or args.frames < 1:
        print("est-fairchem: --systems and --frames must be >= 1", file=sys.stderr)
        return 2
    from est_fairchem.data.output_folder import check_output_folder

    # refuse an existing --out before the data modules import torch and fairchem (seconds)
    check_output_folder(args.out, overwrite=args.overwrite,
                        marker="demo_metadata.json" if args.task == "qm9" else "metadata.json")
    if args.task == "qm9":
        return _make_qm9_demo(args)
    if args.task in ("bulk", "adsorption"):
        return _make_database_demo(args)
    if args.task in ("s2ef", "oc22"):
        from est_fairchem.data.demo_s2ef import DemoSizes, make_oc22_demo, make_s2ef_demo

        sizes = DemoSizes(train_systems=args.systems, frames_per_system=args.frames)
        make = make_s2ef_demo if args.task == "s2ef" else make_oc22_demo
        metadata = make(args.out, seed=args.seed, sizes=sizes, overwrite=args.overwrite)
        unit = "frames"
    else:
        from est_fairchem.data.demo_relaxations import RelaxationSizes, make_relaxation_demo

        sizes = RelaxationSizes(train_systems=args.systems)
        metadata = make_relaxation_demo(args.out, seed=args.seed, sizes=sizes,
                                        overwrite=args.overwrite, task=args.task)
        unit = "systems"
    for split, count in metadata["samples"].items():
        print(f"{split:<14} {count:>5} {unit:<7} {args.out / split / 'data.lmdb'}")
    print(f"metadata       {args.out / 'metadata.json'}")
    return 0


def _make_database_demo(args: argparse.Namespace) -> int:
    held_out = max(2, args.systems // 4)
    if args.task == "bulk":
        from est_fairchem.data.demo_bulk import BulkSizes, make_bulk_demo

        metadata = make_bulk_demo(args.out, seed=args.seed, overwrite=args.overwrite,
                                  sizes=BulkSizes(train=args.systems, val=held_out, test=held_out))
    else:
        from est_fairchem.data.demo_adsorption import AdsorptionSizes, make_adsorption_demo

        metadata = make_adsorption_demo(
            args.out, seed=args.seed, overwrite=args.overwrite,
            sizes=AdsorptionSizes(train=args.systems, val=held_out, test=held_out))
    for split, count in metadata["rows"].items():
        print(f"{split:<6} {count:>5} rows   {args.out / f'{split}.db'}")
    print(f"metadata       {args.out / 'metadata.json'}")
    return 0


def _make_qm9_demo(args: argparse.Namespace) -> int:
    from est_fairchem.data.demo_qm9 import make_qm9_demo

    metadata = make_qm9_demo(args.out, molecules=args.systems, seed=args.seed,
                             overwrite=args.overwrite)
    last = f"dsgdb9nsd_{metadata['molecules']:06d}.xyz"
    print(f"{metadata['molecules']} molecules in the QM9 release layout (stand-in properties, "
          f"EMT energies): {args.out}/dsgdb9nsd_000001.xyz ... {last}")
    print(f"uncharacterized.txt lists {len(metadata['uncharacterized'])}: "
          f"{', '.join(map(str, metadata['uncharacterized']))}")
    print(f"convert: est-fairchem prepare-qm9 --raw {args.out} --out <DIR> "
          f"--exclude {args.out / 'uncharacterized.txt'}")
    return 0


def _prepare_qm9(args: argparse.Namespace) -> int:
    from est_fairchem.data.qm9_convert import prepare_qm9

    metadata = prepare_qm9(args.raw, args.out, exclude=args.exclude, seed=args.seed,
                           subtract_atomrefs=args.subtract_atomrefs, overwrite=args.overwrite)
    exclusion = metadata["exclusion"]
    print(f"read {metadata['records_read']} molecules from {args.raw}")
    if exclusion is not None:
        print(f"exclusion list {exclusion['file']}: {exclusion['indices_listed']} indices "
              f"accepted from {exclusion['data_lines']} data lines "
              f"({exclusion['skipped_lines']} header, rule and blank lines skipped); "
              f"{exclusion['excluded']} molecules excluded, "
              f"{exclusion['listed_but_absent']} listed indices not in the release")
    print(f"split of {metadata['molecules']} molecules, seed {metadata['seed']}:")
    for split, count in metadata["samples"].items():
        print(f"{split:<6} {count:>7} molecules {args.out / split / 'data.lmdb'}")
    energies = "atomization energies" if metadata["subtract_atomrefs"] else "total energies"
    print(f"targets: {', '.join(metadata['targets'])} (y [1, 12]; U0, U, H, G as {energies})")
    print(f"metadata {args.out / 'metadata.json'}")
    return 0


def _count_params(args: argparse.Namespace) -> int:
    from est_fairchem.tools.model_from_config import build_model, count_parameters, load_config

    for config_path in args.configs:
        model = build_model(load_config(config_path))
        counts = count_parameters(model)
        parts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items() if k != "total")
        print(f"{config_path}: {counts['total'] / 1e6:.2f}M parameters ({parts})")
    return 0


def _graph_stats(args: argparse.Namespace) -> int:
    from est_fairchem.testing.result_files import write_json
    from est_fairchem.tools.graph_stats import graph_statistics, mismatches
    from est_fairchem.tools.model_from_config import dotted_overrides

    if args.json is not None and args.json.exists() and not args.overwrite:
        raise InputError(f"--json {args.json} already exists: pass --overwrite to replace it")
    max_structures = None if args.all else args.max_structures
    stats = graph_statistics(args.config, split=args.split, max_structures=max_structures,
                             seed=args.seed, overrides=dotted_overrides(args.overrides))
    graph = stats.graph
    sampled = (f"all {stats.total:,}" if stats.structures == stats.total else
               f"a random sample of {stats.structures:,} of {stats.total:,} (seed {args.seed})")
    print(f"config:        {args.config} ({args.split} split: {sampled} structures)")
    print(f"graph:         max_radius {graph.max_radius:g} A, max_neighbors "
          f"{graph.max_neighbors}, use_pbc {graph.use_pbc}")
    print(f"avg_num_nodes: {stats.avg_num_nodes:.4f}  (atoms per structure, "
          f"{stats.min_atoms} to {stats.max_atoms})")
    print(f"avg_degree:    {stats.avg_degree:.4f}  (neighbours per atom within "
          f"{graph.max_radius:g} A; {100 * stats.capped_fraction:.1f} % of atoms reach "
          f"max_neighbors)")
    for key, value in stats.configured.items():
        print(f"config says:   {key} = {value:g}")
    wrong = mismatches(stats)
    for key, (value, measured) in wrong.items():
        print(f"mismatch:      {key} is {value:g}, the data give {measured:.4f} "
              f"({value / measured:.2f}x)")
    if args.json is not None:
        write_json(args.json, {"config": str(args.config), "split": args.split,
                               **stats.as_dict()})
        print(f"wrote:         {args.json}")
    return 1 if wrong and args.check else 0


def _model_files(entries: list[str]) -> dict[str, str]:
    """``NAME=PATH`` or ``PATH`` (named by its stem) -> {name: path}, names unique."""
    models: dict[str, str] = {}
    for entry in entries:
        name, _, path = entry.rpartition("=") if "=" in entry else (Path(entry).stem, "", entry)
        if name in models:
            raise InputError(f"model name {name!r} given twice: name them NAME=PATH")
        models[name] = path
    return models


def _compare(args: argparse.Namespace) -> int:
    from est_fairchem.compare.plan import run_study
    from est_fairchem.compare.report import write_report
    from est_fairchem.compare.study import Study, load_study

    command = "est-fairchem " + shlex.join(args.argv)
    if args.report_only:  # the report keeps naming the command that ran the study
        study = load_study(args.out / "study.json")
        summary = args.out / "summary.json"
        if summary.is_file():
            command = json.loads(summary.read_text()).get("command", command)
        write_report(study, args.out, command, args.unit, args.scale)
        print((args.out / "table.md").read_text())
        return 0
    study = Study(
        data=str(args.data), models=_model_files(args.models), seeds=args.seeds,
        steps=args.steps, batch_size=args.batch_size, train_size=args.train_size,
        lrs=args.lrs, sweep_seed=args.sweep_seed, evaluations=args.evaluations,
        equal_time=not args.no_equal_time, same_time=args.same_time, long_factor=args.long_factor,
        long_seeds=args.long_seeds, long_models=args.long_models,
        model_seeds=dict(args.model_seeds), pairs=[list(pair) for pair in args.pairs],
        later=args.later)
    work = args.work or Path("runs/compare") / args.out.name
    failed = run_study(study, args.out, work, jobs=args.jobs,
                       progress=lambda line: print(line, flush=True),
                       report=lambda: write_report(study, args.out, command, args.unit,
                                                   args.scale), long_first=args.long_first)
    write_report(study, args.out, command, args.unit, args.scale)
    print((args.out / "table.md").read_text())
    if failed:
        print(f"est-fairchem compare: {len(failed)} runs failed: {', '.join(failed)} "
              f"(logs under {work})", file=sys.stderr)
        return 1
    return 0


def _name_count(text: str) -> tuple[str, int]:
    """argparse type: ``NAME=N`` with N a positive integer."""
    name, _, count = text.partition("=")
    if not name or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=N (N a positive integer)")
    return name, int(count)


def _model_pair(text: str) -> tuple[str, str]:
    """argparse type: ``MODEL:REFERENCE``."""
    model, _, reference = text.partition(":")
    if not model or not reference:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MODEL:REFERENCE")
    return model, reference


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected a positive integer")
    return value


def _check_equivariance(args: argparse.Namespace) -> int:
    from est_fairchem.tools.check_equivariance import check_equivariance

    print(f"config:     {args.config}")
    print(f"checkpoint: {args.checkpoint or 'none (random weights, seed ' + str(args.seed) + ')'}",
          flush=True)
    result = check_equivariance(args.config, args.checkpoint, args.structure,
                                rotations=args.rotations, seed=args.seed,
                                progress=lambda line: print(line, flush=True))
    for name, output in result["outputs"].items():
        print(_equivariance_line(name, output, result["rotations"]))
        if output["at_noise_level"]:
            verb = "is" if output["degree"] == 0 else "are"
            print(f"note: this structure's {name} {verb} no larger than the change under "
                  "rotation (a symmetric structure, where it should vanish?), so the relative "
                  "error is not meaningful; compare the absolute change between models")
    if "forces" not in result["outputs"] and "forces" not in result["unchecked"]:
        print("forces: not predicted by this model")
    for name, reason in result["unchecked"].items():
        print(f"{name}: {reason}")
    return 0


_UNITS = {"energy": " eV", "forces": " eV/A"}


def _equivariance_line(name: str, output: dict, rotations: int) -> str:
    """One printed line of ``check-equivariance`` for output ``name``."""
    label, unit = ("force" if name == "forces" else name), _UNITS.get(name, "")
    head = (f"{label} relative error over {rotations} rotations: "
            f"{' ' if output['degree'] == 1 else ''}"
            f"max {output['error_max']:.2e}, mean {output['error_mean']:.2e}")
    if output["degree"] == 0:
        return (f"{head} (largest change {output['abs_error_max']:.2e}{unit} of "
                f"{output['value']:.4g}{unit})")
    return (f"{head} (largest component change {output['abs_error_max']:.2e}{unit}; "
            f"mean |component| {output['mean_abs']:.2e}{unit})")


def _warm_start(args: argparse.Namespace) -> int:
    from est_fairchem.tools.warm_start import warm_start_checkpoint

    summary = warm_start_checkpoint(
        args.source, args.config, args.out, symmetry_breaking=args.symmetry_breaking,
        seed=args.seed, overwrite=args.overwrite,
    )
    weights = "EMA weights" if summary["used_ema_weights"] else "weights"
    print(f"EST model ({summary['parameters'] / 1e6:.2f}M parameters) warm-started from the "
          f"{weights} of {args.source}")
    print(f"normalizers copied: {', '.join(summary['normalizers']) or 'none'}; "
          f"EMA state: {'yes' if summary['ema'] else 'no (config has no optim.ema_decay)'}")
    print(f"wrote {summary['out']}")
    start = ("--model.warm_start.checkpoint=" if summary["warm_start_config"]
             else "--checkpoint ")  # a WarmStartHydraModel config loads an EST file as it is
    print(f"train from it: fairchem --mode train --config-yml {args.config} "
          f"{start}{summary['out']}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from est_fairchem.tools.demo import DEMO_TASKS, print_summary, run_demo

    task = DEMO_TASKS[args.task]
    config = args.config or Path(task.config)
    data = args.data or Path(task.data)
    if not config.is_file():  # a given --config was checked by _refuse_missing_inputs
        raise InputError(
            f"{config} not found in {Path.cwd()}: run `est-fairchem demo` from the root of the "
            "est-fairchem repository (the folder with Makefile and configs/), or pass --config")
    summary = run_demo(config, data, args.run_dir, seed=args.seed, task=args.task)
    print_summary(summary)
    summary_file = args.run_dir / f"demo_summary_{args.task}.json"
    summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary:     {summary_file}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="est-fairchem",
        description="EST models for fairchem v1. Train and predict with the `fairchem` command; "
        "this tool makes demo data, converts the QM9 release, counts parameters, checks "
        "equivariance, warm-starts EST from EquiformerV2 checkpoints and runs the demo.",
    )
    debug_help = "show the Python traceback of an error (also EST_FAIRCHEM_DEBUG=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    common = argparse.ArgumentParser(add_help=False)  # --debug after the subcommand too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser(
        "make-demo-data", parents=[common],
        help="write small OC20-style LMDBs labelled with ASE's EMT, or a QM9-style raw release",
        description="Write OC20-style LMDBs (train, val, test_id, test_ood_ads, test_ood_cat, "
        "test_ood_both) of slab + adsorbate systems labelled with ASE's EMT calculator: "
        "s2ef = rattled frames with energies and forces; is2re / is2rs (the same records, as in "
        "OC20) = initial structures with their EMT-relaxed positions and energies. "
        "qm9 = a folder in the original QM9 release's layout (dsgdb9nsd_*.xyz files and "
        "uncharacterized.txt) of perturbed ASE G2 molecules (H, C, N, O) with EMT energies and "
        "stand-in properties, for `est-fairchem prepare-qm9`. bulk = ASE databases "
        "(train.db, val.db, test.db, fairchem's ase_db format) of strained, rattled fcc metals "
        "with EMT energies, forces and stress. oc22 = the s2ef records in OC22's layout "
        "(total energy as y, forces as force, oc22 = 1) for the oc22_lmdb configs. adsorption "
        "= ASE databases (train.db, val.db, test.db) of EMT-relaxed metal slabs with one "
        "adsorbate each and one label, the adsorption energy (energy only, no forces), for the "
        "configs/ase_db/energy configs.",
    )
    data.add_argument("--task", choices=["s2ef", "is2re", "is2rs", "qm9", "bulk", "oc22",
                                         "adsorption"],
                      default="s2ef", help="dataset kind (default s2ef)")
    data.add_argument("--out", type=Path, required=True, help="output folder")
    data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    data.add_argument("--systems", type=int, default=None,
                      help="training systems (default 48 for s2ef, oc22, bulk and adsorption, 64 for "
                      "is2re/is2rs); for qm9 the number of molecules (default 200)")
    data.add_argument("--frames", type=int, default=4, help="s2ef frames per system (default 4)")
    data.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    data.set_defaults(func=_make_demo_data)

    qm9 = sub.add_parser(
        "prepare-qm9", parents=[common],
        help="convert the original QM9 release into fairchem train/val/test LMDBs",
        description="Read the QM9 release (a folder of dsgdb9nsd_*.xyz files, the "
        "dsgdb9nsd.xyz.tar.bz2 archive, streamed, or the CSV files of the qm9pack package, "
        "which hold the 130,831 characterized molecules: --raw qm9pack), drop the molecules of --exclude, and write "
        "OUT/{train,val,test}/data.lmdb (fairchem LmdbDataset records: pos [n,3] in A, "
        "atomic_numbers, natoms, zero cell, pbc False, fixed 0, tags 1, sid = molecule index, "
        "the 12 targets mu, alpha, homo, lumo, gap, r2, zpve, u0, u, h, g, cv as named floats "
        "and y [1,12]; homo, lumo, gap, zpve, U0, U, H, G converted from Hartree to eV, mu in D, "
        "alpha in a0^3, r2 in a0^2, cv in cal/(mol K)), OUT/metadata.json and "
        "OUT/split_indices.npz. Split: np.random.default_rng(SEED).permutation over the "
        "molecules sorted by index; more than 120,000 molecules give train 110,000, val 10,000, "
        "test the rest (130,831 -> 110,000/10,000/10,831); fewer (demo data) are split in the "
        "same proportions: train = floor(N*110000/130831), val = floor(N*10000/130831), each at "
        "least 1, test the rest. Writes atomically.",
    )
    qm9.add_argument("--raw", type=Path, required=True,
                     help="folder of dsgdb9nsd_*.xyz files, the release's .tar.bz2 archive, "
                     "'qm9pack' (the CSV files of the installed qm9pack package: the whole "
                     "release offline, pip install 'est-fairchem[qm9pack]') or a folder of "
                     "qm9pack's qm9_part*.csv files")
    qm9.add_argument("--out", type=Path, required=True, help="output folder")
    qm9.add_argument("--exclude", type=Path, default=None, metavar="UNCHARACTERIZED_FILE",
                     help="the release's uncharacterized.txt (3,054 molecules to drop): lines "
                     "whose first field is an integer are read as molecule indices, the header, "
                     "rules and blank lines are skipped")
    qm9.add_argument("--seed", type=int, default=1,
                     help="seed of the split permutation (default 1, as TorchMD-Net/Equiformer)")
    qm9.add_argument("--subtract-atomrefs", action="store_true",
                     help="also store u0/u/h/g_atomization (total minus the release's atom "
                     "reference energies of H, C, N, O, F) and put them in y instead of totals")
    qm9.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    qm9.set_defaults(func=_prepare_qm9)

    count = sub.add_parser(
        "count-params", parents=[common],
        help="print the parameter count of fairchem configs",
        description="Build each config's model as fairchem does and print its parameter count.",
    )
    count.add_argument("configs", nargs="+", type=Path, help="fairchem YAML config(s)")
    count.set_defaults(func=_count_params)

    check = sub.add_parser(
        "check-equivariance", parents=[common],
        help="rotation errors of energies and forces of any fairchem model config",
        description="Build the config's model as fairchem does (EST or plain fairchem models), "
        "run it in float64 on a structure and on random rotations of it (cell rotated too), and "
        "print the relative energy and force errors.",
    )
    check.add_argument("config", type=Path, help="fairchem YAML config")
    check.add_argument("--checkpoint", type=Path, default=None, help="fairchem checkpoint.pt")
    check.add_argument("--structure", type=Path, default=None,
                       help="any ASE-readable structure, the first of a file holding "
                            "several (a database's first row; default: a made slab, or a made "
                            "molecule for molecular models, use_pbc: False)")
    check.add_argument("--rotations", type=_positive_int, default=5,
                       help="random rotations (default 5)")
    check.add_argument("--seed", type=int, default=0, help="seed of weights and rotations")
    check.set_defaults(func=_check_equivariance)

    stats = sub.add_parser(
        "graph-stats", parents=[common],
        help="avg_num_nodes and avg_degree of a config's training data, as its model sees them",
        description="Read the config's training split (fairchem's dataset, with first_n / "
        "sample_n / selections applied), build each structure's graph with the backbone's own "
        "max_radius, max_neighbors and use_pbc, and print avg_num_nodes (atoms per structure) "
        "and avg_degree (neighbours per atom), the two numbers that normalise the models' sums, "
        "beside every value the config sets. Put them in model.backbone (and in the heads that "
        "take avg_num_nodes). fairchem's overrides apply, e.g. --dataset.train.src=my/train.db.",
    )
    stats.add_argument("config", type=Path, help="fairchem YAML config")
    stats.add_argument("--split", default="train", help="dataset split (default train)")
    stats.add_argument("--max-structures", type=_positive_int, default=20_000,
                       help="read a seeded random sample of this many structures when the split "
                       "is larger (default 20000; the mean's relative error is then ~0.3 %%)")
    stats.add_argument("--all", action="store_true", help="read every structure of the split")
    stats.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    stats.add_argument("--json", type=Path, default=None, help="also write the figures here")
    stats.add_argument("--overwrite", action="store_true", help="replace an existing --json")
    stats.add_argument("--check", action="store_true",
                       help="exit 1 when a value the config sets is more than 5 %% off the data")
    stats.set_defaults(func=_graph_stats)

    compare = sub.add_parser(
        "compare", parents=[common],
        help="compare models on one dataset: paired seeds, a learning rate each, equal cost",
        description="Train every model config on the dataset config with fairchem, seed by "
        "seed (a seed draws the training structures, the initialisation and the batch order, "
        "the same for every model), after timing each model's step in isolation and sweeping "
        "the learning rate on the validation split; report the test error per seed, the "
        "paired difference from the first model (the baseline) with its 95 %% interval and "
        "Holm-corrected p, at equal steps and at equal training time, and plot error against "
        "cost. Resumes from the runs already in --out.",
    )
    compare.add_argument("data", type=Path, help="dataset config: dataset train/val/test and the "
                         "task (outputs, loss_functions, evaluation_metrics)")
    compare.add_argument("models", nargs="+", help="model configs (a model: section each), "
                         "PATH or NAME=PATH; the first is the baseline")
    compare.add_argument("--out", type=Path, required=True, help="results folder")
    compare.add_argument("--work", type=Path, default=None,
                         help="training runs (default runs/compare/<name of --out>)")
    compare.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    compare.add_argument("--steps", type=_positive_int, default=1000,
                         help="optimizer steps at equal steps (default 1000)")
    compare.add_argument("--batch-size", type=_positive_int, default=8)
    compare.add_argument("--train-size", type=_positive_int, default=None,
                         help="training structures drawn per seed (default: the whole split)")
    compare.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3],
                         help="learning rates to sweep (default 3e-4 1e-3 3e-3; one value: "
                         "no sweep)")
    compare.add_argument("--sweep-seed", type=int, default=1000)
    compare.add_argument("--evaluations", type=_positive_int, default=6,
                         help="validations per run (default 6)")
    compare.add_argument("--no-equal-time", action="store_true",
                         help="skip the runs at the baseline's training time")
    compare.add_argument("--same-time", type=float, default=0.02, metavar="FRACTION",
                         help="no time run for a model whose equal-time steps are within this "
                         "fraction of --steps (default 0.02; e.g. the baseline timing's relative "
                         "IQR, within which its steps run is its time run)")
    compare.add_argument("--long-factor", type=int, default=0,
                         help="convergence runs of --long-models at steps x this (default none)")
    compare.add_argument("--long-seeds", type=int, nargs="*", default=[])
    compare.add_argument("--long-models", nargs="*", default=[])
    compare.add_argument("--model-seeds", type=_name_count, nargs="*", default=[],
                         metavar="NAME=N", help="run NAME on the first N seeds only")
    compare.add_argument("--pairs", type=_model_pair, nargs="*", default=[],
                         metavar="MODEL:REFERENCE",
                         help="also compare MODEL with REFERENCE (every model is compared with "
                         "the baseline)")
    compare.add_argument("--later", nargs="*", default=[], metavar="MODEL",
                         help="run these models after every seed of the others (when time may "
                         "not allow all)")
    compare.add_argument("--jobs", type=_positive_int, default=1,
                         help="runs at a time, one thread each (default 1; one per core)")
    compare.add_argument("--unit", default="", help="unit of the reported error (e.g. meV)")
    compare.add_argument("--scale", type=float, default=1.0,
                         help="factor from fairchem's metric to --unit (e.g. 1000: eV -> meV)")
    compare.add_argument("--long-first", action="store_true",
                         help="start the convergence runs (--long-factor) before the others: "
                         "they take longest, so on a machine held for a few hours they fit "
                         "only at its start (the order changes no run)")
    compare.add_argument("--report-only", action="store_true",
                         help="rewrite the report from the runs in --out")
    compare.set_defaults(func=_compare)

    warm = sub.add_parser(
        "warm-start", parents=[common],
        help="turn an EquiformerV2 checkpoint into an EST checkpoint with the same predictions",
        description="Copy an EquiformerV2 checkpoint's weights into the EST-EquiformerV2 model of "
        "CONFIG (every steerable expert from the block's feed-forward weights, the spherical "
        "branch starting at zero output) and write a fairchem checkpoint at step 0 to train "
        "from with `fairchem --mode train --checkpoint OUT`.",
    )
    warm.add_argument("--from", dest="source", type=Path, required=True,
                      help="EquiformerV2 fairchem checkpoint (hydra or pre-hydra layout)")
    warm.add_argument("--config", type=Path, required=True, help="EST-EquiformerV2 YAML config")
    warm.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    warm.add_argument("--symmetry-breaking", type=float, default=0.01,
                      help="relative zero-sum perturbation of the experts (default 0.01)")
    warm.add_argument("--seed", type=int, default=0, help="seed of the new EST weights")
    warm.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    warm.set_defaults(func=_warm_start)

    demo = sub.add_parser(
        "demo", parents=[common],
        help="make data, train, predict the four test splits, write the submission file",
        description="The README's demo through the real `fairchem` command on CPU: s2ef trains "
        "EST-EquiformerV2 on energies and forces, is2re trains EST-Equiformer on relaxed "
        "energies of initial structures, qm9 trains the pure EST (Figure 3) on made "
        "QM9-format molecules (U0 atomization energy) and reports the test MAE from fairchem's "
        "evaluator (`--mode validate` on the test split) with the test predictions.",
    )
    demo.add_argument("--task", choices=["s2ef", "is2re", "qm9"], default="s2ef",
                      help="which demo (default s2ef; qm9: the pure EST on made QM9-format "
                      "molecules, printing the test MAE in meV)")
    demo.add_argument("--config", type=Path, default=None,
                      help="fairchem config (default configs/oc20/<task>/demo/est_*_demo.yml; "
                      "qm9: configs/qm9/demo/est_demo.yml)")
    demo.add_argument("--data", type=Path, default=None,
                      help="demo data folder (default data/demo/<task>)")
    demo.add_argument("--run-dir", type=Path, default=Path("runs/demo"))
    demo.add_argument("--seed", type=int, default=0, help="demo data seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


# A user's mistake: one line and exit 2. Anything else (a ValueError included) is a bug of the
# package or of a library and keeps its traceback.
_USAGE_ERRORS = (InputError, FileNotFoundError, FileExistsError, NotADirectoryError,
                 IsADirectoryError, PermissionError)  # InputError: WarmStartError, ...


def _debug_requested(args: argparse.Namespace) -> bool:
    """``--debug`` or ``EST_FAIRCHEM_DEBUG`` set to anything but empty or 0."""
    return bool(args.debug) or os.environ.get("EST_FAIRCHEM_DEBUG", "") not in ("", "0")


def _interrupted_line(args: argparse.Namespace, name: str, stop: BaseException) -> str:
    """The one line of an interrupted command: what it left (``stop.written_in_full``: the
    signal came during the final renames of an output folder, which is then complete)."""
    out = getattr(args, "out", None)
    written_in_full = getattr(stop, "written_in_full", None)
    if written_in_full is not None:
        left = f"{written_in_full} had been written in full"
    else:
        left = f"nothing was written to {out}" if out is not None else "stopped"
    return f"est-fairchem {args.command}: interrupted by {name}; {left}"


_TAKES_OVERRIDES = {_graph_stats}

# the files a command reads (argument name -> what it is), refused when missing before the
# command imports torch and fairchem (seconds)
_INPUT_FILES = {"configs": "config file", "config": "config file", "checkpoint": "checkpoint",
                "source": "checkpoint", "structure": "structure file"}


def _refuse_missing_inputs(args: argparse.Namespace) -> None:
    """``FileNotFoundError`` naming the first input file of ``args`` that is not a file."""
    for name, what in _INPUT_FILES.items():
        value = getattr(args, name, None)
        for path in value if isinstance(value, list) else [value]:
            if isinstance(path, Path):
                require_file(path, what)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Bad input (a file, key or value that is not what was expected) is
    one line on stderr and exit status 2; SIGINT / SIGTERM clean up, print one line and exit
    with 128 + the signal number. ``--debug`` (or ``EST_FAIRCHEM_DEBUG=1``) shows tracebacks."""
    from est_fairchem.data.output_folder import Interrupted, raise_interrupted

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.overrides = extra  # fairchem's --key.path=value form, for the commands that take it
    if extra and args.func not in _TAKES_OVERRIDES:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    if not debug:  # fairchem loads its own Wigner tables with torch.load at import time
        warnings.filterwarnings("ignore", message="You are using `torch.load`",
                                category=FutureWarning, module=r"fairchem\.")
    # SIGINT explicitly too: a shell without job control starts a background command (`cmd &`,
    # `make test &`) with SIGINT ignored, and Python then keeps it ignored, so Ctrl-C or
    # `kill -INT` would be lost and the run would go on to write its output
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, raise_interrupted),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        _refuse_missing_inputs(args)
        return args.func(args)
    except KeyboardInterrupt as stop:
        if debug:
            raise
        print(_interrupted_line(args, "SIGINT (Ctrl-C)", stop), file=sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as stop:
        if debug:
            raise
        print(_interrupted_line(args, signal.Signals(stop.signum).name, stop), file=sys.stderr)
        return 128 + stop.signum
    except _USAGE_ERRORS as err:
        if debug:
            raise
        print(f"est-fairchem {args.command}: {err}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    raise SystemExit(main())
