"""Where dataset files are looked for, what happens when they are missing, and the canonical download."""

import hashlib
import importlib.util
import http.server
import io
import socket
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import position_coded_mnist, write_cifar10, write_mnist

from shrink import datasets
from shrink.datasets import cifar, download, idx

MNIST_FILES = position_coded_mnist(100, 20)


def test_search_order_root_then_shrink_data_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHRINK_DATA", str(tmp_path / "data"))
    cache = tmp_path / "cache" / "mnist"  # $SHRINK_CACHE is tmp_path/cache (tests/conftest.py)
    write_mnist(cache, *MNIST_FILES)
    assert datasets.locate("mnist") == cache
    write_mnist(tmp_path / "data" / "mnist", *MNIST_FILES)
    assert datasets.locate("mnist") == tmp_path / "data" / "mnist"
    write_mnist(tmp_path / "mine", *MNIST_FILES)
    assert datasets.locate("mnist", tmp_path / "mine") == tmp_path / "mine"
    assert datasets.locate("mnist", tmp_path / "empty") == tmp_path / "data" / "mnist"


def test_root_may_hold_the_files_or_a_folder_named_after_the_dataset(tmp_path):
    write_mnist(tmp_path / "all" / "mnist", *MNIST_FILES)
    assert datasets.locate("mnist", tmp_path / "all") == tmp_path / "all" / "mnist"


def test_missing_dataset_error_lists_every_place_and_how_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv("SHRINK_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(idx.FASHION_MNIST, "system_dirs", (tmp_path / "debian",))
    with pytest.raises(datasets.DatasetNotFound) as caught:
        datasets.load("fashion-mnist", "train", root=tmp_path / "mine")
    message = str(caught.value)
    assert "\n" not in message
    places = [tmp_path / "mine", tmp_path / "mine" / "fashion-mnist", tmp_path / "data" / "fashion-mnist",
              tmp_path / "cache" / "fashion-mnist", tmp_path / "debian"]  # fmt: skip
    assert message.startswith(f"fashion-mnist not found in {', '.join(map(str, places))}; ")
    assert "download disabled by SHRINK_NO_DOWNLOAD" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte[.gz]" in message
    assert message.endswith("in $SHRINK_DATA/fashion-mnist or in a directory given as --data-root")


def test_locate_never_downloads_and_says_what_load_would_try(tmp_path):
    with pytest.raises(datasets.DatasetNotFound, match=r"load\(\) would try the canonical download from https://www.cs.toronto.edu/~kriz"):
        datasets.locate("cifar10")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(datasets.UnknownDataset, match="unknown dataset 'cifar'; known datasets: mnist, fashion-mnist, cifar10, cifar100, digits, imagenet"):
        datasets.load("cifar", "train")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "validation"}, "unknown split 'validation'; splits: train, val, test"),
        ({"split": "val", "val_fraction": 1.0}, "val_fraction must be a number strictly between 0 and 1, got 1.0"),
        ({"split": "val", "split_seed": -1}, "split_seed must be a non-negative integer, got -1"),
    ],
)
def test_bad_arguments_fail_before_looking_for_files(kwargs, message):
    with pytest.raises(ValueError, match=message):
        datasets.load("mnist", **kwargs)  # mnist is absent: the argument error comes first


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server for tmp_path/www; yields (base URL, directory, list of requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", www, requests
    server.shutdown()
    thread.join()


def serve_mnist(www: Path, base: str, monkeypatch, *, md5=None):
    write_mnist(www, *MNIST_FILES, gzipped=(True,) * 4)
    files = tuple(
        download.Download(f"{base}/{p.name}", md5 or hashlib.md5(p.read_bytes()).hexdigest())
        for p in sorted(www.glob("*.gz"))
    )
    monkeypatch.setattr(idx.MNIST, "downloads", files)


def test_missing_files_are_downloaded_checked_and_cached(tmp_path, monkeypatch, http_server):
    base, www, _ = http_server
    serve_mnist(www, base, monkeypatch)
    monkeypatch.delenv("SHRINK_NO_DOWNLOAD")
    test = datasets.load("mnist", "test")
    assert len(test) == 20
    assert datasets.locate("mnist") == tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(p.name for p in www.iterdir())


def test_shrink_no_download_means_no_request(monkeypatch, http_server):
    base, www, requests = http_server
    serve_mnist(www, base, monkeypatch)
    with pytest.raises(datasets.DatasetNotFound, match="download disabled by SHRINK_NO_DOWNLOAD"):
        datasets.load("mnist", "test")
    assert requests == []


def test_a_corrupt_download_is_rejected_and_removed(tmp_path, monkeypatch, http_server):
    base, www, _ = http_server
    serve_mnist(www, base, monkeypatch, md5="0" * 32)
    monkeypatch.delenv("SHRINK_NO_DOWNLOAD")
    with pytest.raises(datasets.DatasetNotFound, match=r"download failed: http://127.0.0.1:\d+/t10k-images-idx3-ubyte.gz: MD5 [0-9a-f]{32} differs from the published 0{32}; to provide it"):
        datasets.load("mnist", "test")
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_a_missing_download_is_reported(monkeypatch, http_server):
    base, _, _ = http_server
    monkeypatch.setattr(idx.MNIST, "downloads", (download.Download(f"{base}/nothing.gz", "0" * 32),))
    monkeypatch.delenv("SHRINK_NO_DOWNLOAD")
    with pytest.raises(datasets.DatasetNotFound, match="download failed: .*/nothing.gz: HTTP Error 404"):
        datasets.load("mnist", "test")


def test_a_silent_server_times_out_fast(monkeypatch):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/train-images-idx3-ubyte.gz"
        monkeypatch.setattr(idx.MNIST, "downloads", (download.Download(url, "0" * 32),))
        monkeypatch.setattr(download, "TIMEOUT_S", 0.3)
        monkeypatch.delenv("SHRINK_NO_DOWNLOAD")
        start = time.monotonic()
        with pytest.raises(datasets.DatasetNotFound, match="download failed: .*timed out"):
            datasets.load("mnist", "test")
    assert time.monotonic() - start < 3


def test_cifar_archive_is_downloaded_and_unpacked(tmp_path, monkeypatch, http_server):
    base, www, _ = http_server
    images, labels = np.zeros((50, 3, 32, 32), np.uint8), np.arange(50) % 10
    folder = write_cifar10(tmp_path / "src" / "cifar-10-batches-py", images, labels, images[:10], labels[:10])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")
    (www / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    md5 = hashlib.md5(buffer.getvalue()).hexdigest()
    monkeypatch.setattr(cifar.CIFAR10, "downloads", (download.Download(f"{base}/cifar-10-python.tar.gz", md5),))
    monkeypatch.delenv("SHRINK_NO_DOWNLOAD")
    assert datasets.fetch("cifar10") == tmp_path / "cache" / "cifar10" / "cifar-10-batches-py"
    assert len(datasets.load("cifar10", "test")) == 10
    assert [p.name for p in (tmp_path / "cache" / "cifar10").iterdir()] == ["cifar-10-batches-py"]


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="the digits file comes with scikit-learn")
def test_digits_file_in_shrink_data_comes_before_scikit_learns(tmp_path, monkeypatch):
    bundled = datasets.locate("digits")
    (tmp_path / "data" / "digits").mkdir(parents=True)
    (tmp_path / "data" / "digits" / "digits.csv.gz").write_bytes((bundled / "digits.csv.gz").read_bytes())
    monkeypatch.setenv("SHRINK_DATA", str(tmp_path / "data"))
    assert datasets.locate("digits") == tmp_path / "data" / "digits"
