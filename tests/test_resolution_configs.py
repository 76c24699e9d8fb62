"""The 256² and 1024² GPU configs (configs/gpu256.yaml, configs/gpu1024.yaml): StyleGAN2, bf16, DiffAugment and R1
by StyleGAN2-ADA's heuristic, and their first training steps run here on the CPU at tiny widths. A side that is not
a power of two, or above what the architecture is built for, is a config error that says which, before any data
work (a config is checked when it is rendered and by facegen.train.config.check_run_config)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from facegen.cli import main
from facegen.config_render import render
from facegen.models.registry import architectures, build_discriminator, build_generator, check_resolution
from facegen.models.stylegan import channel_schedule
from facegen.train.config import TrainingConfig, check_run_config
from facegen.train.loop import train_gan

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _load(name: str) -> tuple[dict, TrainingConfig, int]:
    run = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    return run, check_run_config(run), run["parameters"]["resolution"]


def _tiny_first_steps(name: str) -> None:
    """Two generator steps (the first discriminator step with lazy R1) of the config's own training, with only the
    widths, the batch and the run length cut down; the losses stay finite and the generator draws R×R faces."""
    _, config, resolution = _load(name)
    tiny_model = {  # 2 channels at R×R, at most 8 below: seconds on a CPU even at 1024²
        **config.model,
        "latent_dim": 16,
        "w_dim": 16,
        "mapping_layers": 2,
        "channel_base": 2 * resolution,
        "channel_max": 8,
    }
    overrides = {"model": tiny_model, "batch_size": 2, "epochs": 1, "grid_size": 2, "device": "cpu"}
    overrides |= {"log_every_steps": 1, "fid_every_steps": 0, "checkpoint_every_steps": 0}
    tiny = TrainingConfig.from_dict({**config.to_dict(), **overrides, "augment": config.augment.__dict__})
    images = np.random.default_rng(0).integers(0, 256, (4, 3, resolution, resolution), dtype=np.uint8)
    labels = np.array([[0, 1, 2], [1, 0, 4], [-1, 3, 0], [0, -1, 1]])  # gender, age_bin, ethnicity; −1 unspecified

    result = train_gan(images, tiny, labels=labels, progress=False)

    assert result.generator_steps == 2 and result.images_seen == 4
    losses = [row[key] for row in result.history for key in ("loss_d", "loss_g")]
    assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses), result.history
    with torch.no_grad():
        faces = result.generator(torch.randn(3, 16), torch.tensor([[0, 1, 2], [1, 2, 3], [-1, -1, -1]]))
    assert faces.shape == (3, 3, resolution, resolution) and torch.isfinite(faces).all()
    assert result.model_config["resolution"] == resolution


@pytest.mark.parametrize(("name", "resolution", "top_channels"), [("gpu256", 256, 64), ("gpu1024", 1024, 32)])
def test_the_large_configs_are_stylegan2_in_bf16_with_diffaugment_and_r1_by_the_heuristic(
    name: str, resolution: int, top_channels: int
) -> None:
    _, config, side = _load(name)
    assert side == resolution
    assert (config.architecture, config.precision, config.device) == ("stylegan", "bf16", "cuda")
    assert config.diffaugment and config.r1_gamma > 0
    assert config.r1_gamma == pytest.approx(0.0002 * resolution**2 / config.batch_size)  # StyleGAN2-ADA's γ
    # paper256's widths at 256² (64 channels there), config F's at 1024² (32 there, 512 to 64²)
    widths = channel_schedule([resolution, 64], config.model["channel_base"], config.model["channel_max"])
    assert widths == {resolution: top_channels, 64: 256 if resolution == 256 else 512}
    header = (CONFIGS / f"{name}.yaml").read_text().split("\nrun_name:")[0]
    assert f"zenml pipeline run pipelines.training.training -c configs/{name}.yaml" in header
    assert "Expected memory per GPU" in header and "NOT YET MEASURED on a GPU" in header


def test_the_256_config_trains_its_first_steps_on_the_cpu_at_tiny_widths() -> None:
    _tiny_first_steps("gpu256")


def test_the_1024_config_trains_its_first_steps_on_the_cpu_at_tiny_widths() -> None:
    _tiny_first_steps("gpu1024")


def _run(architecture: str, resolution: object) -> dict:
    return {
        "parameters": {"resolution": resolution},
        "steps": {"train_gan": {"parameters": {"training": {"architecture": architecture}}}},
    }


@pytest.mark.parametrize("resolution", [96, 200, 1000, 0, -64])
def test_a_side_that_is_not_a_power_of_two_is_a_config_error_saying_so(resolution: int) -> None:
    with pytest.raises(
        ValueError,
        match=rf"parameters\.resolution: stylegan resolution must be a power of two from 8 to 1024, "
        rf"got {resolution}: not a power of two",
    ):
        check_run_config(_run("stylegan", resolution))


@pytest.mark.parametrize(
    ("architecture", "resolution", "largest"),
    [("stylegan", 2048, 1024), ("r3gan", 2048, 1024), ("dcgan", 4096, 1024), ("dcgan_brief", 128, 64)],
)
def test_a_side_above_what_the_architecture_is_built_for_is_a_config_error_naming_its_range(
    architecture: str, resolution: int, largest: int
) -> None:
    with pytest.raises(ValueError, match=rf"from \d+ to {largest}, got {resolution}: above the largest {architecture}"):
        check_run_config(_run(architecture, resolution))


def test_every_architecture_states_its_range_and_the_models_enforce_the_same_rule() -> None:
    for name in architectures():
        assert check_resolution(name, 64) == 6
    with pytest.raises(ValueError, match="stylegan resolution must be a power of two from 8 to 1024, got 2048: above"):
        build_generator("stylegan", {"resolution": 2048})
    with pytest.raises(ValueError, match="stylegan resolution must be a power of two from 8 to 1024, got 48: not a"):
        build_discriminator("stylegan", {"resolution": 48})
    with pytest.raises(ValueError, match="r3gan resolution must be a power of two from 8 to 1024, got 4: below"):
        build_generator("r3gan", {"resolution": 4})
    with pytest.raises(ValueError, match="dcgan resolution must be a power of two from 8 to 1024, got 64.0: not an"):
        check_resolution("dcgan", 64.0)


def test_an_overlay_asking_for_an_unsupported_side_does_not_render(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    shutil.copy(CONFIGS / "base.yaml", tmp_path / "base.yaml")
    (tmp_path / "env" / "huge.yaml").write_text("parameters:\n  resolution: 2048\n")
    with pytest.raises(ValueError, match=r"configs/huge\.yaml: parameters\.resolution: dcgan resolution .* got 2048"):
        render(tmp_path, "huge")
    (tmp_path / "env" / "odd.yaml").write_text("parameters:\n  resolution: 100\n")
    with pytest.raises(ValueError, match=r"configs/odd\.yaml: .* got 100: not a power of two"):
        render(tmp_path, "odd")


def test_facegen_check_config_passes_the_large_configs_and_names_a_bad_side(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["check-config", str(CONFIGS / "gpu1024.yaml")])
    assert ok.exit_code == 0 and "stylegan at 1024, ok" in ok.output
    run = yaml.safe_load((CONFIGS / "gpu256.yaml").read_text())
    run["parameters"]["resolution"] = 384
    bad = tmp_path / "mine.yaml"
    bad.write_text(yaml.safe_dump(run))
    refused = runner.invoke(main, ["check-config", str(bad)])
    assert refused.exit_code == 1
    assert "stylegan resolution must be a power of two from 8 to 1024, got 384: not a power of two" in refused.output
