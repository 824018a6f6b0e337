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
  hook looks the masks up at every step, so pruning again later is picked up;
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

    def remask(*_) -> None:
        with torch.no_grad():
            for param, mask in _masked_parameters(model).values():
                _zero_masked(param, mask)

    remask()
    return optimizer.register_step_post_hook(remask)


def remove_masks(model: nn.Module) -> dict[str, Tensor]:
    """Detach every mask from the model (the pruned weights stay zero) and return them by parameter name:
    the model is then a plain dense one, for example before its zero channels are physically removed."""
    masks = get_masks(model)
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
