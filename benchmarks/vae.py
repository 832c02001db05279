"""How fast V trains and encodes on this machine, in fp32 and bf16, and its peak memory.

    python benchmarks/vae.py                  # batch 64 and 128, fp32 and bf16, 2 rounds
    python benchmarks/vae.py --quality runs/carracing/laptop/seed0/rollouts --epochs 2
    python benchmarks/vae.py --loader runs/doom/laptop/seed0/rollouts   # the data loader alone

The second form trains V twice on real rollouts, fp32 then bf16 (the laptop preset's
other settings), and prints the held-out loss after each epoch: bf16 is offered only
where it does not hurt the reconstruction.

Each measurement runs in its own process (so its peak memory is its own): Adam (fused)
training steps on random uint8 frames for ``--seconds`` after a warm-up, then the
frames/s. The configurations alternate (fp32, bf16, fp32, bf16, ...) and the table shows
the median of the rounds, so a noisy neighbour hurts both alike. Encoding (``encode``,
no gradient) is measured the same way. Prints a Markdown table (the README has it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from wmtutor.training import autocast
from wmtutor.utils import get_device
from wmtutor.vae import ConvVAE, to_input, vae_loss
mode, precision = sys.argv[1], sys.argv[2]
batch, seconds, z_dim = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
device = get_device(sys.argv[6] or None)
torch.manual_seed(0)
model = ConvVAE(z_dim).to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
frames = torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8, device=device)
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

def step():
    x = to_input(frames)
    if mode == "train":
        with autocast(precision, device):
            x_hat, mu, logvar = model(x)
        loss, _, _ = vae_loss(x, x_hat, mu, logvar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    else:
        with torch.no_grad(), autocast(precision, device):
            model.encode(x)

for _ in range(3):
    step()
sync()
n, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    step()
    n += batch
sync()
fps = n / (time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if device.type == "cuda":
    peak = torch.cuda.max_memory_allocated(device) / 2**20  # the GPU's memory, not the host's
print(json.dumps({"fps": fps, "peak_mib": peak, "device": str(device)}))
"""


