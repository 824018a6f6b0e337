"""Published weights: torchvision's pretrained weights for its models, found through torchvision's own
weights API and read from torch.hub's cache, where torchvision itself keeps them.

``published_weights("resnet18", "IMAGENET1K_V1")`` names one set (``None`` or ``"DEFAULT"``: the model's
``DEFAULT`` weights, resolved to their real name so a record says which ones were used). Its ``file`` is
``<torch.hub.get_dir()>/checkpoints/<basename of the URL>`` (``$TORCH_HOME/hub/checkpoints``), the
name torchvision's own loader uses, so weights that torchvision downloaded once are found.
``fetch_weights`` returns that file, downloading it only when missing, with a short timeout; a machine
without internet gets one line naming the file and where to put it.

The digits in torchvision's file names are a prefix of the file's sha256. They are not enforced here:
shrink names every base by the sha256 of the file it used and records it, so a file that is not the
published one (a local conversion, a test's stand-in) shows in the record rather than being refused.
"""

import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from shrink.atomic import atomic_path
from shrink.models.imagenet import TORCHVISION
from shrink.models.registry import WeightsError, info

TIMEOUT_S = 5.0
"""Seconds to wait for a connection or any read of a download before giving up."""


@dataclass(frozen=True)
class PublishedWeights:
    """One set of torchvision's published weights for one model."""

    model: str  # shrink's (and torchvision's) model name
    name: str  # the weights' enum name, e.g. IMAGENET1K_V1 (never DEFAULT)
    url: str
    num_classes: int  # outputs of the published classifier

    @property
    def source(self) -> str:
        """How a sweep file names them: ``torchvision:<name>``."""
        return f"torchvision:{self.name}"

    @property
    def file(self) -> Path:
        """Where torch.hub caches the file (what torchvision's own loader reads)."""
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(self.url)


def published_weights(model: str, weights: str | None = None) -> PublishedWeights:
    """torchvision's weights ``weights`` (``None``/``"DEFAULT"``: the model's default) for ``model``.

    ``UnknownModel`` for a name outside the zoo; ``WeightsError`` for a model without published weights
    or a weights name it does not have (the message lists those it has).
    """
    info(model)  # UnknownModel for names outside the zoo
    if model not in TORCHVISION:
        raise WeightsError(f"{model} has no published torchvision weights; the models that have them: "
                           f"{', '.join(TORCHVISION)}")
    import torchvision

    enum = torchvision.models.get_model_weights(model)
    names = [name for name in enum.__members__ if name != "DEFAULT"]
    chosen = weights or "DEFAULT"
    if chosen not in enum.__members__:
        raise WeightsError(f"torchvision has no weights {chosen!r} for {model}; it has: DEFAULT, {', '.join(names)}")
    member = enum[chosen]
    return PublishedWeights(model, member.name, member.url, len(member.meta["categories"]))


def fetch_weights(weights: PublishedWeights, *, timeout_s: float = TIMEOUT_S) -> Path:
    """The cached file of ``weights``; when it is missing, download it (unless ``$SHRINK_NO_DOWNLOAD``
    is set), giving up after ``timeout_s`` without an answer.

    ``WeightsError`` (one line: the file, where to put it, why the download failed) otherwise.
    """
    target = weights.file
    if target.is_file():
        return target
    if _downloads_disabled():
        raise _missing(weights, "downloads are disabled (SHRINK_NO_DOWNLOAD)")
    try:
        with atomic_path(target) as partial, urllib.request.urlopen(weights.url, timeout=timeout_s) as response:
            size = int(response.headers.get("Content-Length") or 0)
            print(f"shrink: downloading {weights.url} ({size / 1e6:.1f} MB) to {target.parent}",
                  file=sys.stderr, flush=True)
            with partial.open("wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
    except OSError as error:  # URLError, timeouts and refused connections are all OSErrors
        raise _missing(weights, f"the download from {weights.url} failed: {getattr(error, 'reason', error)}") from None
    return target


def check_reachable(weights: PublishedWeights, *, timeout_s: float = TIMEOUT_S) -> None:
    """Cheap check before any work: the file is cached, or its URL answers within ``timeout_s``."""
    if weights.file.is_file():
        return
    if _downloads_disabled():
        raise _missing(weights, "downloads are disabled (SHRINK_NO_DOWNLOAD)")
    try:
        urllib.request.urlopen(urllib.request.Request(weights.url, method="HEAD"), timeout=timeout_s).close()
    except OSError as error:
        raise _missing(weights, f"{weights.url} does not answer: {getattr(error, 'reason', error)}") from None


def _downloads_disabled() -> bool:
    return os.environ.get("SHRINK_NO_DOWNLOAD", "") not in ("", "0")


def _missing(weights: PublishedWeights, why: str) -> WeightsError:
    return WeightsError(
        f"torchvision weights {weights.model} {weights.name} are not in {weights.file} and {why}; download "
        f"{weights.url} on a machine with internet and put it at that path (on every node of a cluster), or "
        "set TORCH_HOME to a folder whose hub/checkpoints holds it"
    )
