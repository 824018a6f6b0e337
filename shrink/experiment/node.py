"""What a node offers a trial: its torch, CUDA, driver and GPUs, probed where a trial would run.

Ray counts a node's GPUs through NVML whether or not torch can use them, so a sweep whose GPUs torch
cannot reach (a driver older than torch's CUDA needs, a GPU architecture the wheel has no kernels for)
would be scheduled in full and fail on every trial and every retry. :func:`probe_node` gathers the facts
into a :class:`NodeReport` of plain values (it crosses Ray as one); :func:`node_problems` is the pure
judgement of a report, each problem one sentence with its remedy, so that every check is tested on a
CPU machine with a report built by hand.

This module imports only torch (torchvision inside the probe): ``shrink doctor`` runs it on GPU
machines where neither Ray nor MLflow is installed. The driver, the GPU count as NVML gives it (what
Ray counts) and each GPU's hardware JPEG decoder are read from NVML through ``ctypes``, so no NVML
binding is needed either.
"""

import ctypes
import os
import platform
import re
import socket
import warnings
from dataclasses import asdict, dataclass

import torch

# The least NVIDIA driver (Linux, major version) that each CUDA major release runs on, with CUDA's minor
# version compatibility (CUDA Toolkit release notes, table 3).
DRIVER_FOR_CUDA = {11: 450, 12: 525, 13: 580}


@dataclass(frozen=True)
class GpuReport:
    """One CUDA device as torch sees it, and the outcome of the smoke test on it."""

    index: int  # torch's device index (after CUDA_VISIBLE_DEVICES)
    name: str
    capability: tuple[int, int]
    total_bytes: int
    free_bytes: int
    jpeg_decoder: bool | None  # a hardware JPEG engine (NVJPG), per NVML; None: unknown
    conv_error: str | None = None  # a bf16 channels-last conv forward/backward (``smoke``)
    decode_error: str | None = None  # a one-image ``decode_jpeg`` on the device

    @property
    def arch(self) -> str:
        """The capability as the arch list writes it, e.g. ``sm_90``."""
        return f"sm_{self.capability[0]}{self.capability[1]}"

    @property
    def bf16(self) -> bool:
        """Native bf16 tensor cores (Ampere, sm_80, and newer); older GPUs emulate it slowly."""
        return self.capability >= (8, 0)


@dataclass(frozen=True)
class NodeReport:
    """What a trial will find on one node."""

    name: str  # the host name, or the Ray node's address and id
    python: str
    torch: str
    torchvision: str | None  # None: it does not import (``torchvision_error`` says why)
    torchvision_error: str | None
    cuda_build: str | None  # the CUDA torch was built with; None: a CPU-only build
    driver: str | None  # the NVIDIA driver; None: none found
    nvml_gpus: int | None  # GPUs the driver reports (what Ray counts); None: no NVML
    cuda_available: bool
    cuda_error: str | None  # torch's warning when CUDA is not available
    arch_list: tuple[str, ...]  # ``torch.cuda.get_arch_list()``
    mps: bool
    cpus: int
    memory_available_bytes: int | None
    gpus: tuple[GpuReport, ...] = ()
    ray_gpus: float | None = None  # the node's GPU resource in Ray; None: probed without Ray


