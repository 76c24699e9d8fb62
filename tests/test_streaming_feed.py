"""Training from a shard set: decoded whole when it fits (then exactly the packed array's run), streamed otherwise:
each shard read once an epoch, a bounded number in memory, each DDP rank its own shards, resumable mid-epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from facegen.data.shards import ShardSet, write_shards
from facegen.data.sources import open_source
from facegen.train.config import TrainingConfig
from facegen.train.data_feed import MIX_SHARDS, PREFETCH_SHARDS, StreamingFeed, shard_blocked_order
from facegen.train.launcher import LauncherConfig, train
from facegen.train.loop import epoch_order, train_gan
from tests.test_train_loop import TINY, KillAtStep

STREAM = {**TINY, "batch_size": 8, "data_on_device": "stream"}


@pytest.fixture(scope="module")
def shard_set(utkface_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> ShardSet:
    """64 real faces at 16², 8 to a shard."""
    plan = pd.DataFrame({"uri": open_source(str(utkface_zip)).list_entries()[:64], "sample_weight": 1.0})
    root = tmp_path_factory.mktemp("shards") / "set"
    return write_shards(plan, str(root), resolution=16, images_per_shard=8, progress=False)


def test_blocked_order_keeps_the_draws_and_deals_each_rank_its_own_shards(shard_set: ShardSet) -> None:
    weights = torch.linspace(0.1, 3.0, len(shard_set), dtype=torch.float64)
    draws = epoch_order(len(shard_set), 0, 3, weights)  # with replacement, as balance's weights ask
    shard_of = shard_set.shard_of_row

    single = shard_blocked_order(draws, shard_of, world_size=1, seed=0, epoch=3)
    assert sorted(single.tolist()) == sorted(draws.tolist())  # the same draws, only reordered
    runs = np.count_nonzero(np.diff(shard_of[single.numpy()])) + 1
    assert runs < len(draws) / 2  # grouped by shard (a window mixes MIX_SHARDS shards), not scattered

    pair = shard_blocked_order(draws, shard_of, world_size=2, seed=0, epoch=3)
    rank_shards = [set(shard_of[pair[rank::2].numpy()].tolist()) for rank in (0, 1)]
    assert rank_shards[0].isdisjoint(rank_shards[1]) and len(rank_shards[0]) == len(rank_shards[1]) == 4
    assert set(draws.tolist()) <= set(pair.tolist())  # every draw is served (short ranks repeat a few)
    assert not torch.equal(single, shard_blocked_order(draws, shard_of, world_size=1, seed=0, epoch=4))
    assert torch.equal(single, shard_blocked_order(draws, shard_of, world_size=1, seed=0, epoch=3))


def test_the_streaming_feed_reads_each_shard_once_an_epoch_and_holds_few(shard_set: ShardSet) -> None:
    feed = StreamingFeed(shard_set, None, torch.device("cpu"))
    order = feed.epoch_order(epoch_order(len(shard_set), 0, 0), 0)
    feed.begin(order, 0)
    served, held = [], 0
    for start in range(0, len(order), 8):
        images, _ = feed.batch(order[start : start + 8])
        served.append(images)
        held = max(held, len(feed.decoded))
    assert feed.shards_read == len(shard_set.shards) == 8
    assert held <= 2 * MIX_SHARDS + PREFETCH_SHARDS
    assert torch.equal(torch.cat(served), torch.from_numpy(shard_set.to_array(progress=False))[order])


def test_a_shard_set_that_fits_trains_exactly_as_its_packed_array(shard_set: ShardSet) -> None:
    config = TrainingConfig.from_dict({**TINY, "batch_size": 8, "epochs": 1})
    from_shards = train_gan(shard_set, config, progress=False)
    from_array = train_gan(shard_set.to_array(progress=False), config, progress=False)
    for name, tensor in from_array.generator.state_dict().items():
        assert torch.equal(tensor, from_shards.generator.state_dict()[name]), name


def test_a_streamed_run_killed_mid_epoch_resumes_exactly(shard_set: ShardSet, tmp_path: Path) -> None:
    config = TrainingConfig.from_dict({**STREAM, "epochs": 2, "checkpoint_every_steps": 3})
    straight = train_gan(shard_set, config, progress=False)
    checkpoint = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        train_gan(shard_set, config, checkpoint_path=checkpoint, monitor=KillAtStep(11), progress=False)
    resumed = train_gan(shard_set, config, checkpoint_path=checkpoint, resume=True, progress=False)
    assert resumed.resumed_from_step == 9 and resumed.generator_steps == straight.generator_steps == 16
    for name, tensor in straight.generator.state_dict().items():
        assert torch.equal(tensor, resumed.generator.state_dict()[name]), name


def test_stream_needs_a_shard_set(shard_set: ShardSet) -> None:
    with pytest.raises(ValueError, match="stream reads shards"):
        train_gan(shard_set.to_array(progress=False), TrainingConfig.from_dict(STREAM), progress=False)


def test_two_torchrun_workers_stream_their_own_shards_in_step(
    shard_set: ShardSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The train_gan step's launcher with 2 gloo workers on a streamed shard set: each worker opens the set by URI,
    takes its share of every global batch, and the replicas stay identical (checked inside the run)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = TrainingConfig.from_dict({**STREAM, "batch_size": 16, "epochs": 1, "device": "cpu"})

    summary = train(LauncherConfig(type="torchrun", nproc_per_node=2), shard_set, config, tmp_path / "out")

    assert summary["world_size"] == 2 and summary["generator_steps"] == 64 // 16
    assert summary["images_seen"] == 64
    assert not (tmp_path / "inputs" / "dataset.npy").exists()  # passed by URI, not copied
    assert (tmp_path / "inputs" / "storage_options.json").stat().st_mode & 0o077 == 0
