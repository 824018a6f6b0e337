"""Masks and their life cycle: attach, read, keep exact through training, save and load.

The choice: a mask is a persistent boolean buffer ``<param>_mask`` on the module that owns the parameter
(``layer1.0.conv1.weight`` gets ``layer1.0.conv1.weight_mask``), and the weight itself is zeroed where the
mask is False. So:

- the forward pass is the plain layer (no parametrization, no extra multiply): ``torch.compile``, the
  metrics and export see an ordinary model whose pruned weights are exact zeros;
- masks travel with the model: ``state_dict``, ``.to(device)``, ``copy.deepcopy``, pickling;
- training keeps them exact with ``keep_masked(model, optimizer)``: an optimizer step post-hook multiplies
  every masked parameter by its mask after each step, so whatever the update rule does with stale
  momentum, Adam moments or weight decay, a pruned weight is exactly zero whenever the model is used. The
  hook multiplies with one foreach op over a list of (parameter, mask) pairs, the masks in their
  parameters' dtype (one dtype per list is what foreach's fused path takes; it costs a float copy of each
  mask), which it builds again at the first step after masks were attached or detached anywhere
  (:func:`apply_masks`, :func:`remove_masks`, :func:`load_pruned`): pruning again later is picked up, and a
  step walks no modules and launches no kernel per tensor (a mask buffer written in place some other way,
  as ``load_state_dict`` does, is seen once one of those runs);
- a fresh model has no mask buffers: ``load_pruned(model, state_dict)`` registers them from the state
  dict, then loads it strictly.

Rejected: ``torch.nn.utils.parametrize`` (multiplies at every forward and renames the parameters in the
state dict) and gradient masking alone (momentum and weight decay still move pruned weights).
"""

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

MASK_SUFFIX = "_mask"


class _MaskChanges:
    """How many times masks were attached or detached, anywhere: a :func:`keep_masked` hook lists its
    model's masks again when this has moved since it last did."""

    count = 0

    @classmethod
    def note(cls) -> None:
        cls.count += 1


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Attach boolean masks (keyed by parameter name) as buffers beside their parameters and zero the
    masked-out entries. The masks are attached as given (moved to the parameter's device if needed),
    replacing earlier masks of the same parameters."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise ValueError(f"cannot mask {name!r}: the model has no parameter of that name")
        if mask.dtype != torch.bool or mask.shape != params[name].shape:
            raise ValueError(
                f"mask for {name} must be bool of shape {tuple(params[name].shape)}, "
                f"got {mask.dtype} of shape {tuple(mask.shape)}"
            )
    _MaskChanges.note()
    with torch.no_grad():
        for name, mask in masks.items():
            module_name, _, attr = name.rpartition(".")
            mask = mask.to(params[name].device)
            model.get_submodule(module_name).register_buffer(attr + MASK_SUFFIX, mask, persistent=True)
            _zero_masked(params[name], mask)


def get_masks(model: nn.Module) -> dict[str, Tensor]:
    """The masks attached to the model, keyed by parameter name."""
    return {name: mask for name, (_, mask) in _masked_parameters(model).items()}


def keep_masked(model: nn.Module, optimizer: Optimizer) -> RemovableHandle:
    """Keep pruned weights at exactly zero across ``optimizer`` steps (re-masks after every step).

    Masks now and returns the hook's handle; ``handle.remove()`` stops the enforcement.
    """
    remask = _Remask(model)
    remask()
    return optimizer.register_step_post_hook(remask)


class _Remask:
    """Multiplies every masked parameter of ``model`` by its mask with one foreach op, over (parameter,
    mask) lists made again only after masks changed (:class:`_MaskChanges`)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.listed_at: int | None = None
        self.params: list[Tensor] = []
        self.masks: list[Tensor] = []

    def __call__(self, *_) -> None:
        if self.listed_at != _MaskChanges.count:
            self.listed_at = _MaskChanges.count
            pairs = list(_masked_parameters(self.model).values())
            self.params = [param for param, _ in pairs]
            self.masks = [mask.to(param.dtype) for param, mask in pairs]
        if self.params:
            with torch.no_grad():
                torch._foreach_mul_(self.params, self.masks)


def remove_masks(model: nn.Module) -> dict[str, Tensor]:
    """Detach every mask from the model (the pruned weights stay zero) and return them by parameter name:
    the model is then a plain dense one, for example before its zero channels are physically removed."""
    masks = get_masks(model)
    _MaskChanges.note()
    for name in masks:
        module_name, _, attr = name.rpartition(".")
        delattr(model.get_submodule(module_name), attr + MASK_SUFFIX)
    return masks


def load_pruned(model: nn.Module, state_dict: dict[str, Tensor]) -> None:
    """Load a pruned model's ``state_dict`` (with its ``*_mask`` buffers) into a fresh model, strictly."""
    params = dict(model.named_parameters())
    masked = [key.removesuffix(MASK_SUFFIX) for key in state_dict if key.endswith(MASK_SUFFIX)]
    apply_masks(model, {name: torch.ones_like(params[name], dtype=torch.bool) for name in masked if name in params})
    model.load_state_dict(state_dict)


def _zero_masked(param: Tensor, mask: Tensor) -> None:
    """Zero ``param`` where ``mask`` is False (multiplying by the mask's uint8 view: twice as fast as bool)."""
    param.mul_(mask.view(torch.uint8))


def _masked_parameters(model: nn.Module) -> dict[str, tuple[nn.Parameter, Tensor]]:
    """(parameter, mask) of every masked parameter, keyed by parameter name."""
    found = {}
    for module_name, module in model.named_modules():
        for attr, param in module.named_parameters(recurse=False):
            mask = module._buffers.get(attr + MASK_SUFFIX)
            if mask is not None:
                found[f"{module_name}.{attr}" if module_name else attr] = (param, mask)
    return found
