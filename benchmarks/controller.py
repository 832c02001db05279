"""How fast the agent plays CarRacing, batched or not, one generation local vs Dask, and
Pong's generations with the candidates in blocks or one per task.

    python benchmarks/controller.py [--device cuda]
    python benchmarks/controller.py --only blocks    # table 3 alone

Prints three Markdown tables (the README has them):

1. Agent steps/s in the real game in one process: V + M + C for 1 game at a time versus
   4 games stepped together with one batched V, M and C call per step.
2. The wall time of one CMA-ES generation (population 8, 2 episodes each, 150 steps) with
   the local worker processes versus a Dask ``LocalCluster`` of the same size on
   loopback, measured one after the other in this run.
3. Pong (where V's convolutions are most of a step): the wall time of a generation of the
   laptop preset's size (12 candidates × 2 games, here of ``--steps`` steps) on 2 local
   workers (``--workers``), each playing blocks of candidates, a block in one batch
   (``RealGame`` now), versus one candidate per task (as on Dask, and as every executor
   did before), the two measured in turns on warm workers.

V and M are untrained, with the laptop preset's sizes (speed does not depend on training).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wmtutor.controller import Agent, Controller, RealGame, run_episodes, train_controller
from wmtutor.envs import GAMES, make_env
from wmtutor.mdnrnn import MDNRNN, load_mdnrnn
from wmtutor.presets import Controller as ControllerConfig
from wmtutor.presets import get_preset
from wmtutor.training import save_checkpoint
from wmtutor.utils import get_device
from wmtutor.vae import ConvVAE, load_vae


def make_spec(folder: Path, game: str, device: torch.device) -> dict:
    preset = get_preset("laptop").game(game)
    z_dim, hidden = preset.vae.z_dim, preset.mdnrnn.hidden
    torch.manual_seed(0)
    save_checkpoint(folder / "vae.pt", model=ConvVAE(z_dim).state_dict(),
                    config={"architecture": "ConvVAE-v1", "z_dim": z_dim})  # fmt: skip
    action_dim = GAMES[game].action_dim
    save_checkpoint(folder / "m.pt", model=MDNRNN(z_dim, action_dim, hidden).state_dict(),
                    config={"architecture": "MDNRNN-v1", "z_dim": z_dim, "action_dim": action_dim,
                            "hidden": hidden, "n_gaussians": 5})  # fmt: skip
    return {"game": game, "vae": str(folder / "vae.pt"), "mdnrnn": str(folder / "m.pt"),
            "inputs": "zh", "frame_skip": 1, "device": str(device)}  # fmt: skip


def agent_steps_per_s(spec: dict, n_envs: int, steps: int) -> float:
    torch.set_num_threads(1)
    device = torch.device(spec["device"])
    vae, mdnrnn = load_vae(spec["vae"], device=device), load_mdnrnn(spec["mdnrnn"], device=device)
    envs = [make_env(spec["game"]) for _ in range(n_envs)]
    controller = Controller(vae.z_dim, mdnrnn.hidden, 3, device=device)
    agent = Agent(vae, mdnrnn, controller, envs[0].adapter)
    agent.controller.set_params(np.random.default_rng(0).normal(0, 0.1, agent.controller.n_params))
    start = time.perf_counter()
    out = run_episodes(agent, envs, list(range(n_envs)), max_steps=steps)
    return out["lengths"].sum() / (time.perf_counter() - start)


def generation_seconds(spec: dict, executor=None, workers: int = 2) -> float:
    config = ControllerConfig(popsize=8, trials=2, generations=1, max_steps=150)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        judge = RealGame(spec, executor=executor, workers=workers)
        train_controller(tmp, config, judge, progress=False)
        return time.perf_counter() - start


class OnePerTask(RealGame):
    """``RealGame`` as on an executor without a worker count: one candidate per task."""

    def n_blocks(self, population: int, trials: int) -> int:
        return population


def population_seconds(judges: dict, popsize: int, trials: int, steps: int,
                       repeats: int) -> dict:  # fmt: skip
    """The best of ``repeats`` timed generations per judge, in turns, after a warm-up each."""
    n_params = next(iter(judges.values())).n_params
    params = np.random.default_rng(0).normal(0, 0.1, (popsize, n_params))
    for judge in judges.values():  # starts the workers and their agents and games
        judge.population(params, 0, trials, steps)
    times: dict = {name: [] for name in judges}
    for r in range(repeats):
        for name, judge in judges.items():
            start = time.perf_counter()
            judge.population(params, r + 1, trials, steps)
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def blocks_table(device: torch.device, steps: int, repeats: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = {**make_spec(Path(tmp), "pong", device), "frame_skip": 1}
        judges = {"blocks": RealGame(spec, workers=workers),
                  "one": OnePerTask(spec, workers=workers)}  # fmt: skip
        block = 12 // judges["blocks"].n_blocks(12, 2)
        try:
            t = population_seconds(judges, 12, 2, steps, repeats)
        finally:
            for judge in judges.values():
                judge.close()
    print(f"| Pong, one generation: 12 candidates × 2 games × {steps} steps, {workers} "
          "workers | seconds |\n|---|---:|")  # fmt: skip
    print(f"| blocks of {block} candidates, each in one batch (now) | {t['blocks']:.1f} |")
    print(f"| one candidate per task (before; Dask still) | {t['one']:.1f} |")
    print(f"\none per task / blocks: {t['one'] / t['blocks']:.2f} (best of {repeats} each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per game, table 1")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: as wmtutor's)")
    parser.add_argument("--only", choices=["blocks"], help="table 3 alone")
    parser.add_argument("--repeats", type=int, default=3, help="timed generations, table 3")
    parser.add_argument("--workers", type=int, default=2, help="local workers, table 3")
    args = parser.parse_args()
    device = get_device(args.device)
    print(f"device: {device}")
    if args.only == "blocks":
        blocks_table(device, args.steps, args.repeats, args.workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec(Path(tmp), "carracing", device)
        one = agent_steps_per_s(spec, 1, args.steps)
        four = agent_steps_per_s(spec, 4, args.steps)
        print("| CarRacing, one process | agent steps/s |\n|---|---:|")
        print(f"| 1 game at a time | {one:.0f} |\n| 4 games, batched V+M+C | {four:.0f} |")
        print(f"\nbatched / one: {four / one:.2f}\n", flush=True)

        from distributed import Client, LocalCluster

        local = generation_seconds(spec, workers=2)
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)  # fmt: skip
        with cluster, Client(cluster) as client:
            dask = generation_seconds(spec, executor=client.get_executor())
        print("| one generation: 8 candidates × 2 episodes × 150 steps | seconds |")
        print("|---|---:|")
        print(f"| 2 local worker processes | {local:.1f} |")
        print(f"| Dask LocalCluster, 2 workers | {dask:.1f} |\n")
    blocks_table(device, args.steps, args.repeats, args.workers)


if __name__ == "__main__":
    main()
