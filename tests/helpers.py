"""What many tests share, in one place: free ports, processes ended by PID, torchvision's weights cache, dataset files in their
real formats (read back through shrink's real readers), and small sweep files."""

import gzip
import os
import pickle
import signal
import socket
import struct
import time
from pathlib import Path

import numpy as np

# -- ports --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- processes ----------------------------------------------------------------------------------------


def pids_with_env(name: str, value: str) -> list[int]:
    """Processes (of this user) whose environment has ``name=value``."""
    entry = f"{name}={value}".encode()
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry in environ and int(pid) != os.getpid():
            pids.append(int(pid))
    return pids


def end_processes_with_env(name: str, value: str, grace_s: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``, every process started with ``name=value``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = pids_with_env(name, value)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            pids = pids_with_env(name, value)
            time.sleep(0.2)
        if not pids:
            return


# -- torchvision's weights cache ------------------------------------------------------------------------

RESNET18_FILE = "resnet18-f37072fd.pth"  # basename of torchvision's ResNet18_Weights.IMAGENET1K_V1.url


def published_state(model: str = "resnet18", num_classes: int = 1000) -> dict:
    """A state dict of ``model``'s shapes with random values (no initialisation: that takes seconds for large
    models), BatchNorm's running variances 1 and batch counts 0, so that it also evaluates sanely."""
    import torch

    from shrink import models

    with torch.device("meta"):
        shapes = {key: value.shape for key, value in models.create(model, num_classes).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {key: (torch.rand(shape, generator=generator) * 0.1 if shape.numel() > 1 else torch.ones(shape))
             for key, shape in shapes.items()}
    for key, value in state.items():
        if key.endswith("running_var"):
            value.fill_(1.0)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
    return state


def fake_published_weights(checkpoints: Path, model: str = "resnet18", file: str = RESNET18_FILE) -> Path:
    """:func:`published_state` saved at torchvision's cached file name in ``checkpoints`` (the ``torch_home``
    fixture's folder, ``$TORCH_HOME/hub/checkpoints``)."""
    import torch

    path = checkpoints / file
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(published_state(model), path)
    return path


# -- dataset files --------------------------------------------------------------------------------------

def write_imagenet(root: Path, classes: int = 1000, full: int = 4) -> Path:
    """train/ and val/ with ``classes`` class folders, so that 1000-output weights fit.

    train/: one 8x8 JPEG per class, five in each of the first ``full`` classes (whose fifth image
    each goes to the validation carve-out at val_fraction 0.1: floor(0.1 * 5 + 0.5) = 1, and
    floor(0.1 * 1 + 0.5) = 0 elsewhere); val/ (the test split): one JPEG in each of those ``full``
    classes, the other folders empty. So validation and test hold ``full`` images each: cheap to
    evaluate at 224x224.
    """
    from PIL import Image

    for c in range(classes):
        name = f"n{c:08d}"
        for part, count in (("train", 5 if c < full else 1), ("val", 1 if c < full else 0)):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.new("RGB", (8, 8), ((c * 37 + i * 61) % 256, c % 256, i * 50)).save(folder / f"{i}.JPEG")
    return root


IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian dimensions, then the data."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(directory: Path, train_x, train_y, test_x, test_y, *, gzipped=(True, True, False, False)) -> Path:
    """The four MNIST IDX files, each gzipped or raw as ``gzipped`` says."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, array, gz in zip(IDX_NAMES, (train_x, train_y, test_x, test_y), gzipped, strict=True):
        data = idx_bytes(np.asarray(array))
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def position_coded_mnist(n_train=100, n_test=20) -> tuple[np.ndarray, ...]:
    """Images whose every pixel holds the image's own index (mod 256), labels cycling 0..9."""
    train_x = np.repeat(np.arange(n_train) % 256, 28 * 28).reshape(n_train, 28, 28)
    test_x = np.repeat((np.arange(n_test) + 100) % 256, 28 * 28).reshape(n_test, 28, 28)
    return train_x, np.arange(n_train) % 10, test_x, np.arange(n_test) % 10


def python2_pickle(obj) -> bytes:
    """``obj`` pickled as the CIFAR files are (Python 2 cPickle, protocol 2): bytes keys and the
    ``numpy.core.multiarray`` path that Python 2's numpy wrote."""
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """N x 3 x 32 x 32 images as CIFAR's N x 3072 rows (all red, then green, then blue, row-major)."""
    return images.reshape(len(images), 3072).astype(np.uint8)


def write_cifar10(directory: Path, train_x, train_y, test_x, test_y) -> Path:
    """``data_batch_1..5``, ``test_batch`` and ``batches.meta`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, (x, y) in enumerate(zip(np.array_split(train_x, 5), np.array_split(train_y, 5)), start=1):
        batch = {b"batch_label": f"training batch {i} of 5".encode(), b"labels": [int(v) for v in y], b"data": cifar_rows(x)}
        (directory / f"data_batch_{i}").write_bytes(python2_pickle(batch))
    test = {b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in test_y], b"data": cifar_rows(test_x)}
    (directory / "test_batch").write_bytes(python2_pickle(test))
    meta = {b"num_cases_per_batch": 10000, b"label_names": [b"airplane", b"automobile"], b"num_vis": 3072}
    (directory / "batches.meta").write_bytes(python2_pickle(meta))
    return directory


def write_cifar100(directory: Path, train_x, train_y, test_x, test_y) -> Path:
    """``train``, ``test`` and ``meta`` in ``directory`` (fine labels as given, coarse = fine // 5)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        batch = {
            b"filenames": [b"x.png"] * len(x),
            b"fine_labels": [int(v) for v in y],
            b"coarse_labels": [int(v) // 5 for v in y],
            b"data": cifar_rows(x),
        }
        (directory / name).write_bytes(python2_pickle(batch))
    (directory / "meta").write_bytes(python2_pickle({b"fine_label_names": [b"apple"] * 100}))
    return directory


def photo_like(width: int, height: int, seed: int = 0):
    """A PIL RGB image that compresses like a photo: a smooth random colour field plus pixel noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (height // 25 + 2, width // 25 + 2, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), dtype=np.int16)
    return Image.fromarray(np.clip(field + rng.normal(0, 12, (height, width, 1)), 0, 255).astype(np.uint8))


def position_coded_image(width: int, height: int):
    """A PIL RGB image whose red channel rises linearly from 0 (left column) to 255 (right) and green from
    0 (top row) to 255 (bottom): a crop's box and mirroring can be read back from its pixels."""
    from PIL import Image

    red = np.round(np.linspace(0, 255, width))[None, :].repeat(height, 0)
    green = np.round(np.linspace(0, 255, height))[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([red, green, np.full_like(red, 128)], axis=-1).astype(np.uint8))


# -- sweep files ----------------------------------------------------------------------------------------


def digits_sweep_text(name: str = "tiny", *, folder: Path | None = None, models: str = "[small-mlp]",
                      strategies: str = "[global-magnitude, random]", compressions: str = "[2, 4]",
                      seeds: str = "[0, 1]", pretrain: str | None = "{epochs: 3}", finetune: str | None = "{epochs: 2}",
                      **extra: str) -> str:
    """A sweep file of ``models`` on digits: by default small-mlp, 2 strategies x 2 compressions x 2 seeds,
    3 pretraining and 2 fine-tuning epochs; with ``folder``, its MLflow store and Ray storage there.
    ``extra`` keys are added as given (``tracking_uri`` among them, replacing the folder's)."""
    lines = [f"name: {name}", "dataset: digits", f"models: {models}", f"strategies: {strategies}",
             f"compressions: {compressions}", f"seeds: {seeds}",
             *([f"pretrain: {pretrain}"] if pretrain else []), *([f"finetune: {finetune}"] if finetune else [])]
    if folder is not None:
        extra = {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}", "storage_path": str(folder / "ray"), **extra}
    return "\n".join([*lines, *(f"{key}: {value}" for key, value in extra.items())]) + "\n"


def digits_sweep(folder: Path, name: str = "tiny", **options: str) -> Path:
    """:func:`digits_sweep_text` written to ``folder/<name>.yaml``, recording under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(digits_sweep_text(name, folder=folder, **options))
    return path
