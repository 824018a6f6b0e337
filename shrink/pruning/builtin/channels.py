"""Channel strategies: remove whole output channels of convolutions and neurons of linear layers.

Named like the weight strategies, ``<scope>-channel-<criterion>``: ``l1`` and ``l2`` filter norms (Li et
al. 2017), ``bn`` BatchNorm scales (Liu et al. 2017); ``global`` ranks every channel of the network
together, ``layer`` removes the same fraction of every layer's channels. The short names follow each
paper: ``channel-l1`` and ``channel-l2`` are per layer as in Li et al., ``channel-bn`` is global as in
Liu et al. See ``shrink.pruning.channels`` for the slices removed with each channel and the tolerance.
"""

from shrink.pruning.registry import MaskFn, ScoreContext, register_strategy

TRACE_EXAMPLES = 8  # examples of the batch used to trace the model and check the masks

_CRITERIA = {
    "l1": ("mean |w| of each channel's filters", "Li et al. 2017", "layer"),
    "l2": ("root mean square of each channel's filters", "Li et al. 2017", "layer"),
    "bn": ("|BatchNorm scale| of each channel", "Liu et al. 2017", "global"),
}
_SCOPES = {"global": "ranked over the whole network", "layer": "the same fraction removed in every layer"}


def _channel_strategy(criterion: str, scope: str) -> MaskFn:
    def masks(ctx: ScoreContext, compression: float):
        from shrink.pruning.channels import channel_masks  # torch-pruning: only channel strategies need it

        return channel_masks(ctx.model, ctx.inputs[:TRACE_EXAMPLES], compression, criterion=criterion, scope=scope)

    return masks


for _criterion, (_what, _paper, _short_scope) in _CRITERIA.items():
    for _scope, _how in _SCOPES.items():
        register_strategy(
            f"{_scope}-channel-{_criterion}",
            scope=_scope,
            aliases=(f"channel-{_criterion}",) if _scope == _short_scope else (),
            description=f"whole channels by {_what} ({_paper}), {_how}",
            needs_data=True,
            structure="channels",
        )(_channel_strategy(_criterion, _scope))
