"""Data-parallel shards: each worker's share of a global training batch, and evaluation blocks that read
every example exactly once."""

import pytest
import torch

from shrink.datasets import DatasetInfo, Shard
from shrink.datasets.tensor_split import TensorSplit

RAW = DatasetInfo("toy", (3, 8, 8), 10, (0.0, 0.0, 0.0), (1 / 255,) * 3, "cifar", "test", "test")


def split(n: int) -> TensorSplit:
    """n random 3x8x8 images with crop and flip augmentation; label = index."""
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return TensorSplit(RAW, "train", "h", images, torch.arange(n), crop_padding=2, hflip=True)


def test_training_shards_are_the_single_process_batches_cut_in_rank_order_augmentation_included():
    data = split(50)
    whole = list(data.batches(12, train=True, seed=7))
    shards = [list(data.batches(12, train=True, seed=7, shard=Shard(rank, 3))) for rank in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # 50 // 12 global batches, last incomplete one dropped
    for step, (x, y) in enumerate(whole):
        assert [len(shards[rank][step][1]) for rank in range(3)] == [4, 4, 4]
        assert torch.equal(torch.cat([shards[rank][step][0] for rank in range(3)]), x)
        assert torch.equal(torch.cat([shards[rank][step][1] for rank in range(3)]), y)


def test_evaluation_shards_read_every_example_once():
    data = split(23)
    seen = [torch.cat([y for _, y in data.batches(4, train=False, shard=Shard(rank, 3))]) for rank in range(3)]
    assert [len(s) for s in seen] == [7, 8, 8]  # blocks [0, 7), [7, 15), [15, 23)
    assert torch.cat(seen).tolist() == list(range(23))


def test_a_global_batch_not_divisible_by_the_workers_is_refused():
    with pytest.raises(ValueError, match="batch_size 10 is not divisible by the 3 processes"):
        next(split(20).batches(10, train=True, seed=0, shard=Shard(0, 3)))
    with pytest.raises(ValueError, match=r"shard index must be in \[0, 2\)"):
        Shard(2, 2)
