"""The ``est-fairchem`` command: demo data, parameter counts, the end-to-end demo.

Training, prediction and SLURM submission are fairchem's own ``fairchem`` command; this one
only adds what fairchem lacks. Heavy imports happen inside each subcommand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _make_demo_data(args: argparse.Namespace) -> int:
    if args.systems is None:
        args.systems = 48 if args.task == "s2ef" else 64
    if args.systems < 1 or args.frames < 1:
        print("est-fairchem: --systems and --frames must be >= 1", file=sys.stderr)
        return 2
    if args.task == "s2ef":
        from est_fairchem.data.demo_s2ef import DemoSizes, make_s2ef_demo

        sizes = DemoSizes(train_systems=args.systems, frames_per_system=args.frames)
        metadata = make_s2ef_demo(args.out, seed=args.seed, sizes=sizes, overwrite=args.overwrite)
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


def _count_params(args: argparse.Namespace) -> int:
    from est_fairchem.tools.model_from_config import build_model, count_parameters, load_config

    for config_path in args.configs:
        model = build_model(load_config(config_path))
        counts = count_parameters(model)
        parts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items() if k != "total")
        print(f"{config_path}: {counts['total'] / 1e6:.2f}M parameters ({parts})")
    return 0


def _check_equivariance(args: argparse.Namespace) -> int:
    from est_fairchem.tools.check_equivariance import check_equivariance

    result = check_equivariance(args.config, args.checkpoint, args.structure,
                                rotations=args.rotations, seed=args.seed)
    print(f"config:     {result['config']}")
    print(f"checkpoint: {result['checkpoint'] or 'none (random weights, seed ' + str(args.seed) + ')'}")
    print(f"structure:  {result['structure']} ({result['atoms']} atoms), float64, eval mode")
    print(f"energy relative error over {result['rotations']} rotations: "
          f"max {result['energy_error_max']:.2e}, mean {result['energy_error_mean']:.2e}")
    print(f"force relative error over {result['rotations']} rotations:  "
          f"max {result['force_error_max']:.2e}, mean {result['force_error_mean']:.2e}")
    return 0


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
    print(f"train from it: fairchem --mode train --config-yml {args.config} "
          f"--checkpoint {summary['out']}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from est_fairchem.tools.demo import print_summary, run_demo

    summary = run_demo(args.config, args.data, args.run_dir, seed=args.seed)
    print_summary(summary)
    summary_file = args.run_dir / "demo_summary.json"
    summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary:     {summary_file}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="est-fairchem",
        description="EST models for fairchem v1. Train and predict with the `fairchem` command; "
        "this tool makes demo data, counts parameters, checks equivariance, warm-starts EST from "
        "EquiformerV2 checkpoints and runs the demo.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser(
        "make-demo-data",
        help="write small OC20-style LMDBs labelled with ASE's EMT",
        description="Write OC20-style LMDBs (train, val, test_id, test_ood_ads, test_ood_cat, "
        "test_ood_both) of slab + adsorbate systems labelled with ASE's EMT calculator: "
        "s2ef = rattled frames with energies and forces; is2re / is2rs (the same records, as in "
        "OC20) = initial structures with their EMT-relaxed positions and energies.",
    )
    data.add_argument("--task", choices=["s2ef", "is2re", "is2rs"], default="s2ef",
                      help="dataset kind (default s2ef)")
    data.add_argument("--out", type=Path, required=True, help="output folder")
    data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    data.add_argument("--systems", type=int, default=None,
                      help="training systems (default 48 for s2ef, 64 for is2re/is2rs)")
    data.add_argument("--frames", type=int, default=4, help="s2ef frames per system (default 4)")
    data.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    data.set_defaults(func=_make_demo_data)

    count = sub.add_parser(
        "count-params",
        help="print the parameter count of fairchem configs",
        description="Build each config's model as fairchem does and print its parameter count.",
    )
    count.add_argument("configs", nargs="+", type=Path, help="fairchem YAML config(s)")
    count.set_defaults(func=_count_params)

    check = sub.add_parser(
        "check-equivariance",
        help="rotation errors of energies and forces of any fairchem model config",
        description="Build the config's model as fairchem does (EST or plain fairchem models), "
        "run it in float64 on a structure and on random rotations of it (cell rotated too), and "
        "print the relative energy and force errors.",
    )
    check.add_argument("config", type=Path, help="fairchem YAML config")
    check.add_argument("--checkpoint", type=Path, default=None, help="fairchem checkpoint.pt")
    check.add_argument("--structure", type=Path, default=None,
                       help="any ASE-readable periodic structure (default: a made slab)")
    check.add_argument("--rotations", type=int, default=5, help="random rotations (default 5)")
    check.add_argument("--seed", type=int, default=0, help="seed of weights and rotations")
    check.set_defaults(func=_check_equivariance)

    warm = sub.add_parser(
        "warm-start",
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
        "demo",
        help="make data, train, predict the four test splits, write the submission file",
        description="The README's demo through the real `fairchem` command on CPU.",
    )
    demo.add_argument("--config", type=Path,
                      default=Path("configs/oc20/s2ef/demo/est_eqv2_demo.yml"))
    demo.add_argument("--data", type=Path, default=Path("data/demo/s2ef"))
    demo.add_argument("--run-dir", type=Path, default=Path("runs/demo"))
    demo.add_argument("--seed", type=int, default=0, help="demo data seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError) as err:  # WarmStartError too
        print(f"est-fairchem {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
