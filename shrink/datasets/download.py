"""The canonical download of a missing dataset: fast to give up, checksummed, disabled by ``SHRINK_NO_DOWNLOAD=1``."""

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 5.0
"""Seconds to wait for a connection or for any read before giving up."""


@dataclass(frozen=True)
class Download:
    """One file of a dataset's canonical download; ``.tar.gz`` archives are unpacked where they land."""

    url: str
    md5: str


class DownloadFailed(Exception):
    """A download that did not produce the expected files; the message is one line."""


def downloads_disabled() -> bool:
    """Whether ``$SHRINK_NO_DOWNLOAD`` is set to anything but ``""`` or ``"0"``."""
    return os.environ.get("SHRINK_NO_DOWNLOAD", "") not in ("", "0")


def download(files: tuple[Download, ...], dest: Path) -> None:
    """Fetch ``files`` into ``dest``, check their MD5 sums and unpack archives; ``DownloadFailed`` otherwise."""
    dest.mkdir(parents=True, exist_ok=True)
    for file in files:
        target = dest / file.url.rsplit("/", 1)[1]
        try:
            _fetch(file, target, TIMEOUT_S)
            if target.name.endswith(".tar.gz"):
                with tarfile.open(target) as archive:
                    archive.extractall(dest, filter="data")
                target.unlink()
        except (OSError, http.client.HTTPException, tarfile.TarError) as err:
            raise DownloadFailed(f"{file.url}: {err}") from None


def _fetch(file: Download, target: Path, timeout: float) -> None:
    partial = target.with_name(target.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(file.url, timeout=timeout) as response, partial.open("wb") as out:
        size = int(response.headers.get("Content-Length") or 0)
        print(f"shrink: downloading {file.url} ({size / 1e6:.1f} MB) to {target.parent}", file=sys.stderr, flush=True)
        done, reported = 0, 0
        while block := response.read(1 << 20):
            out.write(block)
            digest.update(block)
            done += len(block)
            if size and done * 4 // size > reported:
                reported = done * 4 // size
                print(f"shrink:   {target.name} {25 * reported}%", file=sys.stderr, flush=True)
    if digest.hexdigest() != file.md5:
        partial.unlink()
        raise DownloadFailed(f"{file.url}: MD5 {digest.hexdigest()} differs from the published {file.md5}")
    shutil.move(partial, target)
