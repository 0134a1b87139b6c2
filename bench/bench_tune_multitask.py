"""A tuned `cgcnn-mt` against the two tuned single-target `cgcnn` models (issue 3's multitask
target, measured after tuning instead of with the shared default configuration).

Runs one 20-trial study of ``cgcnn-mt`` on shear and bulk together (``zoo tune --model cgcnn-mt
--target shear,bulk --final``, bundled space ``tuning/spaces/cgcnn-mt.yaml``: the union of the
single-target spaces plus the loss weighting, best epoch and objective by the geometric mean of
the two validation MAEs) on one core, and at the same time, on the other core, the untuned
``cgcnn-mt`` default refitted on train+val for reference. It then prints, per target, the tuned
multitask refit beside the tuned single-target refits of ``bench/bench_tune.py`` (read from
``bench/results/bench_tune.json``; run that first) with the 95% bootstrap interval of the change
over the test crystals, and the CPU time of the multitask study beside the sum of the two
single-target studies (all three ran one trial at a time on one core).

Everything goes to ``bench/results/tune-mt/`` (removed at the start); the rows are written to
``bench/results/bench_tune_multitask.json``. ``--seed S`` (S > 0) runs a further study with
another seed (of the sampler and of every trial's training) into ``tune-mt-seedS/`` and
``bench_tune_multitask_seedS.json``, without the default refit (it does not depend on the
study).

    python bench/bench_tune_multitask.py                 # about 1.5 hours
    python bench/bench_tune_multitask.py --seed 1        # a second draw of the study
    python bench/bench_tune_multitask.py --trials 3 --epochs 4   # a quick check
"""

from __future__ import annotations

import argparse
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

from _common import RESULTS, ROOT, train_in_child
from bench_tune import CONFIG, final_run, start_study, study_figures, wait_for_study

from zoo.compare import compare_runs

WORK = RESULTS / "tune-mt"
SINGLE = RESULTS / "bench_tune.json"
SINGLE_WORK = RESULTS / "tune"
TARGETS = ["shear", "bulk"]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the space's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and of the trials")
    args = parser.parse_args()
    work = WORK if args.seed == 0 else WORK.with_name(f"{WORK.name}-seed{args.seed}")
    suffix = f"_seed{args.seed}" if args.seed else ""
    saved = RESULTS / f"bench_tune_multitask{suffix}.json"
    if not SINGLE.exists():
        raise SystemExit(f"{SINGLE} is missing: run bench/bench_tune.py first")
    single = json.loads(SINGLE.read_text())
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    study = start_study("cgcnn-mt", TARGETS, args.trials, args.epochs, work, args.seed)
    overrides = {"model": "cgcnn-mt", "targets": TARGETS, "fit_on": "train+val", "threads": 1}
    if args.epochs:
        overrides["epochs"] = args.epochs
    with ThreadPoolExecutor(max_workers=1) as pool:
        default_refit = pool.submit(train_in_child, CONFIG, overrides) if args.seed == 0 else None
        wall = wait_for_study(study)
        default_refit = default_refit.result() if default_refit else None
    tuned = {"wall_minutes": wall, **study_figures("cgcnn-mt", TARGETS, work)}
    multi = final_run(work, "bench-cgcnn-mt")
    changes = {}
    for target in TARGETS:
        single_refit = final_run(SINGLE_WORK, f"bench-cgcnn-{target}")
        changes[target] = compare_runs([single_refit], [multi], [target])[0].change
    rows = {
        "tuned": tuned,
        "default_refit": default_refit,
        "change_vs_tuned_single": {t: vars(c) for t, c in changes.items()},
    }
    saved.write_text(json.dumps(rows, indent=2, default=str))

    print("\nTuned cgcnn-mt against the tuned single-target cgcnn models (refits on train+val)")
    print(
        f"{'target':6} {'model':34} {'val MAE':>8} {'test MAE':>9} {'test GPa':>9} "
        f"{'change (95% interval)':>26}"
    )
    for target in TARGETS:
        s, d = single[target]["tuned"], default_refit
        c = changes[target]
        print(
            f"{target:6} {'cgcnn, tuned for ' + target:34} {s['val_mae_log10']:8.4f} "
            f"{s['final_test_mae_log10']:9.4f} {s['final_test_mae_gpa']:9.2f}"
        )
        if d:
            print(
                f"{target:6} {'cgcnn-mt, default':34} {'':>8} "
                f"{d[f'test_{target}_mae_log10']:9.4f} {d[f'test_{target}_mae_gpa']:9.2f}"
            )
        interval = f"{c.change:+.1%} ({c.low:+.1%} to {c.high:+.1%})"
        label = f"cgcnn-mt, tuned (trial {tuned['best_trial']})"
        print(
            f"{target:6} {label:34} "
            f"{tuned[f'val_{target}_mae_log10']:8.4f} "
            f"{tuned[f'final_test_{target}_mae_log10']:9.4f} "
            f"{tuned[f'final_test_{target}_mae_gpa']:9.2f} {interval:>26}"
        )
    both = sum(single[t]["tuned"]["trial_minutes_sum"] for t in TARGETS)
    print(
        f"\nstudy CPU time (sum of trial durations, one core): cgcnn shear + bulk {both:.1f} min, "
        f"cgcnn-mt {tuned['trial_minutes_sum']:.1f} min ({tuned['trial_minutes_sum'] / both:.0%}); "
        f"trials complete/pruned/failed {tuned['complete']}/{tuned['pruned']}/{tuned['failed']}; "
        f"refits: cgcnn {sum(single[t]['tuned']['final_train_minutes'] for t in TARGETS):.1f} min, "
        f"cgcnn-mt {tuned['final_train_minutes']:.1f} min"
    )
    print(f"best cgcnn-mt parameters: {tuned['best_params']}")
    print(f"MLflow store: {work / 'mlruns'}; run folders: {work / 'runs'}; from {ROOT}")


if __name__ == "__main__":
    main()
