"""How fast M trains on this machine, in fp32 and bf16.

    python benchmarks/mdnrnn.py       # CarRacing-sized and Doom-sized M, batch 64, length 100

Each measurement runs in its own process: Adam training steps (forward, the full loss,
backward, gradient clipping) on random latents for ``--seconds`` after a warm-up; the
figure is sequence-steps per second (batch × length per step). Configurations alternate
fp32, bf16, fp32, ... and the table shows the median of the rounds. Prints a Markdown
table (the README has it).
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
from wmtutor.mdnrnn import MDNRNN, mdnrnn_loss
from wmtutor.training import autocast
from wmtutor.utils import get_device
precision, seconds = sys.argv[1], float(sys.argv[6])
batch, length, hidden, z_dim = map(int, sys.argv[2:6])
device = get_device(sys.argv[7] or None)
torch.manual_seed(0)
model = MDNRNN(z_dim, 3, hidden).to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
z = torch.randn(batch, length, z_dim, device=device)
a = torch.randn(batch, length, 3, device=device)
reward = torch.zeros(batch, length, device=device)
done, mask = torch.zeros_like(reward), torch.ones_like(reward)
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

def step():
    with autocast(precision, device):
        prediction, _, _ = model(z, a)
    loss = mdnrnn_loss(prediction, z, reward, done, mask)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()

for _ in range(3):
    step()
sync()
n, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    step()
    n += batch * length
sync()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if device.type == "cuda":
    peak = torch.cuda.max_memory_allocated(device) / 2**20  # the GPU's memory, not the host's
rate = n / (time.perf_counter() - start)
print(json.dumps({"steps_per_s": rate, "peak_mib": peak, "device": str(device)}))
"""


def measure(precision: str, batch: int, length: int, hidden: int, z_dim: int, seconds: float,
            device: str = ""):  # fmt: skip
    args = [precision, batch, length, hidden, z_dim, seconds, device]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    from wmtutor.training import precision_note

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="", help="cpu, cuda (default: wmtutor's choice)")
    args = parser.parse_args()
    sizes = [("CarRacing-sized", 256, 32), ("Doom-sized (paper)", 512, 64)]
    results: dict[tuple, list[dict]] = {}
    for _ in range(args.rounds):
        for name, hidden, z_dim in sizes:
            for precision in ("fp32", "bf16"):
                row = measure(precision, args.batch, args.length, hidden, z_dim, args.seconds,
                              args.device)  # fmt: skip
                results.setdefault((name, precision), []).append(row)
    device = next(iter(results.values()))[0]["device"]
    print(
        f"MDN-RNN training on {device}, batch {args.batch} × length {args.length}, "
        f"median of {args.rounds} rounds of {args.seconds:g} s; {precision_note(device)}\n"
    )
    print("| M | hidden | z_dim | fp32 steps/s | bf16 steps/s | bf16 / fp32 | peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, hidden, z_dim in sizes:
        f = statistics.median(r["steps_per_s"] for r in results[(name, "fp32")])
        b = statistics.median(r["steps_per_s"] for r in results[(name, "bf16")])
        peak = max(r["peak_mib"] for p in ("fp32", "bf16") for r in results[(name, p)])
        print(f"| {name} | {hidden} | {z_dim} | {f:.0f} | {b:.0f} | {b / f:.2f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
