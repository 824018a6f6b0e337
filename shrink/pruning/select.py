"""Exact top-k selection of scores: the machinery shared by every strategy.

Scores are non-negative float (compared as float32) or int32 tensors. They are compared through their
int32 bit patterns, which order exactly like the values, so selection is integer work on the scores'
device, with no numpy round trip and no copy of the scores.

Finding the k-th largest of N keys: a strided sample of about 65,536 keys gives a bracket [lo, hi]
around its k/N quantile (with a margin of four binomial standard deviations), which is checked by exact
counting in one sweep over all keys (two comparisons per key): the keys above ``hi`` are kept, and the
few keys inside the bracket are gathered and searched for the exact k-th largest. If the sample
misled the bracket, the count says on which side the k-th largest lies and a second sweep searches that
whole side, so the result is always exact. A global selection is one such search over all tensors
together, without materializing their concatenation.

Ties at the threshold are broken by flat index: the tensors are ordered as if flattened and concatenated
in the order given, and among equal scores the earlier ones are kept.
"""

import math

import torch
from torch import Tensor

_SAMPLE = 1 << 16
_MAX_KEY = (1 << 31) - 1
_NAN_KEYS = 0x7F800000  # keys above +inf's bit pattern are NaNs


def select_global(scores: dict[str, Tensor], k: int) -> dict[str, Tensor]:
    """Boolean masks (shaped like the scores) keeping exactly the ``k`` highest scores of all tensors."""
    keys = {name: _keys(name, score) for name, score in scores.items()}
    total = sum(key.numel() for key in keys.values())
    if not 0 <= k <= total:
        raise ValueError(f"cannot keep {k} of {total} scores: k must be in [0, {total}]")
    masks = _top_k(list(keys.values()), k)
    return {name: mask.view(scores[name].shape) for name, mask in zip(keys, masks)}


def select_per_layer(scores: dict[str, Tensor], counts: dict[str, int]) -> dict[str, Tensor]:
    """Boolean masks keeping exactly ``counts[name]`` highest scores within each tensor."""
    if counts.keys() != scores.keys():
        raise ValueError(f"counts are for {sorted(counts)} but scores are for {sorted(scores)}")
    masks = {}
    for name, score in scores.items():
        key = _keys(name, score)
        if not 0 <= counts[name] <= key.numel():
            raise ValueError(f"cannot keep {counts[name]} of the {key.numel()} scores of {name}")
        masks[name] = _top_k([key], counts[name])[0].view(score.shape)
    return masks


def proportional_counts(sizes: dict[str, int], k: int) -> dict[str, int]:
    """Split ``k`` kept entries over tensors in proportion to their sizes, summing to exactly ``k``.

    Each tensor gets the floor of its exact share; the units left over go to the largest remainders
    (earlier tensors first among equal remainders). Integer arithmetic throughout.
    """
    total = sum(sizes.values())
    if not 0 <= k <= total:
        raise ValueError(f"cannot keep {k} of {total} entries: k must be in [0, {total}]")
    shares = {name: divmod(k * size, total) for name, size in sizes.items()}
    counts = {name: floor for name, (floor, _) in shares.items()}
    left = k - sum(counts.values())
    for name in sorted(shares, key=lambda name: -shares[name][1])[:left]:  # sorted() is stable
        counts[name] += 1
    return counts


def _keys(name: str, score: Tensor) -> Tensor:
    """Flat int32 keys that order like the scores; rejects negative and NaN scores."""
    if score.dtype == torch.int32:
        key = score.detach().reshape(-1)
    elif score.is_floating_point():
        key = score.detach().reshape(-1).float().view(torch.int32)
    else:
        raise TypeError(f"scores of {name} must be floating point or int32, got {score.dtype}")
    if key.numel() == 0:
        return key
    low, high = (int(v) for v in torch.aminmax(key))
    if score.dtype == torch.int32:
        if low < 0:
            raise ValueError(f"scores of {name} must be non-negative, got {low}")
        return key
    if high > _NAN_KEYS or (low < 0 and not float(score.min()) >= 0):  # NaN, or below zero
        raise ValueError(f"scores of {name} must be non-negative and not NaN")
    # -0.0 has the sign bit set (a negative key); order it as +0.0.
    return key.clamp(min=0) if low < 0 else key


def _top_k(keys: list[Tensor], k: int) -> list[Tensor]:
    """Flat masks of the k largest keys of ``keys`` taken together; earlier index first among ties."""
    total = sum(key.numel() for key in keys)
    if k == 0 or k == total:
        return [torch.full_like(key, k == total, dtype=torch.bool) for key in keys]
    lo, hi = _bracket(keys, k, total)
    masks, bands, above = _sweep(keys, lo, hi)
    in_band = sum(len(values) for _, values in bands)
    if above >= k or above + in_band < k:  # the k-th largest lies outside: search that whole side
        lo, hi = (hi + 1, _MAX_KEY) if above >= k else (0, lo - 1)
        masks, bands, above = _sweep(keys, lo, hi)
        in_band = sum(len(values) for _, values in bands)
    band_values = torch.cat([values for _, values in bands])
    wanted = k - above  # how many band keys are kept, 1 <= wanted <= in_band
    threshold = int(torch.kthvalue(band_values.cpu(), in_band - wanted + 1).values)
    ties = wanted - int(torch.count_nonzero(band_values > threshold))
    for mask, (index, values) in zip(masks, bands):
        mask[index[values > threshold]] = True
        if ties:
            tied = index[values == threshold][:ties]
            mask[tied] = True
            ties -= len(tied)
    return masks


def _bracket(keys: list[Tensor], k: int, total: int) -> tuple[int, int]:
    """Keys [lo, hi] that very probably hold the k-th largest key, from a strided sample."""
    stride = -(-total // _SAMPLE)  # ceil: at most _SAMPLE + len(keys) sampled keys
    sample = torch.cat([key[::stride].cpu() for key in keys])
    size, keep = len(sample), k / total
    margin = 4 * math.sqrt(size * keep * (1 - keep)) + 4
    # The i-th largest of the sample is its (size - i + 1)-th smallest.
    top, bottom = math.floor(keep * size - margin), math.ceil(keep * size + margin)
    hi = _MAX_KEY if top < 1 else int(torch.kthvalue(sample, size - top + 1).values)
    lo = 0 if bottom > size else int(torch.kthvalue(sample, size - bottom + 1).values)
    return lo, hi


def _sweep(keys: list[Tensor], lo: int, hi: int) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]], int]:
    """Masks of keys above ``hi``, (flat index, key) of the keys in [lo, hi], and the count above."""
    masks, bands, above = [], [], 0
    for key in keys:
        mask = key > hi
        band = key >= lo
        band ^= mask
        index = _sparse_nonzero(band)
        masks.append(mask)
        bands.append((index, key[index]))
        above += int(torch.count_nonzero(mask))
    return masks, bands, above


def _sparse_nonzero(flags: Tensor) -> Tensor:
    """Indices of the True entries of a flat bool tensor, in order; fast when they are few.

    Reads the flags eight at a time as int64 words, then looks inside the nonzero words only: about
    three times faster than ``nonzero`` for the sparse bracket, slower for dense flags.
    """
    whole = flags.numel() // 8 * 8
    words = flags[:whole].view(torch.int64).nonzero().squeeze(1)
    inside = flags[:whole].view(-1, 8)[words].nonzero()
    tail = flags[whole:].nonzero().squeeze(1) + whole
    return torch.cat([words[inside[:, 0]] * 8 + inside[:, 1], tail])