def probe_node(*, name: str | None = None, ray_gpus: float | None = None) -> NodeReport:
    """Probe this process's node: versions, driver, every visible GPU with its smoke test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    cuda_error = next((str(w.message) for w in caught if "CUDA" in str(w.message)), None)
    vision, vision_error = _torchvision()
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())] if available else []
    uuids = [_uuid(p) for p in props]
    driver, nvml_gpus, jpeg = _nvml(uuids)
    gpus = []
    for index, (p, uuid) in enumerate(zip(props, uuids)):
        free, total = torch.cuda.mem_get_info(index)
        conv_error, decode_error = smoke(f"cuda:{index}")
        gpus.append(GpuReport(index, p.name, (p.major, p.minor), total, free, jpeg.get(uuid), conv_error,
                              decode_error))
    mps = getattr(torch.backends, "mps", None)
    return NodeReport(
        name=name or socket.gethostname(), python=platform.python_version(), torch=torch.__version__,
        torchvision=vision, torchvision_error=vision_error, cuda_build=torch.version.cuda,
        driver=driver or _proc_driver(), nvml_gpus=nvml_gpus, cuda_available=available,
        cuda_error=None if available else cuda_error,
        arch_list=tuple(torch.cuda.get_arch_list()) if available else (),
        mps=bool(mps and mps.is_available()), cpus=len(os.sched_getaffinity(0)),
        memory_available_bytes=_memory_available(), gpus=tuple(gpus), ray_gpus=ray_gpus,
    )


def jpeg_engine(device: str) -> bool | None:
    """Whether the CUDA ``device`` (``cuda``, ``cuda:N``) has a hardware JPEG engine, per NVML as
    :func:`probe_node` reads it; None where that is unknown (no NVML, an old driver) or ``device`` is no
    available CUDA device."""
    where = torch.device(device)
    if where.type != "cuda" or not torch.cuda.is_available():
        return None
    uuid = _uuid(torch.cuda.get_device_properties(where.index if where.index is not None else 0))
    return _nvml([uuid])[2].get(uuid)


def smoke(device: str) -> tuple[str | None, str | None]:
    """The errors (None: it worked) of a tiny bf16 channels-last conv forward/backward and of decoding one
    JPEG on ``device``: what every trial and every ImageNet batch there does first."""
    return _attempt(_conv, device), _attempt(_decode, device)


def node_problems(report: NodeReport, *, needs_gpu: bool, decodes_jpeg: bool = True) -> list[str]:
    """What stops a trial on the node of ``report``, each one sentence with its remedy (empty: none).

    ``needs_gpu``: trials there train on CUDA (Ray counts GPUs there); ``decodes_jpeg``: they decode JPEGs
    on the GPU (ImageNet-family datasets), so a failing ``decode_jpeg`` counts."""
    problems = []
    if report.torchvision is None:
        problems.append(f"torchvision does not import ({report.torchvision_error}): install the torchvision "
                        f"release built for torch {report.torch}")
    if not needs_gpu:
        return problems
    if report.cuda_build is None:
        return [*problems, f"torch {report.torch} is a CPU-only build: install a CUDA build of torch"]
    needed = DRIVER_FOR_CUDA.get(int(report.cuda_build.split(".")[0]))
    if report.driver and needed and int(report.driver.split(".")[0]) < needed:
        problems.append(f"NVIDIA driver {report.driver} is older than {needed}, the least that torch's CUDA "
                        f"{report.cuda_build} runs on: upgrade the driver, or install a torch built for an older CUDA")
    counted = report.ray_gpus if report.ray_gpus is not None else report.nvml_gpus
    if not report.cuda_available:
        why = f" ({report.cuda_error})" if report.cuda_error else ""
        counter = "Ray counts" if report.ray_gpus is not None else "the driver reports"
        problems.append(f"CUDA is not available to torch {report.torch} (CUDA {report.cuda_build}){why}"
                        + (f", though {counter} {counted:g} GPU{'s' if counted != 1 else ''} here"
                           if counted else ""))
    elif counted and len(report.gpus) < counted:
        problems.append(f"torch sees {len(report.gpus)} of the {counted:g} GPUs counted here: check "
                        "CUDA_VISIBLE_DEVICES")
    for gpu in report.gpus:
        where = f"GPU {gpu.index} ({gpu.name}, {gpu.arch})"
        if not runs_on(gpu.capability, report.arch_list):
            problems.append(f"{where}: torch {report.torch} has no kernels for {gpu.arch} (it has "
                            f"{' '.join(report.arch_list)}): install a torch build that includes {gpu.arch}")
        elif gpu.conv_error:
            problems.append(f"{where}: a bf16 channels-last conv forward/backward failed: {gpu.conv_error}")
        if decodes_jpeg and gpu.decode_error:
            problems.append(f"{where}: decode_jpeg on the device failed: {gpu.decode_error}")
    return problems


def runs_on(capability: tuple[int, int], arch_list: tuple[str, ...]) -> bool:
    """Whether a wheel with ``arch_list`` has kernels for a GPU of ``capability``: a cubin of the same
    major and no higher minor (``sm_80`` runs on ``sm_86``), or PTX (``compute_XY``) it can compile for
    a capability at least XY. Arch-specific cubins (``sm_90a``) run on their own capability only."""
    major, minor = capability
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", arch)
        if match is None:
            continue
        kind, arch_major, arch_minor, suffix = match[1], int(match[2]), int(match[3]), match[4]
        if suffix == "a":
            if (arch_major, arch_minor) == capability:
                return True
        elif kind == "compute":
            if (arch_major, arch_minor) <= capability:
                return True
        elif arch_major == major and arch_minor <= minor:
            return True
    return False


@dataclass(frozen=True)
class NodeCheck:
    """One node's report and its problems: a block of ``shrink doctor``."""

    name: str
    report: NodeReport | None  # None: the node did not answer (``problems`` says why)
    problems: tuple[str, ...]

    def describe(self) -> str:
        """The facts, a line per GPU, then the problems or ``ok``."""
        lines = [f"node {self.name}", *(_facts(self.report) if self.report else [])]
        lines += [f"  problem: {problem}" for problem in self.problems] or ["  ok"]
        return "\n".join(lines)

    def to_json(self) -> dict:
        """What ``shrink doctor --json`` prints for the node."""
        return {"node": self.name, "report": asdict(self.report) if self.report else None,
                "problems": list(self.problems)}


