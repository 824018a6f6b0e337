"""The dataset registry: one ``Source`` per name; a new dataset is a module with a ``Source`` and a line here."""

import os
from pathlib import Path
from typing import NoReturn

from shrink.datasets import cifar, digits, idx, imagefolder
from shrink.datasets.base import SPLITS, DatasetInfo, DatasetNotFound, Decode, Split, UnknownDataset, search_dirs
from shrink.cache import cache_root
from shrink.datasets.carve import check_fraction, check_seed
from shrink.datasets.download import DownloadFailed, download, downloads_disabled
from shrink.datasets.source import Source

_SOURCES: dict[str, Source] = {
    source.info.name: source
    for source in (idx.MNIST, idx.FASHION_MNIST, cifar.CIFAR10, cifar.CIFAR100, digits.DIGITS, imagefolder.IMAGENET)
}


def available() -> list[DatasetInfo]:
    """Every dataset shrink knows, in registry order."""
    return [source.info for source in _SOURCES.values()]


def info(name: str) -> DatasetInfo:
    """The description of dataset ``name``; ``UnknownDataset`` lists the known names."""
    return _source(name).info


def locate(name: str, root: str | os.PathLike | None = None) -> Path:
    """The directory holding dataset ``name``'s files, searched in the order of ``search_dirs``.

    Never downloads; raises ``DatasetNotFound`` with a one-line message (places searched, how to provide).
    """
    source = _source(name)
    found = _find(source, root)
    if found:
        return found
    host = source.downloads[0].url.rsplit("/", 1)[0] if source.downloads else None
    _raise_not_found(source, root, f"; load() would try the canonical download from {host}" if host else "")


def fetch(name: str, root: str | os.PathLike | None = None) -> Path:
    """Like ``locate``, but when the files are missing download them (if the dataset has a canonical
    download and ``$SHRINK_NO_DOWNLOAD`` is unset) into ``$SHRINK_CACHE/<name>``."""
    source = _source(name)
    found = _find(source, root)
    if found:
        return found
    if not source.downloads:
        _raise_not_found(source, root, "")
    if downloads_disabled():
        _raise_not_found(source, root, "; download disabled by SHRINK_NO_DOWNLOAD")
    dest = cache_root() / name
    try:
        download(source.downloads, dest)
    except DownloadFailed as err:
        _raise_not_found(source, root, f"; download failed: {err}")
    return source.find(dest) or _raise_not_found(source, root, f"; the download to {dest} lacks the expected files")


def load(
    name: str,
    split: str,
    *,
    root: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    cpus: int | None = None,
    decode: Decode = Decode.CPU,
) -> Split:
    """Split ``split`` (``train``, ``val`` or ``test``) of dataset ``name``, its batches prepared by processes
    that keep at most ``cpus`` CPUs busy (the reader's share, e.g. a trial's; default this machine's), image
    files decoded where ``decode`` says (in-memory datasets decode nothing).

    ``train`` and ``val`` are the stratified carve-out of the official training set (``val_fraction`` of
    each class, chosen with ``split_seed``); ``test`` is the official test set. Files are found or
    downloaded as by ``fetch``.
    """
    source = _source(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    check_fraction(val_fraction)
    check_seed(split_seed)
    return source.open(fetch(name, root), split, val_fraction=val_fraction, split_seed=split_seed, cpus=cpus,
                       decode=decode)


def fingerprint(name: str, root: str | os.PathLike | None = None) -> str:
    """16 hex digits naming the data of dataset ``name`` (found or downloaded as by ``fetch``); equal
    for equal data wherever it is stored (see ``shrink.datasets.source`` for what enters it)."""
    source = _source(name)
    return source.fingerprint(fetch(name, root))


def class_count(name: str, root: str | os.PathLike | None = None) -> int:
    """The classes the files of dataset ``name`` hold: the registry's count, except for an ImageFolder
    tree, which has as many as it has class folders (found by ``locate``; never downloads)."""
    source = _source(name)
    if isinstance(source, imagefolder.ImageFolderSource):
        return imagefolder.class_count(locate(name, root))
    return source.info.num_classes


def _source(name: str) -> Source:
    try:
        return _SOURCES[name]
    except (KeyError, TypeError):
        raise UnknownDataset(f"unknown dataset {name!r}; known datasets: {', '.join(_SOURCES)}") from None


def _find(source: Source, root) -> Path | None:
    for directory in search_dirs(source.info.name, root, source.system_dirs):
        found = source.find(directory)
        if found:
            return found
    return None


def _raise_not_found(source: Source, root, note: str) -> NoReturn:
    name = source.info.name
    places = ", ".join(str(d) for d in search_dirs(name, root, source.system_dirs))
    ways = [source.provide] if source.provide else []
    ways.append(f"put {source.needs} in $SHRINK_DATA/{name} or in a directory given as --data-root")
    raise DatasetNotFound(f"{name} not found in {places}{note}; to provide it: {', or '.join(ways)}")
