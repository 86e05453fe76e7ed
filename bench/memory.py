"""Peak memory of training and of 512x512 inference, each measured in a fresh process.

Cases (each a child process, so that one's peak cannot hide another's):

* ``baseline``: Python with torch, diffusers and semflow imported;
* ``train-demo``: three training steps (loss, backward, fused AdamW) of the demo model (pixel space, 32x32,
  batch 16, UNet 16-32-64);
* ``sd15-inference-512``: one segmentation step at 512x512 with Stable Diffusion 1.5-sized networks, built
  randomly from their configs (no weights are downloaded): the SD1.5 VAE encodes the image (latents 4x64x64),
  semflow's ``unet2d-condition`` backbone (:class:`semflow.networks.unet_condition.NullTextUNet`: SD1.5's
  ``UNet2DConditionModel``, 860 M parameters, with a fixed 77x768 null text embedding) makes one velocity
  evaluation, the VAE decodes;
* ``sd15-train-512``: that backbone's forward and backward at batch 1 on 64x64 latents (512x512 images).
  The AdamW state (two float32 moments, 8 bytes a parameter) is added by arithmetic rather than allocated,
  to stay within the memory a shared machine can spare; the table says so.

CPU: peak resident set size (``ru_maxrss``). GPU (``--device cuda``): ``torch.cuda.max_memory_allocated``.

Example::

    nice -n 19 python bench/memory.py            # all cases on the CPU (a few minutes on 2 cores)

Prints a Markdown table and writes ``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from timing import markdown, write

SD15_VAE: dict[str, Any] = {  # stable-diffusion-v1-5/vae/config.json
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 512,
    "block_out_channels": [128, 256, 512, 512], "norm_num_groups": 32,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
CASES = ("baseline", "train-demo", "sd15-inference-512", "sd15-train-512")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated cases of {', '.join(CASES)}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, as the other benchmarks)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # a child process runs one case
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/memory.json)")
    return parser.parse_args(argv)


def build_random(cls: type, config: dict[str, Any], device: str) -> torch.nn.Module:
    """A diffusers model of ``config`` with N(0, 0.02) weights, built without the slow default initialisation."""
    with torch.device("meta"):
        model = cls(**config)
    model = model.to_empty(device=device).eval()
    generator = torch.Generator(device).manual_seed(0)
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.normal_(0.0, 0.02, generator=generator) if tensor.is_floating_point() else tensor.zero_()
    return model


def run_case(case: str, device: str) -> dict[str, Any]:
    """Run one case in this process; returns its timings and sizes."""
    import diffusers  # noqa: F401  (the baseline imports what the others do)

    from semflow.config import demo_config
    from semflow.data import open_dataset
    from semflow.models.semflow import SemFlowPipeline

    result: dict[str, Any] = {}
    start = time.perf_counter()
    if case == "train-demo":
        config = demo_config(32, seed=0)
        dataset = open_dataset(config.train.data, "train")
        pipe = SemFlowPipeline.from_config(config.model, dataset.info).to(device)
        optimizer = torch.optim.AdamW(pipe.trainable.parameters(), lr=1e-4, fused=True)
        batch = [dataset[i] for i in range(16)]
        images = torch.stack([b["image"] for b in batch]).float().div(255).to(device)
        labels = torch.stack([b["label"] for b in batch]).to(device)
        for _ in range(3):
            pipe.training_loss(images, labels).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        result["parameters"] = sum(p.numel() for p in pipe.trainable.parameters())
    elif case.startswith("sd15"):
        from diffusers import AutoencoderKL, UNet2DConditionModel

        from semflow.networks.unet_condition import CONTEXT_LENGTH, SD15_UNET, NullTextUNet

        config = {**SD15_UNET, "in_channels": 4, "out_channels": 4}
        null = torch.randn(1, CONTEXT_LENGTH, SD15_UNET["cross_attention_dim"], device=device)
        network = NullTextUNet(build_random(UNet2DConditionModel, config, device), null)
        result["parameters"] = sum(p.numel() for p in network.parameters())
        t = torch.tensor([500.0], device=device)
        if case == "sd15-inference-512":
            vae = build_random(AutoencoderKL, SD15_VAE, device)
            result["vae_parameters"] = sum(p.numel() for p in vae.parameters())
            result["build_s"] = time.perf_counter() - start
            with torch.no_grad():
                stage = time.perf_counter()
                z = vae.encode(torch.rand(1, 3, 512, 512, device=device) * 2 - 1).latent_dist.mean
                result["encode_s"] = time.perf_counter() - stage
                stage = time.perf_counter()
                z = z + network(z, t)
                result["unet_s"] = time.perf_counter() - stage
                stage = time.perf_counter()
                vae.decode(z)
                result["decode_s"] = time.perf_counter() - stage
        else:
            network.train()
            result["build_s"] = time.perf_counter() - start
            stage = time.perf_counter()
            z = torch.randn(1, 4, 64, 64, device=device)
            network(z, t).square().mean().backward()
            result["forward_backward_s"] = time.perf_counter() - stage
            result["adamw_state_mib_computed"] = 8 * result["parameters"] / 2**20
    result["seconds"] = time.perf_counter() - start
    if device.startswith("cuda"):
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)  # here only to be recorded with the machine; each case sets its own
    if args.case:
        print(json.dumps(run_case(args.case, args.device)))
        return
    began = time.perf_counter()
    results: dict[str, Any] = {}
    for case in args.cases.split(","):
        proc = subprocess.run([sys.executable, __file__, "--case", case, "--device", args.device,
                               "--threads", str(args.threads)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"case {case} failed:\n{proc.stderr[-3000:]}")
        results[case] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{case}: {results[case]['peak_mib']:.0f} MiB in {results[case]['seconds']:.0f} s", flush=True)
    rows = []
    for case, r in results.items():
        note = ""
        if case == "sd15-inference-512":
            note = (f"UNet {r['parameters'] / 1e6:.0f} M + VAE {r['vae_parameters'] / 1e6:.0f} M params; encode "
                    f"{r['encode_s']:.1f} s, 1 UNet call {r['unet_s']:.1f} s, decode {r['decode_s']:.1f} s")
        elif case == "sd15-train-512":
            with_adam = r["peak_mib"] + r["adamw_state_mib_computed"]
            note = (f"forward+backward {r['forward_backward_s']:.1f} s; + AdamW state (computed, "
                    f"{r['adamw_state_mib_computed']:.0f} MiB) = {with_adam:.0f} MiB")
        elif case == "train-demo":
            note = f"{r['parameters'] / 1e6:.2f} M params, 3 steps"
        rows.append([case, r["peak_mib"], note])
    unit = "peak GPU MiB (allocated)" if args.device.startswith("cuda") else "peak RSS MiB"
    print()
    print(markdown([f"case ({args.device})", unit, "notes"], rows))
    path = write("memory", {"device": args.device, "cases": results, "wall_seconds": time.perf_counter() - began},
                 args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
