import pytest

from semflow.config import RunConfig, from_dict, load_run_config, to_dict
from semflow.errors import SemflowInputError


def test_defaults_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  steps: 7\n  lr: 0.01\nmodel:\n  size: [24, 24]\n  palette: {kind: spread}\n")
    c = load_run_config(f, ["train.lr=3e-4", "model.network_args.layers_per_block=2"])
    assert c.train.steps == 7 and c.train.lr == 3e-4 and c.model.size == [24, 24]
    assert c.model.palette.kind == "spread" and c.model.network_args == {"layers_per_block": 2}
    assert c.train.batch_size == RunConfig().train.batch_size


def test_round_trip_through_dict():
    c = load_run_config(None, ["model.beta=10", "train.max_minutes=2"])
    assert from_dict(RunConfig, to_dict(c)) == c
    assert isinstance(c.model.beta, float)


@pytest.mark.parametrize("override, match", [
    ("train.stpes=3", "train.stpes"),
    ("model.palete.k=3", "model.palete"),
    ("train.steps=many", "train.steps"),
    ("train.steps=0", "train.steps"),
    ("model.palette.kind=rainbow", "palette.kind"),
    ("train.mixed_precision=fp8", "mixed_precision"),
    ("noequals", "KEY=VALUE"),
])
def test_bad_keys_and_values_are_errors(override, match):
    with pytest.raises(SemflowInputError, match=match):
        load_run_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(SemflowInputError, match="cannot read"):
        load_run_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SemflowInputError, match="mapping"):
        load_run_config(tmp_path / "list.yaml")


def test_the_recommended_preset_takes_its_latent_part_in_a_latent_codec_only():
    """Latent codecs (named, or read off weights) get LATENT_PRESETS on top of the preset; pixels and a value the
    user sets do not, and the baselines never take a flow-only key."""
    from semflow.config import LATENT_PRESETS, PRESETS

    latent = LATENT_PRESETS["recommended"]["model"]["state_image_noise"]
    assert latent != PRESETS["recommended"]["model"]["state_image_noise"]
    assert load_run_config(None, [], preset_name="recommended").model.state_image_noise == 0.1
    assert load_run_config(None, ['model.codec="taef2"'], preset_name="recommended").model.state_image_noise == latent
    set_by_user = load_run_config(None, ['model.codec="taef2"', "model.state_image_noise=0.2"],
                                  preset_name="recommended")
    assert set_by_user.model.state_image_noise == 0.2
    assert load_run_config(None, ['model.codec="taef2"'], preset_name="paper").model.state_image_noise == 0.0
    rival = load_run_config(None, ['model.codec="taef2"', 'model.method="noise-flow"'], preset_name="recommended")
    assert rival.model.state_image_noise == 0.0


def test_a_codec_read_off_weights_gets_the_latent_part_of_the_preset(tmp_path):
    from semflow.config import LATENT_PRESETS

    for part in ("encoder", "decoder"):
        (tmp_path / f"taef2_{part}.pth").write_bytes(b"never opened")
    config = load_run_config(None, [f'model.codec_args.path="{tmp_path}"'], preset_name="recommended")
    assert config.model.codec == "taef2"
    assert config.model.state_image_noise == LATENT_PRESETS["recommended"]["model"]["state_image_noise"]