def check_here() -> NodeCheck:
    """This machine probed and judged: as a GPU node where the driver reports GPUs or torch sees one."""
    report = probe_node()
    needs_gpu = report.cuda_available or bool(report.nvml_gpus)
    return NodeCheck(report.name, report, tuple(node_problems(report, needs_gpu=needs_gpu)))


def summary(checks: list[NodeCheck]) -> str:
    """The last line of ``shrink doctor``."""
    failing = sum(bool(check.problems) for check in checks)
    nodes = f"{len(checks)} node{'s' if len(checks) != 1 else ''}"
    return f"{nodes}, {failing} with problems" if failing else f"{nodes}, no problems"


def _facts(report: NodeReport) -> list[str]:
    vision = report.torchvision or f"missing ({report.torchvision_error})"
    counts = [f"{count:g} per {counter}" for count, counter in ((report.nvml_gpus, "NVML"), (report.ray_gpus, "Ray"))
              if count is not None]
    lines = [f"  python {report.python}, torch {report.torch}, torchvision {vision}, "
             f"CUDA build {report.cuda_build or 'none (CPU-only torch)'}",
             f"  NVIDIA driver {report.driver or 'none'}" + (f"; GPUs: {', '.join(counts)}" if counts else ""),
             f"  {report.cpus} CPUs, {_gib(report.memory_available_bytes)} memory available, "
             f"MPS {'yes' if report.mps else 'no'}"]
    if report.cuda_available:
        lines.append(f"  CUDA available, arch list {' '.join(report.arch_list)}")
    else:
        lines.append("  CUDA not available" + (f": {report.cuda_error}" if report.cuda_error else "")
                     + ("; CPU only" if not report.nvml_gpus and not report.ray_gpus else ""))
    from shrink.datasets.base import resolve_decode

    for gpu in report.gpus:
        jpeg = {True: "yes", False: "no", None: "unknown"}[gpu.jpeg_decoder]
        checks = "ok" if gpu.conv_error is None and gpu.decode_error is None else "FAILED"
        lines.append(f"  GPU {gpu.index}: {gpu.name}, {gpu.arch}, bf16 {'yes' if gpu.bf16 else 'emulated'}, "
                     f"hardware JPEG decoder {jpeg} (decode auto: {resolve_decode('auto', 'cuda', gpu.jpeg_decoder)}), "
                     f"{_gib(gpu.free_bytes)} free of {_gib(gpu.total_bytes)}, bf16 conv + decode_jpeg {checks}")
    return lines