def measure(mode: str, precision: str, batch: int, seconds: float, z_dim: int,
            device: str = "") -> dict:  # fmt: skip
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            mode,
            precision,
            str(batch),
            str(seconds),
            str(z_dim),
            device,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def quality(rollouts: str, epochs: int, game: str, device: str = "") -> None:
    import dataclasses
    import tempfile
    import time

    from wmtutor.presets import get_preset
    from wmtutor.vae import train_vae

    config = get_preset("laptop").game(game).vae
    print(f"{game}, laptop preset V, {epochs} epochs on {rollouts}\n")
    print("| precision | epoch | held-out loss | recon | KL | frames/s | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for precision in ("fp32", "bf16"):
        cfg = dataclasses.replace(config, epochs=epochs, precision=precision)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            log = train_vae(rollouts, f"{tmp}/vae.pt", cfg, device=device, progress=False)
            wall = time.perf_counter() - start
        for r in (r for r in log if r["kind"] == "epoch" and r["epoch"] > 0):
            print(
                f"| {precision} | {r['epoch']} | {r['loss']:.1f} | {r['recon']:.1f} "
                f"| {r['kl']:.1f} | {r['frames_per_s']:.0f} | {wall:.0f} |",
                flush=True,
            )


def loader(rollouts: str, batch: int, seconds: float, rounds: int) -> None:
    """Frames/s the data loader delivers (no model): a frame at a time through the
    DataLoader's collate, against whole batches cut from the buffer, 0 and 2 workers, and
    batches read from the frame cache (written once first, into a temporary folder, and
    timed). The four alternate, ``rounds`` times; the median is shown."""
    import tempfile
    import time
    from pathlib import Path

    from torch.utils.data import DataLoader

    from wmtutor.datasets import (
        FRAME_BYTES,
        CachedFrames,
        FrameDataset,
        rollout_files,
        write_frame_cache,
    )

    temp = tempfile.TemporaryDirectory()
    start = time.perf_counter()
    cache = write_frame_cache(rollout_files(rollouts), Path(temp.name) / "frames.npy")
    written = time.perf_counter() - start

    def rate(kind: str) -> float:
        if kind == "frames":
            ds = FrameDataset(rollouts, seed=0)
            it = iter(DataLoader(ds, batch_size=batch))
        elif kind == "cache":
            it = iter(DataLoader(CachedFrames(cache, batch), batch_size=None))
        else:
            ds = FrameDataset(rollouts, seed=0, batch_size=batch)
            it = iter(DataLoader(ds, batch_size=None, num_workers=int(kind[-1])))
        n, start = 0, None
        for frames in it:
            if start is None:  # the first batch pays for starting workers, filling buffers
                start = time.perf_counter()
                continue
            n += len(frames)
            if time.perf_counter() - start > seconds:
                break
        return n / (time.perf_counter() - start)

    kinds = {"frames": "a frame at a time, collated (before)", "batches0": "whole batches, "
             "no workers", "batches2": "whole batches, 2 loader workers",
             "cache": "the frame cache, no workers"}  # fmt: skip
    results = {k: [] for k in kinds}
    for _ in range(rounds):
        for kind in kinds:
            results[kind].append(rate(kind))
    base = statistics.median(results["frames"])
    n = len(CachedFrames(cache, 1))
    temp.cleanup()
    print(f"V's data loader alone, batches of {batch} from {rollouts}, median of {rounds}")
    print(f"(the frame cache: {n} frames, {n * FRAME_BYTES / 2**20:.0f} MiB, written in "
          f"{written:.1f} s)\n")  # fmt: skip
    print("| loader | frames/s | × before |\n|---|---:|---:|")
    for kind, label in kinds.items():
        f = statistics.median(results[kind])
        print(f"| {label} | {f:.0f} | {f / base:.2f} |")


def main() -> None:
    from wmtutor.training import precision_note

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--encode-batch", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--z-dim", type=int, default=32)
    parser.add_argument("--quality", metavar="ROLLOUTS", help="train fp32 and bf16 on these")
    parser.add_argument("--epochs", type=int, default=2, help="with --quality")
    parser.add_argument("--game", default="carracing", help="with --quality: whose preset")
    parser.add_argument("--device", default="", help="cpu, cuda (default: wmtutor's choice)")
    parser.add_argument("--loader", metavar="ROLLOUTS", help="time the data loader on these")
    args = parser.parse_args()
    if args.loader:
        loader(args.loader, args.batches[0], args.seconds, args.rounds)
        return
    if args.quality:
        quality(args.quality, args.epochs, args.game, args.device or None)
        return

    jobs = [("train", b) for b in args.batches] + [("encode", args.encode_batch)]
    results: dict[tuple, list[dict]] = {}
    for _ in range(args.rounds):
        for mode, batch in jobs:
            for precision in ("fp32", "bf16"):
                row = measure(mode, precision, batch, args.seconds, args.z_dim, args.device)
                results.setdefault((mode, batch, precision), []).append(row)

    device = next(iter(results.values()))[0]["device"]
    print(f"ConvVAE(z_dim={args.z_dim}) on {device}, median of {args.rounds} rounds of "
          f"{args.seconds:g} s; {precision_note(device)}\n")  # fmt: skip
    print("| work | batch | fp32 frames/s | bf16 frames/s | bf16 / fp32 | peak MiB fp32 / bf16 |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, batch in jobs:
        fp32, bf16 = results[(mode, batch, "fp32")], results[(mode, batch, "bf16")]
        f = statistics.median(r["fps"] for r in fp32)
        b = statistics.median(r["fps"] for r in bf16)
        mem = f"{max(r['peak_mib'] for r in fp32):.0f} / {max(r['peak_mib'] for r in bf16):.0f}"
        print(f"| {mode} | {batch} | {f:.0f} | {b:.0f} | {b / f:.2f} | {mem} |", flush=True)


if __name__ == "__main__":
    main()
