"""What could C do in Pong with a V that keeps the objects? An upper bound for the course.

V does not keep Pong's ball or paddles (``benchmarks/pong_ball.py``), so C trained on z
plays no better than random. This asks the question the other way round: give the
course's C the objects' positions *exactly*, read from the Atari's RAM, and train it the
course's way, and see what it reaches. If this C cannot beat the built-in opponent, a
better V alone will not make the course's C win at Pong either.

    python benchmarks/pong_ram.py                      # about 15 min on 2 cores
    python benchmarks/pong_ram.py --hidden 8           # C with a hidden layer (not the paper's)
    python benchmarks/pong_ram.py --generations 2 --popsize 4 --steps 50 --test-games 1 \
        --test-steps 400                               # a quick check that it runs

The game is the course's (``make_env("pong")``: ALE v5, frame skip 4, sticky actions
0.25). C is the course's linear controller with one output thresholded at ±1/3 (down /
stay / up, ``envs.pong_actions``), ``y = tanh(w · x + b)``, where ``x`` is 7 numbers
from the RAM instead of ``[z, h]``: the ball's column and row, their change since the
last step, the agent's paddle, the opponent's, and the paddle's row minus the ball's.
CMA-ES (``wmtutor.cmaes``, x0 = 0) scores each candidate by the points won minus lost in
the first ``--steps`` agent steps of ``--trials`` games (the same seeds for every
candidate of a generation), plus the share of those steps the game lasted: a tie-break
worth less than a point, without which every early candidate scores the same -21 (they
lose all 21 points inside 1000 steps) and CMA-ES, which only ranks, learns nothing. Then
the search's final mean plays ``--test-games`` whole games on new seeds, beside two
references on the same seeds: random play (the course's white noise on y), and a
hand-written tracker that moves the paddle toward the ball's row.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from wmtutor.cmaes import CMAES
from wmtutor.envs import make_env, pong_actions

BALL_X, BALL_Y, PADDLE, OPPONENT = 49, 54, 51, 50  # Pong's RAM addresses
GAME_CAP = 27_000  # agent steps: ALE's own cap of 108,000 frames at frame skip 4
TEST_SEED = 800_000  # far from the training seeds (generation * 100 + trial)
N_FEATURES = 7


def features(ram: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The 7 inputs of C, each about in [-1, 1], from this step's RAM and the last one's."""
    bx, by, py, oy = (float(ram[i]) for i in (BALL_X, BALL_Y, PADDLE, OPPONENT))
    dx, dy = bx - float(last[BALL_X]), by - float(last[BALL_Y])
    return np.array([(bx - 120) / 60, (by - 120) / 60, dx / 8, dy / 8, (py - 120) / 60,
                     (oy - 120) / 60, (py - by) / 60])  # fmt: skip


def mlp_output(params: np.ndarray, x: np.ndarray) -> float:
    """``w2 · tanh(W1 x + b1) + b2`` for ``params`` = W1 ``(H, 7)`` then b1, w2, b2."""
    hidden = (len(params) - 1) // (N_FEATURES + 2)
    W1 = params[: hidden * N_FEATURES].reshape(hidden, N_FEATURES)
    b1 = params[hidden * N_FEATURES : hidden * (N_FEATURES + 1)]
    w2 = params[hidden * (N_FEATURES + 1) : -1]
    return float(w2 @ np.tanh(W1 @ x + b1) + params[-1])


def play(policy: str, params: np.ndarray | None, seed: int, steps: int) -> tuple[float, int]:
    """One game (or its first ``steps`` agent steps): ``(points won - lost, steps)``.
    ``policy``: ``"linear"`` (``params`` = w then b), ``"mlp"`` (``mlp_output``),
    ``"tracker"`` or ``"random"``."""
    env = make_env("pong", frame_skip=4)
    actions = pong_actions(env)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    ale = env.unwrapped.ale
    last = ram = ale.getRAM()
    total, step = 0.0, 0
    try:
        while step < steps:
            x = features(ram, last)
            if policy == "linear":
                y = np.tanh(params[:-1] @ x + params[-1])
            elif policy == "mlp":  # one hidden tanh layer (--hidden): W1, b1, w2, b2
                y = np.tanh(mlp_output(params, x))
            elif policy == "tracker":  # the paddle's middle (8 rows below its top) to the ball
                y = np.clip((x[6] + 8 / 60) * 8, -1, 1)  # ball below: y < -1/3, down
            else:
                y = rng.uniform(-1, 1)
            _, reward, terminated, truncated, _ = env.step(actions(np.array([y])))
            total += float(reward)
            step += 1
            last, ram = ram, ale.getRAM()
            if terminated or truncated:
                break
    finally:
        env.close()
    return total, step


def _play(args: tuple) -> tuple[float, int]:
    return play(*args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generations", type=int, default=40)
    p.add_argument("--popsize", type=int, default=16)
    p.add_argument("--trials", type=int, default=2, help="games per candidate")
    p.add_argument("--steps", type=int, default=1000, help="agent steps per training game")
    p.add_argument("--test-games", type=int, default=20)
    p.add_argument("--test-steps", type=int, default=GAME_CAP,
                   help="cap of a test game in agent steps (default: a whole game)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=0,
                   help="a hidden tanh layer this wide in C (0: linear, the course)")  # fmt: skip
    args = p.parse_args()

    kind = "mlp" if args.hidden else "linear"
    n_params = args.hidden * (N_FEATURES + 2) + 1 if args.hidden else N_FEATURES + 1
    es = CMAES(np.zeros(n_params), 0.5, popsize=args.popsize, seed=args.seed)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for g in range(args.generations):
            solutions = es.ask()
            seeds = [g * 100 + t for t in range(args.trials)]
            jobs = [(kind, x, s, args.steps) for x in solutions for s in seeds]
            played = np.array(list(pool.map(_play, jobs))).reshape(len(solutions), -1, 2)
            fitness = (played[..., 0] + played[..., 1] / (args.steps + 1)).mean(axis=1)
            es.tell(solutions, -fitness)
            print(f"generation {g + 1}: best {fitness.max():+.1f}, mean {fitness.mean():+.2f}, "
                  f"worst {fitness.min():+.1f} ({time.perf_counter() - start:.0f} s)",
                  flush=True)  # fmt: skip
        trained = time.perf_counter() - start
        seeds = [TEST_SEED + i for i in range(args.test_games)]
        rows = []
        c_name = f"C with {args.hidden} hidden units" if args.hidden else "C"
        for name, params in ((f"{c_name} on the RAM's positions (CMA-ES mean)", es.mean),
                             ("tracker (toward the ball's row)", None),
                             ("random play (white noise)", None)):  # fmt: skip
            policy = kind if params is not None else name.split()[0]
            played = list(pool.map(_play, [(policy, params, s, args.test_steps) for s in seeds]))
            points = np.array([r for r, _ in played])
            rows.append((name, points, np.mean([n for _, n in played])))
    print(f"\ntrained in {trained / 60:.1f} min: {args.generations} generations x "
          f"{args.popsize} candidates x {args.trials} games of {args.steps} steps; "
          f"mean parameters = {np.round(es.mean, 2).tolist()}")  # fmt: skip
    print(f"\n| {args.test_games} whole games (new seeds) | points won - lost per game | "
          "median | agent steps per game |\n|---|---:|---:|---:|")  # fmt: skip
    for name, points, length in rows:
        print(f"| {name} | {points.mean():+.1f} ± {points.std():.1f} | "
              f"{np.median(points):+.0f} | {length:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