# -- the probes ---------------------------------------------------------------------------------------


def _conv(device: str) -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1).to(device, memory_format=torch.channels_last)
    x = torch.randn(2, 3, 16, 16, device=device).contiguous(memory_format=torch.channels_last)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        loss = conv(x).float().square().mean()
    loss.backward()
    if not bool(torch.isfinite(conv.weight.grad).all()):
        raise RuntimeError("the gradient is not finite")


def _decode(device: str) -> None:
    from torchvision.io import decode_jpeg, encode_jpeg

    image = torch.arange(3 * 16 * 16, dtype=torch.int32).remainder(256).to(torch.uint8).reshape(3, 16, 16)
    decoded = decode_jpeg(encode_jpeg(image), device=device)
    if tuple(decoded.shape) != (3, 16, 16):
        raise RuntimeError(f"decoded shape {tuple(decoded.shape)}, expected (3, 16, 16)")


def _attempt(check, device: str) -> str | None:
    try:
        check(device)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
    except Exception as error:  # noqa: BLE001 -- any failure is the finding
        lines = [line for line in str(error).splitlines() if line.strip()]
        return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return None


def _uuid(props) -> str:
    """NVML's name of a device (``GPU-<uuid>``) from torch's properties; empty where torch has no UUID."""
    return f"GPU-{props.uuid}" if getattr(props, "uuid", None) else ""


def _torchvision() -> tuple[str | None, str | None]:
    try:
        import torchvision
    except Exception as error:  # noqa: BLE001 -- an ImportError, or a RuntimeError of mismatched operators
        return None, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return torchvision.__version__, None


def _nvml(uuids: list[str]) -> tuple[str | None, int | None, dict[str, bool]]:
    """The driver version, NVML's GPU count and, per device UUID, whether it has a JPEG engine; Nones
    where there is no NVML (no NVIDIA driver)."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if nvml.nvmlInit_v2() != 0:
            return None, None, {}
    except (OSError, AttributeError):
        return None, None, {}
    try:
        buffer = ctypes.create_string_buffer(96)
        driver = buffer.value.decode() if nvml.nvmlSystemGetDriverVersion(buffer, 96) == 0 else None
        count = ctypes.c_uint()
        gpus = count.value if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 else None
        jpeg = {}
        utilization_of = getattr(nvml, "nvmlDeviceGetJpgUtilization", None)  # drivers before 520 lack it
        for uuid in filter(None, uuids if utilization_of else []):
            handle, utilization, period = ctypes.c_void_p(), ctypes.c_uint(), ctypes.c_uint()
            if nvml.nvmlDeviceGetHandleByUUID(uuid.encode(), ctypes.byref(handle)) == 0:
                # NVML_ERROR_NOT_SUPPORTED (3): the GPU has no JPEG engine
                status = utilization_of(handle, ctypes.byref(utilization), ctypes.byref(period))
                if status in (0, 3):
                    jpeg[uuid] = status == 0
        return driver, gpus, jpeg
    finally:
        nvml.nvmlShutdown()


def _proc_driver() -> str | None:
    """The kernel module's version, where NVML is not loadable but the driver is."""
    try:
        text = open("/proc/driver/nvidia/version").read()
    except OSError:
        return None
    match = re.search(r"Kernel Module.*?\s(\d+\.\d+(?:\.\d+)?)\s", text)
    return match[1] if match else None


def _memory_available() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _gib(size: int | None) -> str:
    return "unknown" if size is None else f"{size / 2**30:.1f} GiB"
