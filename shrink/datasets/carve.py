"""The deterministic, stratified train/validation carve-out and the hash that identifies it."""

import hashlib

import numpy as np


def check_fraction(fraction: float, what: str = "val_fraction") -> None:
    """``ValueError`` unless ``0 < fraction < 1``."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"{what} must be a number strictly between 0 and 1, got {fraction!r}")


def check_seed(seed: int, what: str = "split_seed") -> None:
    """``ValueError`` unless ``seed`` is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {seed!r}")


def stratified(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices into ``(kept, carved)``, both sorted.

    For each class ``c`` with ``n_c`` examples, ``floor(fraction * n_c + 0.5)`` of them, chosen by a
    permutation from ``numpy.random.default_rng(seed)`` (classes in ascending order), are carved out.
    """
    check_fraction(fraction)
    check_seed(seed)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    carved = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        take = int(np.floor(fraction * len(members) + 0.5))
        carved.append(members[rng.permutation(len(members))[:take]])
    carved_idx = np.sort(np.concatenate(carved))
    kept_idx = np.setdiff1d(np.arange(len(labels)), carved_idx, assume_unique=True)
    if len(carved_idx) == 0 or len(kept_idx) == 0:
        raise ValueError(f"fraction {fraction} of {len(labels)} examples leaves an empty side of the split")
    return kept_idx, carved_idx


def split_hash(name: str, seed: int, fraction: float, train_idx: np.ndarray, val_idx: np.ndarray) -> str:
    """First 12 hex digits of the sha256 of ``"<name>|<seed>|<repr(float(fraction))>|"``, then the sorted train
    indices and the sorted validation indices as little-endian int64, separated by ``b"|"``."""
    digest = hashlib.sha256(f"{name}|{int(seed)}|{float(fraction)!r}|".encode())
    digest.update(np.sort(train_idx).astype("<i8").tobytes())
    digest.update(b"|")
    digest.update(np.sort(val_idx).astype("<i8").tobytes())
    return digest.hexdigest()[:12]
