"""The tensor fast path: order, batching, normalization and batched crop/flip augmentation."""

import pytest
import torch
import torch.nn.functional as F

from shrink.datasets import DatasetInfo
from shrink.datasets.tensor_split import TensorSplit

# mean 0 and std 1/255 make a normalized pixel equal to its raw byte value
RAW = DatasetInfo("toy", (3, 8, 8), 10, (0.0, 0.0, 0.0), (1 / 255,) * 3, "cifar", "test", "test")


def coded_image() -> torch.Tensor:
    """3x8x8 bytes 1..192, distinct per channel and position (0 only appears in padding)."""
    return torch.arange(1, 193, dtype=torch.uint8).view(3, 8, 8)


def id_images(n: int) -> torch.Tensor:
    """n 3x8x8 images whose every byte is the image's index."""
    return torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 8, 8).contiguous()


def split(images, *, crop_padding=0, hflip=False, info=RAW) -> TensorSplit:
    labels = torch.arange(len(images)) % 10
    return TensorSplit(info, "train", "h", images, labels, crop_padding=crop_padding, hflip=hflip)


def ids(x: torch.Tensor) -> list[int]:
    return x[:, 0, 0, 0].round().long().tolist()


def test_eval_batches_cover_every_example_in_order_without_augmentation():
    s = split(id_images(10), crop_padding=4, hflip=True)
    batches = list(s.batches(4, train=False))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    x = torch.cat([x for x, _ in batches])
    assert torch.allclose(x, id_images(10).float(), atol=1e-3)
    assert torch.cat([y for _, y in batches]).tolist() == [i % 10 for i in range(10)]


def test_train_batches_shuffle_with_seed_and_drop_the_last_partial_batch():
    s = split(id_images(10))
    epoch = [ids(x) for x, _ in s.batches(4, train=True, seed=3)]
    assert [len(b) for b in epoch] == [4, 4]
    seen = epoch[0] + epoch[1]
    assert len(set(seen)) == 8 and set(seen) <= set(range(10))
    assert epoch == [ids(x) for x, _ in s.batches(4, train=True, seed=3)]
    assert epoch != [ids(x) for x, _ in s.batches(4, train=True, seed=4)]


def test_labels_travel_with_their_images():
    s = split(id_images(20))
    for x, y in s.batches(5, train=True, seed=0):
        assert y.dtype == torch.int64 and x.dtype == torch.float32
        assert [i % 10 for i in ids(x)] == y.tolist()


def test_seed_none_draws_from_torch_global_generator():
    s = split(id_images(10))
    torch.manual_seed(11)
    first = [ids(x) for x, _ in s.batches(5, train=True)]
    torch.manual_seed(11)
    assert first == [ids(x) for x, _ in s.batches(5, train=True)]


def test_normalization_is_per_channel():
    info = DatasetInfo("toy", (3, 8, 8), 10, (0.5, 0.25, 0.0), (0.5, 0.25, 2.0), "cifar", "test", "test")
    x, _ = next(split(torch.full((1, 3, 8, 8), 51, dtype=torch.uint8), info=info).batches(1, train=False))
    v = 51 / 255  # 0.2
    expected = torch.tensor([(v - 0.5) / 0.5, (v - 0.25) / 0.25, v / 2.0]).view(3, 1, 1).expand(3, 8, 8)
    assert torch.allclose(x[0], expected, atol=1e-6)


def test_without_augmentation_training_images_are_the_originals():
    x, _ = next(split(id_images(6)).batches(6, train=True, seed=0))
    assert sorted(ids(x)) == list(range(6))
    assert torch.equal(x, x[:, :1, :1, :1].expand_as(x))


