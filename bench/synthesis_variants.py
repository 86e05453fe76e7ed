"""CamVid synthesis experiments (docs/synthesis.md, "Tried this round on CamVid", "Seeds and budgets on CamVid"):
train a SemFlow variant or one of ``bench paper``'s rivals, score it by the judge, or segment with it.

The variants are measurement only: each is a patch applied in this process, never an option of the library (they
lost their rows, docs/quality.md "Tried and removed"). ``--synthesis-condition`` re-implements the SemFlow loss with
the condition added (the library's loss has no condition to pass), so it measures the loss as it was at ``e54c282``.
Three commands:

* ``train OUT [KEY=VALUE ...]``: ``bench paper``'s SemFlow ``recommended`` model on CamVid (48x64, 2000 steps,
  its configuration code: :func:`semflow.experiments.paper.run_config`) with overrides, e.g.
  ``model.state_image_noise=0.5`` or ``model.objective.t0_mass=0.2``; ``--x-prediction TMIN`` trains the image part
  as an image prediction: the network's image channels are ``x0``, the velocity ``(z - x0) / max(t, TMIN)``
  (Li & He 2025's x-prediction with the velocity loss; pass it again when scoring); ``--synthesis-condition SHARE``
  gives the network the mask end's mask part and a flag as extra input channels: the known mask at full strength in
  every synthesis call, zeros in segmentation and the self-aligned solves, and in training for ``SHARE`` of the
  states at ``t > 0`` (pass it again when scoring or segmenting; ``--cfg W`` guides such a model's synthesis
  classifier-free, ``v_zeros + W (v_mask - v_zeros)``; ``--one-hot`` feeds the mask as class fractions, as
  ``noise-flow`` takes it); ``--model NAME`` trains another of ``bench
  paper``'s models instead, e.g. ``noise-flow`` (``score`` takes it without a sampling variant).
* ``segment MODEL --out FILE``: CamVid mIoU (%) of 100 evenly spaced test images at 1 and 25 ``snap`` steps (what
  ``semflow evaluate --steps 1,25 --solver snap --test-images 100`` scores), for models only a patch loads.
* ``texture MODEL``: the ``eta`` that ``model.match_texture`` (``recommended``) chooses after training, measured on a
  model trained before the match existed, with every candidate's ratio (docs/synthesis.md, "The texture matched
  after training").
* ``score MODEL --out FILE``: SIS-mIoU, FD, KID, both diversities, cycle mIoU and the HF ratio by the CamVid judge on
  100 evenly spaced test masks, 2 samples each at 25 steps (``bench/score_synthesis.py``'s protocol) with
  ``--eta``, and one sampling variant:

  - ``--known-mask``: the mask part's velocity replaced by the known ``mask - fill`` (the part follows its
    interpolant exactly, a fill drawn per sample);
  - ``--eta-early E --switch T``: ``eta = E`` at ``t > T`` and the model's ``eta`` below;
  - ``--rho R``: the time grid ``(i / N)^R`` (``R > 1``: steps denser at the image end);
  - ``--covering-scenes``: each sample's colours from one training scene drawn among those that show every class
    its mask shows (the most of them where none shows all);
  - ``--mixed-scenes``: each class of a sample coloured by its own training scene, drawn for it among the scenes that
    show it (colours mixed across scenes; ``SceneBank.draw`` replaced);
  - ``--guide L``: guidance from the known mask by the class head: at every step the predicted image ``x0 = z -
    t v`` moves by ``-L`` times the gradient of the head's summed cross-entropy against the mask, the head reading
    ``[x0, fill]`` at ``t = 0`` (as in segmentation): one more forward and backward pass a step.

    python bench/synthesis_variants.py train runs/variants/t0m0.2 model.objective.t0_mass=0.2
    python bench/synthesis_variants.py score runs/variants/t0m0.2 --judge runs/judges/camvid-KEY --eta 1 \
        --out runs/variants/t0m0.2.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import torch



def x_prediction(tmin: float) -> None:
    """Patch :class:`~semflow.flow.velocity.VelocityModel`: the first half of a stacked state's output channels are
    the image ``x0``, turned into the velocity ``(z - x0) / max(t, tmin)``."""
    from semflow.flow import velocity

    plain = velocity.VelocityModel._output

    def output(self, z, t, condition=None):
        out, logits = plain(self, z, t, condition)
        c = z.shape[1] // 2
        tb = t.view(-1, 1, 1, 1).to(out.dtype).clamp(min=tmin)
        return torch.cat([(z[:, :c] - out[:, :c]) / tb, out[:, c:]], dim=1), logits

    velocity.VelocityModel._output = output


def synthesis_condition(share: float, guidance: float = 1.0, one_hot: bool = False) -> None:
    """Patch :class:`~semflow.models.semflow.SemFlowPipeline`: the network takes the mask end's mask part and a flag as
    extra input channels, the known mask at full strength in every synthesis call and zeros elsewhere (segmentation,
    self-aligned solves). In training, ``share`` of the samples at ``t > 0`` (not the self-aligned ones) get it.
    Synthesis with ``guidance`` w != 1 is classifier-free guided: ``v_zeros + w (v_mask - v_zeros)``. With
    ``one_hot`` the mask enters as ``noise-flow`` takes it (class fractions per cell and a flag), not as the mask
    part."""
    import semflow.models.semflow as module
    from semflow.flow import velocity
    from semflow.losses import cross_entropy_loss
    from semflow.models.noise_flow import NoiseFlowSynthesizer

    cls = module.SemFlowPipeline
    channels = cls.network_channels.__func__

    def network_channels(klass, codec, dataset, config):
        inputs, outputs = channels(klass, codec, dataset, config)
        return inputs + (dataset.num_classes if one_hot else codec.latent_channels) + 1, outputs
    cls.network_channels = classmethod(network_channels)

    plain = velocity.VelocityModel._output
    model = {}  # the pipeline built last: synthesis reads the one-hot condition's classes through it

    def output(self, z, t, condition=None):
        if condition is None:
            extra = self.network.config.in_channels - z.shape[1]
            condition = z.new_zeros(z.shape[0], extra, *z.shape[2:])
        return plain(self, z, t, condition)
    velocity.VelocityModel._output = output

    def condition_of(z1, on, labels=None):  # (B, C + 1, h, w): the mask and a flag, zeros where ~on
        if one_hot:
            from semflow.models.mask_input import one_hot_mask

            pipe = model["pipe"]
            if labels is None:  # synthesis: the classes the mask end's mask part draws
                labels = pipe.palette.decode(pipe.decode_pseudo_masks(pipe.layout.mask_part(z1)).float())
            mask = one_hot_mask(labels, pipe.dataset.num_classes, pipe.dataset.ignore_index,
                                pipe.codec.downsample).to(z1)
        else:
            mask = z1.chunk(2, dim=1)[1]
        flag = torch.ones_like(mask[:, :1])
        return torch.cat([mask, flag], dim=1) * on.view(-1, 1, 1, 1).to(mask.dtype)

    init = cls.__init__

    def remember(self, *a, **kw):
        init(self, *a, **kw)
        model["pipe"] = self
    cls.__init__ = remember

    def loss(self, posterior, labels, trainable=None, generator=None, at=None):
        o, v_model = self.objective, self.velocity if trainable is None else trainable
        z0, z1 = self.training_ends(posterior, labels, generator)
        aligned = self.aligned_count(z0.shape[0], at)
        t = module.sample_time(z0.shape[0] - aligned, z0.device, generator, o.t0_mass, o.t1_mass)
        z_t = module.sample_path(z0[aligned:], z1[aligned:], t).z_t
        on = (t > 0) & (torch.rand(t.shape, generator=generator, device=t.device) < share)
        if aligned:
            own = module.self_aligned_sample(v_model, z0[:aligned], z1[:aligned], o.self_align_steps, generator)
            t, z_t = torch.cat([own.t, t]), torch.cat([own.z_t, z_t])
            z0, z1 = torch.cat([own.z0, z0[aligned:]]), torch.cat([own.z1, z1[aligned:]])
            on = torch.cat([torch.zeros(aligned, dtype=torch.bool, device=on.device), on])
        dtype = next(v_model.parameters()).dtype
        condition = condition_of(z1, on, labels).to(dtype)
        v, _, _, logits = v_model(z_t.to(dtype), t, full=True, condition=condition)
        value = self.layout.mean((v.float() - (z1 - z0).float()) ** 2)
        if logits is not None:
            value = value + cross_entropy_loss(logits, labels, self.palette.ignore_index)
        return value
    cls.posterior_training_loss = loss

    def conditioned(velocity_model, z_init):  # noise-flow's guided field, on this field and condition
        cond = condition_of(z_init, torch.ones(z_init.shape[0], dtype=torch.bool))
        return NoiseFlowSynthesizer.guided_field(SimpleNamespace(velocity=velocity_model), cond, guidance)
    descending_velocity(conditioned)


def descending_velocity(wrap) -> None:
    """Patch the synthesis solve: ``wrap(velocity, z_init)`` gives the field a descending solve from ``t = 1`` uses."""
    import semflow.models.semflow as module

    base = module.ODESolver

    class Solver(base):
        def sample(self, z_init, time_grid, **kw):
            if float(time_grid[0]) != 1.0:
                return super().sample(z_init, time_grid, **kw)
            return base(wrap(self.velocity, z_init)).sample(z_init, time_grid, **kw)

    module.ODESolver = Solver


def sampling_variant(args, model) -> None:
    import semflow.models.semflow as module
    from semflow.flow import solver
    from semflow.seeding import make_generator

    variants = [args.known_mask, args.eta_early is not None, args.rho, args.covering_scenes, args.mixed_scenes,
                args.guide]
    if any(variants) and not hasattr(model, "layout"):
        raise SystemExit(f"{args.model}: a {model.config.method} model; the sampling variants patch SemFlow's synthesis")
    layout = getattr(model, "layout", None)
    if args.known_mask:
        def known(velocity, z_init):
            mask = layout.mask_part(z_init)
            fill = layout.noise * torch.randn(mask.shape, generator=make_generator(args.seed + 1))
            return lambda z, t: torch.cat([layout.image_part(velocity(z, t)), mask - fill.to(mask)], dim=1)
        descending_velocity(known)
    if args.eta_early is not None:
        plain = solver.RenoisedSource.step

        def step(self, v, z, t0, t1):
            late, self.eta = self.eta, args.eta_early if float(t0) > args.switch else self.eta
            try:
                return plain(self, v, z, t0, t1)
            finally:
                self.eta = late
        solver.RenoisedSource.step = step
    if args.rho is not None:
        uniform = module.time_grid
        module.time_grid = lambda steps, reverse=False, device=None: (
            uniform(steps, reverse, device) ** args.rho if reverse else uniform(steps, reverse, device))
    if args.covering_scenes:
        bank, paint = model.require_scenes(), module.paint
        draws = make_generator(args.seed + 2)

        def covering_paint(labels, scenes, size):
            shown = torch.zeros(labels.shape[0], bank.present.shape[1], dtype=torch.bool)
            for b, classes in enumerate(labels.flatten(1)):
                shown[b, classes[(classes >= 0) & (classes < shown.shape[1])].unique()] = True
            covered = (bank.present.unsqueeze(0) | ~shown.unsqueeze(1)).sum(-1)  # (B, scenes): classes covered
            best = covered == covered.max(dim=1, keepdim=True).values
            pick = torch.stack([torch.multinomial(row.float(), 1, generator=draws)[0] for row in best])
            return paint(labels, bank.complete(bank.means[pick], bank.present[pick]).to(scenes), size)
        module.paint = covering_paint
    if args.mixed_scenes:
        from semflow.flow.class_means import SceneBank

        def per_class(self, count, generator=None):
            weights = self.present.T.float()  # (K + 1, N): the scenes each class may come from
            shown = weights.sum(1) > 0
            weights[~shown] = 1.0
            index = torch.multinomial(weights, count, replacement=True, generator=generator).T  # (count, K + 1)
            means = self.means[index, torch.arange(weights.shape[0])]
            return torch.where(shown.unsqueeze(-1), means, self.fallback.to(means.dtype))
        SceneBank.draw = per_class
    if args.guide:
        import torch.nn.functional as F

        ignore = model.palette.ignore_index if model.palette.ignore_index is not None else -100

        def guided(velocity, z_init):
            labels = model.palette.decode(model.decode_pseudo_masks(layout.mask_part(z_init)).float())

            def v(z, t):
                out = velocity(z, t)
                image, tt = layout.image_part(out), float(t[0])
                x0 = (layout.image_part(z) - tt * image).detach()
                with torch.enable_grad():
                    x = x0.clone().requires_grad_(True)
                    state = layout.image_state(x, make_generator(0), per_sample=False)
                    logits = model.velocity.predict(state, torch.zeros_like(t)).logits
                    ce = F.cross_entropy(logits.float(), labels.to(logits.device), ignore_index=ignore, reduction="sum")
                    (g,) = torch.autograd.grad(ce, x)
                return torch.cat([image + args.guide * g / tt, layout.mask_part(out)], dim=1)
            return v
        descending_velocity(guided)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("out", type=Path)
    t.add_argument("overrides", nargs="*")
    t.add_argument("--model", default="semflow", help="which of bench paper's models (default semflow)")
    g = sub.add_parser("segment")
    g.add_argument("model", type=Path)
    g.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("texture")
    m.add_argument("model", type=Path)
    s = sub.add_parser("score")
    s.add_argument("model", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--judge", type=Path, required=True, help="judge folder, as `semflow bench judge` prints it")
    s.add_argument("--eta", type=float)
    s.add_argument("--known-mask", action="store_true")
    s.add_argument("--eta-early", type=float)
    s.add_argument("--switch", type=float, default=0.5)
    s.add_argument("--rho", type=float)
    s.add_argument("--guide", type=float)
    s.add_argument("--covering-scenes", action="store_true")
    s.add_argument("--mixed-scenes", action="store_true")
    s.add_argument("--seed", type=int, default=0)
    for q in (t, g, m, s):
        q.add_argument("--data", default="camvid:../shared/data/camvid", help="data set SPEC (bench paper\'s CamVid)")
        q.add_argument("--x-prediction", type=float, metavar="TMIN")
        q.add_argument("--synthesis-condition", type=float, metavar="SHARE")
        q.add_argument("--one-hot", action="store_true", help="--synthesis-condition's mask as class fractions")
        q.add_argument("--cfg", type=float, default=1.0, metavar="W",
                       help="classifier-free guidance of a --synthesis-condition model's synthesis (default 1: none)")
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if getattr(args, "model", "semflow") != "semflow" and args.command == "train" and (
            args.x_prediction or args.synthesis_condition is not None):
        p.error("--x-prediction and --synthesis-condition patch SemFlow's field; train them with --model semflow")
    if (args.one_hot or args.cfg != 1.0) and args.synthesis_condition is None:
        p.error("--one-hot and --cfg apply to a --synthesis-condition model")
    from semflow.errors import SemflowInputError
    from semflow.models.noise_flow import check_guidance

    try:
        check_guidance(args.cfg, "--cfg")
    except SemflowInputError as e:
        p.error(str(e))
    torch.set_num_threads(args.threads)
    if args.x_prediction:
        x_prediction(args.x_prediction)
    if args.synthesis_condition is not None:
        synthesis_condition(args.synthesis_condition, args.cfg, args.one_hot)

    if args.command == "train":
        from semflow.experiments.paper import PaperOptions, run_config
        from semflow.training import train

        options = PaperOptions(data=args.data, out=args.out, train_steps=2000, test_images=100, overrides=args.overrides)
        _, result = train(run_config(options, args.model), args.out, progress_bar=False, resume="latest")
        print("final loss", result.final_loss, "steps", result.steps)
        return

    from semflow.data import open_dataset
    from semflow.evaluation.judge import Judge
    from semflow.evaluation.segmentation import evaluate_segmentation
    from semflow.evaluation.subset import evenly_spaced_indices
    from semflow.evaluation.synthesis import evaluate_synthesis
    from semflow.io import write_json
    from semflow.models.base import Segmenter

    model = Segmenter.from_pretrained(args.model).eval()
    if args.command == "texture":  # the eta model.match_texture chooses, on a model trained before it existed
        from semflow.training.scenes import image_scenes

        model.config.match_texture = True
        began = time.perf_counter()
        line = model.finish_training(image_scenes(model, open_dataset(args.data, "train")))
        print(f"{line} ({time.perf_counter() - began:.1f} s on {torch.get_num_threads()} thread(s))")
        return
    dataset = open_dataset(args.data, "test")
    if args.command == "segment":  # semflow evaluate --steps 1,25 --solver snap --test-images 100, on a patched model
        r = evaluate_segmentation(model, dataset, [1, 25], solver="snap",
                                  indices=evenly_spaced_indices(len(dataset), 100)).to_json()
        row = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "miou": {k: 100 * v for k, v in r["miou"].items()}}
        print(json.dumps(row))
        write_json(row, args.out)
        return
    judge = Judge.load(args.judge).eval()
    if args.eta is not None:
        model.config.synthesis_eta = args.eta
    sampling_variant(args, model)
    r = evaluate_synthesis(model, dataset, judges={"judge": judge}, steps=25, samples=2, seed=args.seed,
                           batch_size=16, indices=evenly_spaced_indices(len(dataset), 100)).to_json()
    j = r["judged"]["judge"]
    row = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "fd_x1000": 1000 * j["fd"], "kid_x1e6": 1e6 * j["kid"], "sis_miou": 100 * j["sis_miou"],
           "diversity_features": j["diversity"], "diversity_l1": r["diversity_l1"], "cycle_miou": r["cycle_miou"],
           "hf_ratio": r.get("hf_ratio")}
    print(json.dumps(row))
    write_json(row, args.out)


if __name__ == "__main__":
    main()
