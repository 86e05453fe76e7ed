"""One end-to-end test per command, with tiny models; and the bad-input contract (exit 2, no partial files)."""

import json

import numpy as np
import pytest
from PIL import Image

from semflow.cli.main import main
from semflow.data import open_dataset

from tiny import tiny_train_args


def write_samples(folder, n=3, size=20):
    folder.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(f"shapes:size={size}", "val")
    for i in range(n):
        s = ds[i]
        Image.fromarray(s["image"].permute(1, 2, 0).numpy()).save(folder / f"img{i}.png")
        Image.fromarray(s["label"].numpy().astype(np.uint8)).save(folder / f"mask{i}.png")
    return folder


def test_train_writes_a_complete_model_folder(tiny_model):
    names = {p.name for p in tiny_model.iterdir()}
    assert {"semflow_config.json", "network", "codec", "train_config.json", "loss.csv"} <= names
    config = json.loads((tiny_model / "train_config.json").read_text())
    assert config["train"]["steps"] == 2 and config["model"]["size"] == [16, 16]
    rows = (tiny_model / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,elapsed_s" and rows[-1].startswith("2,")


def test_segment_writes_index_and_colour_pngs_at_input_size(tiny_model, tmp_path):
    inputs = write_samples(tmp_path / "in")
    for f in inputs.glob("mask*"):
        f.unlink()
    out = tmp_path / "out"
    assert main(["segment", "--model", str(tiny_model), "--steps", "2", str(inputs), "--out", str(out)]) == 0
    for i in range(3):
        index = Image.open(out / f"img{i}.png")
        color = Image.open(out / f"img{i}_color.png")
        assert index.mode == "L" and index.size == (20, 20) and np.asarray(index).max() < 5
        assert color.mode == "RGB" and color.size == (20, 20)


def test_synthesize_same_seed_same_images(tiny_model, tmp_path):
    masks = [str(p) for p in sorted(write_samples(tmp_path / "in").glob("mask*.png"))]
    args = ["synthesize", "--model", str(tiny_model), "--steps", "2", "--samples", "2", *masks]
    assert main(args + ["--seed", "3", "--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--seed", "3", "--out", str(tmp_path / "b")]) == 0
    assert main(args + ["--seed", "4", "--out", str(tmp_path / "c")]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == [f"mask{i}_{k}.png" for i in range(3) for k in range(2)]
    read = lambda d, f: np.asarray(Image.open(tmp_path / d / f))  # noqa: E731
    assert all(np.array_equal(read("a", f), read("b", f)) for f in files)
    assert not all(np.array_equal(read("a", f), read("c", f)) for f in files)
    assert read("a", files[0]).shape == (20, 20, 3)


def test_evaluate_prints_a_table_and_writes_json(tiny_model, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["evaluate", "--model", str(tiny_model), "--data", "shapes:size=24,length=5", "--steps", "1,3",
                 "--out", str(out)]) == 0
    assert "| 3 |" in capsys.readouterr().out
    m = json.loads(out.read_text())
    assert set(m["miou"]) == {"1", "3"} and set(m["pixel_accuracy"]) == {"1", "3"}
    assert set(m["per_class_iou"]["3"]) == {"background", "disc", "square", "triangle", "ring"}
    assert all(0 <= v <= 1 for v in m["miou"].values())


def test_evaluate_synthesis_scores_by_the_judge(tiny_model, tmp_path, capsys):
    """``--synthesis``: the judge is trained once into the cache (the tests' $SEMFLOW_CACHE) and reused; the scores are
    evaluate_synthesis's on the evenly spaced masks; a judge folder of other classes is one line, exit 2."""
    out = tmp_path / "syn.json"
    args = ["evaluate", "--model", str(tiny_model), "--data", "shapes:size=16,length=6", "--synthesis", "--steps",
            "1,2", "--test-images", "4", "--judge-steps", "2", "--judge-size", "16", "16", "--no-progress"]
    assert main(args + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    m = json.loads(out.read_text())
    assert "| judge |" in printed and (m["num_masks"], m["samples"], m["steps"]) == (4, 2, 2)
    judged = m["judged"]["judge"]
    assert 0 <= judged["sis_miou"] <= 1 and judged["fd"] >= 0 and judged["diversity"] >= 0 and judged["kid"] is not None
    assert main(args) == 0 and "reusing" in capsys.readouterr().out
    from semflow.evaluation.judge import Judge
    from semflow.data import DatasetInfo

    judge = Judge.load(m["judge_folder"])
    judge.info = DatasetInfo("other", ("a", "b"))
    judge.save(tmp_path / "other")
    assert main(args + ["--judge", str(tmp_path / "other"), "--out", str(tmp_path / "no.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected the same class list" in err[0] and not (tmp_path / "no.json").exists()


def test_evaluate_scores_the_evenly_spaced_subset_bench_paper_scores(tiny_model, tmp_path):
    from semflow.data import open_dataset
    from semflow.evaluation.segmentation import evaluate_segmentation
    from semflow.models.semflow import SemFlowPipeline

    out = tmp_path / "sub.json"
    assert main(["evaluate", "--model", str(tiny_model), "--data", "shapes:size=24,length=9", "--steps", "2",
                 "--test-images", "3", "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["num_images"] == 3
    # the first, middle and last image, as bench paper's --test-images 3 picks them
    direct = evaluate_segmentation(SemFlowPipeline.from_pretrained(tiny_model), open_dataset("shapes:size=24,length=9",
                                   "test"), [2], indices=[0, 4, 8]).to_json()
    assert m["miou"] == direct["miou"]


def test_encode_mask(tmp_path):
    Image.fromarray(np.array([[0, 100], [255, 7]], dtype=np.uint8)).save(tmp_path / "m.png")
    assert main(["encode-mask", str(tmp_path / "m.png"), "--out", str(tmp_path / "c.png")]) == 0
    rgb = np.asarray(Image.open(tmp_path / "c.png"))
    assert rgb[0, 1].tolist() == [100, 200, 200] and rgb[1, 0].tolist() == [255, 255, 255]
    assert rgb[1, 1].tolist() == [0, 50, 50]


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "2", "--size", "16", "--test-images", "4",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "index.html" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["miou"]) == {"1", "2", "5", "10", "25"}
    synthesis = metrics["synthesis"]  # both directions are reported
    assert synthesis["masks"] == 4 and synthesis["samples"] == 4 and synthesis["diversity_l1"] > 0
    assert 0 <= synthesis["cycle_miou"] <= 1 and metrics["preset"] == "recommended"
    assert metrics["solver"] == "snap"  # the recommended model's own solver, as its config says
    saved = json.loads((out / "model" / "semflow_config.json").read_text())
    assert saved["model"]["solver"] == "snap"
    page = (out / "index.html").read_text()
    assert "<th>Snap steps</th>" in page
    assert "cycle mIoU" in page and f"{synthesis['diversity_l1']:.4f}" in page
    # the samples' texture against the real images of the same masks (shapes carry stripes and noise)
    assert synthesis["hf_energy_real"] > 0.05 and synthesis["hf_energy"] >= 0
    assert synthesis["hf_ratio"] == pytest.approx(synthesis["hf_energy"] / synthesis["hf_energy_real"])
    assert f"{synthesis['hf_ratio']:.3f}" in page
    # The eta the model chose after training (recommended matches the training images' texture) is the one reported.
    assert synthesis["eta"] == saved["model"]["synthesis_eta"] and saved["model"]["match_texture"]
    assert f"(eta {synthesis['eta']:g})" in printed and f"<td>{synthesis['eta']:g}</td>" in page
    row = page.split('<div class="row">')[1]  # each mask's real image stands right before its samples
    assert row.index("real image") < row.index("synthesized #0") and row.count("real image") == 1
    assert "miou_vs_steps.png" in page and (out / "miou_vs_steps.png").stat().st_size > 1000
    for src in [s.split('"')[0] for s in page.split('src="')[1:]]:
        assert (out / src).is_file(), src
    assert (out / "model" / "semflow_config.json").is_file()
    # Without --rival the rival is not trained, and the demo says so and where its numbers are.
    assert "rival" not in metrics and "noise-flow rival: not trained here" in printed


def test_demo_with_the_rival_trains_noise_flow_for_as_many_steps_and_reports_it_beside_semflow(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "2", "--size", "16", "--test-images", "4", "--rival",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    rival = metrics["rival"]
    assert rival["method"] == "noise-flow" and rival["train"]["steps"] == metrics["train"]["steps"] == 2
    assert 0 <= rival["sis_miou"] <= 1 and rival["diversity_l1"] > 0 and rival["hf_ratio"] >= 0
    saved = json.loads((out / "rival" / "semflow_config.json").read_text())["model"]
    semflow = json.loads((out / "model" / "semflow_config.json").read_text())["model"]
    assert saved["method"] == "noise-flow" and saved["network_args"] == semflow["network_args"]
    assert f"diversity {rival['diversity_l1']:.4f}" in printed
    assert "Beside the noise-flow rival" in (out / "index.html").read_text()


def test_synthesize_eta_overrides_the_models_stochastic_steps(tiny_model, tmp_path, capsys):
    """--eta 0 is the ODE (other images than the model's own eta, the same with the same seed); a value outside
    [0, 1] and a solver without stochastic steps are refused in one line before anything is written."""
    masks = [str(p) for p in sorted(write_samples(tmp_path / "in", n=1).glob("mask*.png"))]
    args = ["synthesize", "--model", str(tiny_model), "--steps", "3", "--seed", "1", *masks]
    assert json.loads((tiny_model / "semflow_config.json").read_text())["model"]["synthesis_eta"] > 0
    for name, extra in (("own", []), ("ode", ["--eta", "0"]), ("ode2", ["--eta", "0"])):
        assert main(args + extra + ["--out", str(tmp_path / name)]) == 0
    read = lambda d: np.asarray(Image.open(tmp_path / d / "mask0_0.png"))  # noqa: E731
    assert np.array_equal(read("ode"), read("ode2")) and not np.array_equal(read("own"), read("ode"))
    capsys.readouterr()  # the runs' progress bars
    for bad, match in (("1.5", "eta=1.5; expected a share"), ("nan", "eta=nan")):
        assert match in run_bad(args + ["--eta", bad, "--out", str(tmp_path / "bad")], capsys)
    assert "solver 'heun' has none" in run_bad(args + ["--eta", "0.5", "--solver", "heun", "--out",
                                                       str(tmp_path / "bad")], capsys)
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------------------------------------- bad input
def run_bad(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_unreadable_image_names_the_file_and_writes_nothing(tiny_model, tmp_path, capsys):
    inputs = write_samples(tmp_path / "in")
    (inputs / "zz_broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    msg = run_bad(["segment", "--model", str(tiny_model), str(inputs), "--out", str(out)], capsys)
    assert "zz_broken.png" in msg
    assert not out.exists()


def test_mask_with_foreign_labels(tiny_model, tmp_path, capsys):
    Image.fromarray(np.full((8, 8), 9, dtype=np.uint8)).save(tmp_path / "m.png")
    out = tmp_path / "out"
    msg = run_bad(["synthesize", "--model", str(tiny_model), str(tmp_path / "m.png"), "--out", str(out)], capsys)
    assert "m.png" in msg and "9" in msg
    assert not out.exists()


def test_colour_image_given_as_mask(tiny_model, tmp_path, capsys):
    # A colour mask is read in the model's colours (issue 23); a picture in other colours is no mask.
    Image.fromarray(np.full((8, 8, 3), (128, 0, 255), dtype=np.uint8)).save(tmp_path / "rgb.png")
    msg = run_bad(["synthesize", "--model", str(tiny_model), str(tmp_path / "rgb.png"), "--out",
                   str(tmp_path / "o")], capsys)
    assert "rgb.png" in msg and "class-index" in msg


def test_missing_model_files(tiny_model, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    shutil.rmtree(broken / "network")
    inputs = write_samples(tmp_path / "in", n=1)
    msg = run_bad(["segment", "--model", str(broken), str(inputs / "img0.png"), "--out", str(tmp_path / "o")], capsys)
    assert "network" in msg and str(broken) in msg


@pytest.mark.parametrize("extra, match", [
    (["--beta", "200"], "beta"),
    (["--k", "1"], "k=1"),
    (["--k", "6", "--s", "60"], "s=60"),
    (["--set", "train.bogus=1"], "train.bogus"),
    (["--preset", "nope"], "preset 'nope'; expected one of paper, recommended"),
    (["--set", "model.objective.t0_mass=-0.1"], "probability"),
    (["--set", "model.objective.t0_mass=0.8", "--set", "model.objective.t1_mass=0.4"], "t0_mass + t1_mass"),
    (["--set", "model.state=diagonal"], "model.state"),
    (["--set", "model.objective.self_align_share=1.5"], "self_align_share"),
    (["--set", "model.objective.self_align_steps=1"], "self_align_steps=1; expected >= 2"),
    (["--set", "model.palette.kind=rainbow"], "palette.kind"),
    (["--palette", "spread", "--k", "4"], "--palette spread chooses its own k and s"),
    (["--method", "dsm", "--set", "model.objective.t0_mass=0.5"], "model.objective applies to model.method=semflow"),
    (["--set", "model.solver=rk4"], "model.solver='rk4'; expected one of euler, heun, midpoint, snap"),
    (["--set", "model.readout=logits"], "model.readout='logits'; expected one of palette, head"),
    (["--method", "discriminative", "--set", "model.readout=head"], "model.readout apply to model.method=semflow"),
    (["--set", "model.objective.class_weight=1"], "model.objective.class_weight=1 is an option semflow no longer has"),
    (["--set", "train.objective.image_weight=0.9"], "train.objective.image_weight=0.9 is an option semflow no longer has"),
    (["--set", "model.condition=known-end"], "model.condition='known-end' is an option semflow no longer has"),
])
def test_bad_training_values(tmp_path, capsys, extra, match):
    out = tmp_path / "m"
    msg = run_bad(tiny_train_args(out) + extra, capsys)
    assert match in msg
    assert not (out / "semflow_config.json").exists()


def test_bad_data_spec_and_steps(tiny_model, capsys):
    assert "nowhere" in run_bad(["evaluate", "--model", str(tiny_model), "--data", "nowhere"], capsys)
    assert "--steps" in run_bad(["evaluate", "--model", str(tiny_model), "--data", "shapes", "--steps", "0,2"], capsys)