def test_crop_and_flip_give_every_padded_window_and_both_mirrors_uniformly():
    n, p = 2000, 4
    s = split(coded_image().expand(n, 3, 8, 8).contiguous(), crop_padding=p, hflip=True)
    out = torch.cat([x for x, _ in s.batches(500, train=True, seed=0)]).round()
    padded = F.pad(coded_image(), (p, p, p, p)).float()
    windows = [
        (top, left, flip)
        for top in range(2 * p + 1)
        for left in range(2 * p + 1)
        for flip in (False, True)
    ]
    candidates = torch.stack(
        [padded[:, t : t + 8, l : l + 8].flip(-1) if f else padded[:, t : t + 8, l : l + 8] for t, l, f in windows]
    )
    matches = (out[:, None] == candidates[None]).flatten(2).all(-1)
    assert matches.sum(1).tolist() == [1] * n  # each output is exactly one window, mirrored or not
    counts = matches.sum(0)
    assert (counts > 0).all()  # all 162 windows occur
    flips = counts[1::2].sum().item() / n
    tops = counts.view(9, 9, 2).sum((1, 2)) / n
    assert 0.45 < flips < 0.55
    assert ((tops > 0.083) & (tops < 0.139)).all()  # 1/9 each, within 4 standard deviations


def test_an_epoch_takes_its_draws_in_batch_order_as_each_batch_drawing_its_own_would():
    # The epoch draws everything when it starts (one copy to the device), in this order: the permutation,
    # then per batch the tops, the lefts and the flips. So batch k is what drawing at batch k gave.
    s = split(coded_image().expand(12, 3, 8, 8).contiguous(), crop_padding=2, hflip=True)
    generator = torch.Generator().manual_seed(7)
    torch.randperm(12, generator=generator)
    padded = F.pad(coded_image(), (2, 2, 2, 2)).float()
    for x, _ in s.batches(4, train=True, seed=7):
        tops, lefts = (torch.randint(0, 5, (4,), generator=generator).tolist() for _ in "tl")
        flips = (torch.rand(4, generator=generator) < 0.5).tolist()
        expected = [padded[:, t : t + 8, l : l + 8] for t, l in zip(tops, lefts)]
        assert torch.equal(x.round(), torch.stack([w.flip(-1) if f else w for w, f in zip(expected, flips)]))


def test_augmentation_is_reproducible_with_seed():
    s = split(coded_image().expand(64, 3, 8, 8).contiguous(), crop_padding=4, hflip=True)
    a = torch.cat([x for x, _ in s.batches(16, train=True, seed=9)])
    b = torch.cat([x for x, _ in s.batches(16, train=True, seed=9)])
    assert torch.equal(a, b)


def test_sample_is_seeded_distinct_and_unaugmented():
    s = split(id_images(10), crop_padding=4, hflip=True)
    x, y = s.sample(4, seed=5)
    assert torch.equal(x, s.sample(4, seed=5)[0])
    assert len(set(ids(x))) == 4
    assert torch.allclose(x, id_images(10)[ids(x)].float(), atol=1e-3)
    assert y.tolist() == [i % 10 for i in ids(x)]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.batches(0, train=False), "batch_size must be a positive integer, got 0"),
        (lambda s: s.batches(11, train=True), "batch_size 11 exceeds the 10 examples of toy/train"),
        (lambda s: s.sample(11, seed=0), r"sample size must be an integer in \[1, 10\] for toy/train, got 11"),
    ],
)
def test_bad_sizes_are_rejected_before_any_work(call, message):
    with pytest.raises(ValueError, match=message):
        call(split(id_images(10)))


def test_images_must_match_the_dataset_shape():
    with pytest.raises(ValueError, match=r"toy images must be uint8 of shape \(N, 3, 8, 8\), got torch.uint8 \(2, 1, 8, 8\)"):
        split(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


def test_a_split_first_read_in_inference_mode_caches_ordinary_tensors_for_training():
    s = split(id_images(10), crop_padding=2, hflip=True)
    with torch.inference_mode():  # an evaluation is the first to move the split to the device
        next(s.batches(4, train=False))
    assert [t.is_inference() for t in s._on("cpu")] == [False] * 4
    assert not any(tensor.is_inference() for batch in s.batches(4, train=True, seed=0) for tensor in batch)
