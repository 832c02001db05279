"""The whole pipeline on several seeds, and every seed's score: is a result a claim about
the method, or about one lucky run?

    python benchmarks/seeds.py --env doom --preset laptop --seeds 0 1 2

Each seed is its own run (``runs/<env>/<preset>/seed<k>/``, resumable: a seed already
done costs only its checks). For each it prints the validation score of every round, the
round shipped (chosen on validation alone; ``--extra-rounds N``: up to N more rounds, each
while the newest round is the best on validation), its test over the preset's real episodes
(mean ± std and the median episode), random play on the same episodes, and the time the
pipeline's stages took; then the mean over seeds of the test means. Nothing is averaged
away: every seed has its row.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

from wmtutor.pipeline import run_pipeline
from wmtutor.presets import get_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="doom")
    parser.add_argument("--preset", default=None, help="tiny | laptop | paper")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", help="cpu, cuda (default: wmtutor's choice)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--extra-rounds", type=int,
                        help="more rounds while validation pays (default: the preset's); "
                        "the rounds before them are shared with a plain run")  # fmt: skip
    args = parser.parse_args()
    preset = get_preset(args.preset)
    if args.extra_rounds is not None:
        game = preset.game(args.env)
        dream = dataclasses.replace(game.dream, extra_rounds=args.extra_rounds)
        preset = dataclasses.replace(preset, **{args.env: dataclasses.replace(game, dream=dream)})

    records = []
    for seed in args.seeds:
        print(f"\n=== seed {seed} ===", flush=True)
        records.append(run_pipeline(args.env, preset, seed=seed, device=args.device,
                                    progress=not args.quiet))  # fmt: skip
    rounds = max(len(r["validation"]) for r in records)
    head = " | ".join(f"round {k} (validation)" for k in range(rounds))
    print(f"\n{args.env}, preset {records[0]['preset']}\n")
    print(f"| seed | {head} | shipped | test | median | random play | minutes |")
    print("|---:|" + "---:|" * (rounds + 5))
    for r in records:
        val = " | ".join(f"{v['real_mean']:.1f} ± {v['real_std']:.1f}" for v in r["validation"])
        t = r["result"]
        print(f"| {r['seed']} | {val} | {r['chosen_round']} | {t['real_mean']:.1f} ± "
              f"{t['real_std']:.1f} | {t['real_median']:.1f} | {t['random_mean']:.1f} ± "
              f"{t['random_std']:.1f} | {r['total_seconds'] / 60:.1f} |")  # fmt: skip
    means = [r["result"]["real_mean"] for r in records]
    spread = f" ± {statistics.stdev(means):.1f} across seeds" if len(means) > 1 else ""
    print(f"\nmean of the {len(means)} test means: {statistics.mean(means):.1f}{spread}; "
          f"worst seed {min(means):.1f}, best {max(means):.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
