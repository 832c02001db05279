"""How fast the agent plays CarRacing, batched or not, and one generation local vs Dask.

    python benchmarks/controller.py [--device cuda]

Prints two Markdown tables (the README has them):

1. Agent steps/s in the real game in one process: V + M + C for 1 game at a time versus
   4 games stepped together with one batched V, M and C call per step.
2. The wall time of one CMA-ES generation (population 8, 2 episodes each, 150 steps) with
   the local worker processes versus a Dask ``LocalCluster`` of the same size on
   loopback, measured one after the other in this run.

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
from wmtutor.envs import make_env
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
    save_checkpoint(folder / "m.pt", model=MDNRNN(z_dim, 3, hidden).state_dict(),
                    config={"architecture": "MDNRNN-v1", "z_dim": z_dim, "action_dim": 3,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per game, table 1")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: as wmtutor's)")
    args = parser.parse_args()
    device = get_device(args.device)
    print(f"device: {device}")
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
        print(f"| Dask LocalCluster, 2 workers | {dask:.1f} |")


if __name__ == "__main__":
    main()
