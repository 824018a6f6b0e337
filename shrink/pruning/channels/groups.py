"""Channel groups: which parameter slices belong to one removable channel.

Removing output channel ``c`` of a convolution also removes entry ``c`` of the BatchNorm after it,
input slice ``c`` of every layer that reads it and, across a residual addition, channel ``c`` of
every other layer that writes into the same sum. torch-pruning's dependency graph (DepGraph) finds
these couplings by tracing one forward pass; this module turns each of its groups into plain data,
a list of :class:`Slice` s, so that scoring, masking and counting never touch the graph again.

A group is left whole (listed in :attr:`ChannelGraph.fixed` with the reason) when removing its
channels cannot be expressed as slices this module understands: it writes the model's outputs (a
classifier), it touches a layer type other than convolution, linear or BatchNorm, or the traced
graph maps it inconsistently. The last case is real: torch-pruning reads a channel-padding shortcut
(the parameter-free "option A" shortcut of CIFAR ResNets) as an element-wise op, so the residual
streams of those networks stay whole and only the channels inside each block are pruned, as in
Li et al. (2017).
"""

from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import Tensor, nn

_CONV = nn.modules.conv._ConvNd
_NORM = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class Slice:
    """Positions ``index`` along dimension ``dim`` of parameter ``param``; ``channel[k]`` is the
    group channel that position ``index[k]`` belongs to."""

    param: str
    dim: int
    index: Tensor
    channel: Tensor
    role: str = ""  # "filter": an output slice of a conv/linear weight; "scale": a BatchNorm weight


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that can only be removed together with all of their slices."""

    root: str  # the module whose output channels define the group
    channels: int
    slices: tuple[Slice, ...]

    def slices_of(self, role: str) -> tuple[Slice, ...]:
        """The slices with this role: ``filter`` (what filter norms score) or ``scale`` (BatchNorm)."""
        return tuple(s for s in self.slices if s.role == role)


@dataclass
class ChannelGraph:
    """The removable channel groups of a model, the groups left whole, and the traced graph."""

    groups: list[ChannelGroup]
    fixed: dict[str, str]  # root module name -> why its channels stay
    graph: tp.DependencyGraph
    modules: dict[str, nn.Module]


def trace_channels(model: nn.Module, inputs: Tensor) -> ChannelGraph:
    """Trace ``model`` on ``inputs`` (any batch of the right shape) and return its channel groups.

    The model is traced in eval mode, so BatchNorm running statistics are not touched.
    """
    classifiers = {id(m) for c in model.modules() if getattr(c, "is_classifier", False) for m in c.modules()}
    if not classifiers:
        raise ValueError(
            "channel pruning needs the classifier marked with `is_classifier = True` "
            "(its outputs are the classes and must stay); no module of this model has it"
        )
    training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs, verbose=False)
    finally:
        model.train(training)
    names = {module: name for name, module in model.named_modules()}
    groups, fixed = [], {}
    for group in graph.get_all_groups():
        root = group[0].dep.target.module
        reason = _unsupported(graph, group, classifiers, names)
        if reason:
            fixed[names[root]] = reason
            continue
        slices = tuple(s for item in group for s in _slices(graph, item, names))
        groups.append(ChannelGroup(names[root], graph.get_out_channels(root), slices))
    return ChannelGraph(groups, fixed, graph, {name: module for module, name in names.items()})


def _unsupported(graph, group, classifiers, names) -> str | None:
    """Why this group's channels cannot be removed as slices, or None when they can."""
    channels = graph.get_out_channels(group[0].dep.target.module)
    for item in group:
        module = item.dep.target.module
        if isinstance(module, nn.Parameter):
            return "couples a bare nn.Parameter"
        if not _has_parameters(module):
            continue
        out = graph.is_out_channel_pruning_fn(item.dep.handler)
        if out and id(module) in classifiers:
            return f"writes the outputs of classifier '{names[module]}'"
        if not isinstance(module, (_CONV, nn.Linear, _NORM)):
            return f"couples {type(module).__name__} '{names[module]}' (only Conv, Linear, BatchNorm are sliced)"
        if isinstance(module, _CONV) and (module.transposed or 1 < module.groups != module.out_channels):
            return f"couples a transposed or grouped convolution '{names[module]}'"
        if out and len(item.idxs) != graph.get_out_channels(module):
            return (
                f"the traced graph maps {channels} channels onto {len(item.idxs)} of the "
                f"{graph.get_out_channels(module)} outputs of '{names[module]}' (a shortcut it cannot follow)"
            )
    return None


def _slices(graph, item, names) -> list[Slice]:
    """The parameter slices of one (dependency, indices) item of a full group."""
    module = item.dep.target.module
    if not _has_parameters(module):
        return []
    name = names[module]
    index = torch.as_tensor(item.idxs, dtype=torch.long)
    channel = torch.as_tensor(item.root_idxs, dtype=torch.long)
    if isinstance(module, _NORM):
        return [Slice(f"{name}.weight", 0, index, channel, "scale"), Slice(f"{name}.bias", 0, index, channel)]
    depthwise = isinstance(module, _CONV) and module.groups > 1
    if graph.is_out_channel_pruning_fn(item.dep.handler) or depthwise:
        bias = [Slice(f"{name}.bias", 0, index, channel)] if module.bias is not None else []
        return [Slice(f"{name}.weight", 0, index, channel, "filter"), *bias]
    return [Slice(f"{name}.weight", 1, index, channel)]


def _has_parameters(module) -> bool:
    """Whether a graph node is a module with parameters of its own (not a parameter-free op)."""
    return isinstance(module, nn.Module) and next(module.parameters(recurse=False), None) is not None
