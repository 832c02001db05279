"""The whole pipeline on several seeds, and every seed's score: is a result a claim about
the method, or about one lucky run?

    python benchmarks/seeds.py --env doom --preset laptop --seeds 0 1 2

Each seed is its own run (``runs/<env>/<preset>/seed<k>/``, resumable: a seed already
done costs only its checks). For each it prints the validation score of every round, the
round shipped (chosen on validation alone; ``--extra-rounds N``: up to N more rounds, each
while the newest round is the best on validation), its test over the preset's real episodes
(mean ± std and the median episode), random play on the same episodes, and the time the
pipeline's stages took; then the mean over seeds of the test means. Nothing is averaged
away: every seed has its row. With extra rounds, a column gives the test of the round a
plain run (the preset's rounds only) would ship, on the same seeds: the defence's effect.
Last, round 0's C in the dream of every round's M: whether the rounds closed its loophole.
"""

from __future__ import annotations

import argparse
import dataclasses

from wmtutor.pipeline import (
    choose_round,
    first_controller_in_each_dream,
    get_score,
    run_pipeline,
    seeds_table,
)
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
    plain = None
    if preset.game(args.env).dream.extra_rounds:
        # The same seeds without the extra rounds: the round a plain run ships is the best
        # on validation among its own rounds; its test is played if it is not the shipped one.
        rounds = preset.game(args.env).dream.rounds
        plain = []
        for r in records:
            k = choose_round(r["validation"][: rounds + 1])
            plain.append(None if k == r["chosen_round"] else get_score(
                args.env, preset, round=k, seed=r["seed"], device=args.device,
                progress=not args.quiet))  # fmt: skip
    print(f"\n{args.env}, preset {records[0]['preset']}\n")
    print(seeds_table(records, plain))
    print("\nround 0's C in the dream of each round's M (same starts, same noise), against "
          "its real game (validation):")  # fmt: skip
    for r in records:
        dreams = first_controller_in_each_dream(args.env, preset, rounds=r["rounds"],
                                                seed=r["seed"], device=args.device)  # fmt: skip
        cells = ", ".join(f"round {d['round']}'s M {d['dream_mean']:.1f} ± {d['dream_std']:.1f}"
                          for d in dreams)  # fmt: skip
        print(f"  seed {r['seed']}: {cells}; real game {r['validation'][0]['real_mean']:.1f}")


if __name__ == "__main__":
    main()
