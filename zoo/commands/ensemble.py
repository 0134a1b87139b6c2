"""``zoo ensemble``: several trained models as one model with a spread (README, "zoo ensemble")."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "ensemble"
HELP = "combine bundles, run folders or a benchmark's fold models into one model with a spread"
EXAMPLES = [
    "zoo ensemble runs/seed-0 runs/seed-1 runs/seed-2 -o ensemble.zoo.pt",
    "zoo ensemble runs/benchmark/NAME -o folds.zoo.pt --register my-ensemble",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "members",
        nargs="+",
        help="model bundles, run folders, ensemble files or pretrained names (zoo pretrained), or "
        "a zoo benchmark folder (all its fold models)",
    )
    parser.add_argument("-o", "--output", required=True, help="ensemble file to write (*.zoo.pt)")
    parser.add_argument(
        "--calibrate",
        metavar="BENCHMARK",
        help="a zoo benchmark folder run with --seeds >= 2: measure the spread on its out-of-fold "
        "predictions and, if needed, scale it (fitted on validation entries only)",
    )
    parser.add_argument("--register", metavar="NAME", help="register in the MLflow registry")
    parser.add_argument("--experiment", default="ensembles", help="MLflow experiment (register)")


def member_sources(members: list[str]) -> list[Path]:
    """Bundles and run folders as given, a pretrained name its model file; a benchmark folder
    becomes its fold run folders. The same model twice is an error."""
    from zoo import pretrained
    from zoo.benchmark import SPEC_FILE
    from zoo.ensemble import member_path

    sources: list[Path] = []
    for member in map(Path, members):
        if not member.exists() and pretrained.is_pretrained(str(member)):
            sources.append(pretrained.model_path(str(member)))
        elif (member / SPEC_FILE).exists():
            found = sorted(p.parent for p in member.glob("fold[0-9]/*/model.zoo.pt"))
            if not found:
                raise ValueError(f"{member}: a benchmark folder without finished fold models")
            sources += found
        else:
            sources.append(member)
    resolved = [Path(member_path(p)).resolve() for p in sources]
    repeated = next(
        (s for s, r in zip(sources, resolved, strict=True) if resolved.count(r) > 1), None
    )
    if repeated is not None:
        raise ValueError(f"{repeated} is given twice: an ensemble's members are different models")
    return sources


def run(args) -> int:
    from zoo.calibration import calibrate
    from zoo.ensemble import build_ensemble
    from zoo.files import check_output_file

    output = check_output_file(args.output)
    ensemble = build_ensemble(member_sources(args.members))
    if args.calibrate:
        record = calibrate(args.calibrate, output.with_suffix("").with_suffix(".calibration.png"))
        ensemble.calibration = record
        ensemble.scale = {t: record[t]["scale"] for t in ensemble.targets if t in record}
        print_calibration(record, ensemble.targets)
    ensemble.save(output)
    print(f"ensemble of {len(ensemble.members)} models ({', '.join(ensemble.targets)}): {output}")
    if args.register:
        register(ensemble, output, args)
    return 0


def print_calibration(record: dict, targets: list[str]) -> None:
    print(f"calibration on {record['source']} ({record['models_per_fold']} seeds per fold):")
    for target in targets:
        r = record.get(target)
        if r is None:
            continue
        print(
            f"  {target}: Spearman(spread, |error|) {r['spearman_spread_error']:.2f}; inside "
            f"±1σ {100 * r['test_coverage_1sigma_raw']:.1f}%, ±2σ "
            f"{100 * r['test_coverage_2sigma_raw']:.1f}% (raw); scale {r['scale']:.2f} "
            f"(validation ±1σ {100 * r['validation_coverage_1sigma_raw']:.1f}%) -> "
            f"{100 * r['test_coverage_1sigma']:.1f}%, {100 * r['test_coverage_2sigma']:.1f}%"
        )


def register(ensemble, output: Path, args) -> None:
    """Register the ensemble; its score for the champion rule is the members' mean
    validation MAE (log10 GPa) over targets."""
    import math

    from zoo import names
    from zoo.serving import register_model_file

    scores = [
        m.metrics[names.split_metric("val", t, "mae", "log10")]
        for m in ensemble.members
        for t in ensemble.targets
        if m.metrics and names.split_metric("val", t, "mae", "log10") in m.metrics
    ]
    score = sum(scores) / len(scores) if scores else math.inf
    metrics = {
        f"calibration_{t}_{key}": value
        for t in ensemble.targets
        for key, value in ensemble.calibration.get(t, {}).items()
    }
    version, champion = register_model_file(
        output,
        args.register,
        experiment=args.experiment,
        run_name=f"ensemble-{args.register}",
        val_score=score,
        tags={"zoo.kind": "ensemble", "zoo.members": str(len(ensemble.members))},
        metrics=metrics,
    )
    print(f"registered {args.register} version {version}" + (" (champion)" if champion else ""))
