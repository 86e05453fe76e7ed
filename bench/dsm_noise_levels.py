"""Where a trained DSM model knows the mask: its x0 estimate at each diffusion step, with the true image and another.

At step ``k`` the noisy true mask latent ``x_k`` and the image latent go in; the predicted ``eps`` gives
``x0 = (x_k - sqrt(1 - abar_k) eps) / sqrt(abar_k)``, decoded to classes by the nearest palette colour. The pixel
accuracy of that estimate, with the true image and with the batch's images rolled by one (another image), shows
whether and at which noise levels the network reads the image. Sampling starts at ``k = 999``.

Example::

    semflow train --method dsm --data shapes:size=16 --out runs/dsm16 --size 16 16 --steps 2000 --batch-size 16 \\
        --lr 2e-3 --palette spread --set 'model.network_args={"block_out_channels":[16,32,64]}'
    python bench/dsm_noise_levels.py --model runs/dsm16 --data shapes:size=16,length=64

Prints a Markdown table and writes ``bench/results/dsm_noise_levels.json``.
"""

from __future__ import annotations

import argparse

import torch
from timing import markdown, write

from semflow.data import open_dataset
from semflow.models.semflow import SemFlowPipeline


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--levels", default="50,200,500,800,950,999")
    args = parser.parse_args()
    pipe = SemFlowPipeline.from_pretrained(args.model)
    test = open_dataset(args.data, "test")
    samples = [test[i] for i in range(min(args.images, len(test)))]
    images = torch.stack([s["image"].float() / 255 for s in samples])
    labels = torch.stack([s["label"] for s in samples])
    generator = torch.Generator().manual_seed(0)
    z_image, x0 = pipe.encode_input(images), pipe.encode_masks(labels, generator=generator)
    schedule = pipe.noise_schedule
    rows = []
    for k in (int(v) for v in args.levels.split(",")):
        steps = torch.full((len(samples),), k)
        eps = torch.randn(x0.shape, generator=generator)
        x_k = schedule.add_noise(x0, eps, steps)
        abar = schedule.alphas_cumprod[k]
        row = [k]
        for condition in (z_image, z_image.roll(1, 0)):
            predicted = pipe.predict_noise(pipe.network, x_k, condition, steps)
            estimate = (x_k - (1 - abar).sqrt() * predicted) / abar.sqrt()
            if condition is z_image:
                row.append(float(((predicted - eps) ** 2).mean()))
            row.append(float((pipe.palette.decode(pipe.decode_pseudo_masks(estimate)) == labels).float().mean()))
        rows.append(row)
    headers = ["k", "eps MSE", "x0 pixel acc. (true image)", "x0 pixel acc. (another image)"]
    print(markdown(headers, rows))
    write("dsm_noise_levels", {"model": args.model, "data": args.data, "rows": [dict(zip(headers, r)) for r in rows]})


if __name__ == "__main__":
    main()
