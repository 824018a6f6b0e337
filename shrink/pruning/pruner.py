"""``prune`` and ``Pruner``: score the prunable weights with a strategy, keep exactly the right number,
attach the masks."""

from numbers import Integral

import torch
from torch import Tensor, nn

from shrink.pruning.budget import check_compression, kept_count, prunable_layers
from shrink.pruning.masks import apply_masks, get_masks
from shrink.pruning.registry import ScoreContext, Strategy, get_strategy
from shrink.pruning.rounds import PruningRound, round_at
from shrink.pruning.select import proportional_counts, select_global, select_per_layer


def prune(
    model: nn.Module,
    strategy: str,
    compression: float,
    *,
    inputs: Tensor | None = None,
    targets: Tensor | None = None,
    prune_classifier: bool = False,
    seed: int | None = None,
) -> dict[str, Tensor]:
    """Prune ``model`` in place to ``compression`` = total / nonzero parameters with ``strategy`` (a name
    or alias, see ``strategies()``) and return the boolean masks, keyed by parameter name.

    Data-driven strategies score on the batch ``inputs``/``targets`` (class indices). Random strategies
    draw from ``seed``, or from torch's global generator when ``seed`` is None. Masks are attached to the
    model (see ``shrink.pruning.masks``); earlier masks of the same weights are replaced, and weights they
    pruned score lowest, so pruning a pruned model again only removes more.

    Channel strategies (``structure == "channels"``) trace the model on ``inputs`` (targets unused), never
    remove the classifier's outputs, and reach ``compression`` to within
    ``shrink.pruning.channels.CHANNEL_TOLERANCE`` (whole channels).

    One call of a fresh :class:`Pruner`; prune the same model again with one ``Pruner`` (the rounds of a
    schedule) so that matched strategies keep their reference's counts on the model as it was first.
    """
    return Pruner(model, strategy, inputs=inputs, targets=targets, prune_classifier=prune_classifier,
                  seed=seed)(compression)


class Pruner:
    """Prunes one model, possibly again and again (the rounds of a schedule), with one strategy, batch and
    seed: ``pruner(compression) -> masks`` does what :func:`prune` does.

    Matched strategies under a schedule. ``random-matched:<s>`` and ``magnitude-matched:<s>`` keep, in every
    layer, exactly as many weights as ``<s>`` keeps there when it prunes the *reference model*, the model as
    it was when the pruner was made (in a trial: the dense base), to the same compression, on the same
    batch. With one-shot pruning these are exactly the counts of ``<s>``'s own trial (same base, batch and
    seed). At a later round of an iterative or gradual schedule, ``<s>``'s own trial prunes its fine-tuned
    model, so its counts there follow its own training path, which no other trial sees; the rejected
    alternative, scoring ``<s>`` on the matched trial's own pruned and fine-tuned model, drifts with the
    matched trial's path instead (neither ``<s>``'s counts nor reproducible across families). So at every
    round a matched strategy reproduces ``<s>``'s allocation of the dense base at that round's compression:
    the same for both families and every seed of a cell, and exactly ``<s>``'s when pruning is one-shot.
    ``<s>``'s scores on the reference model are taken once, when the pruner is made.

    When ``<s>``'s own trial has run, its rounds (``reference_rounds``: what each of its rounds kept, layer
    by layer, as the trial recorded them) are what a matched strategy keeps instead, round by round: the
    paper's "same layerwise pruning proportions as the proposed technique" under any schedule (a sweep runs
    such matched trials after their references).
    """

    def __init__(self, model: nn.Module, strategy: str, *, inputs: Tensor | None = None,
                 targets: Tensor | None = None, prune_classifier: bool = False, seed: int | None = None,
                 reference_rounds: list[PruningRound] | None = None):
        self.model, self.strategy = model, get_strategy(strategy)
        self.prune_classifier, self.seed = prune_classifier, seed
        if reference_rounds is not None and self.strategy.matched is None:
            raise ValueError(f"strategy {self.strategy.name} is not a matched baseline: it takes no reference rounds")
        self.reference_rounds = reference_rounds
        _generator(seed)  # a bad seed fails now
        if self.strategy.structure == "channels":
            if inputs is None:
                raise ValueError(f"strategy {self.strategy.name} traces the model: pass inputs= (a batch of examples)")
            self.inputs, self.targets = inputs, None
            return
        if self.strategy.needs_data and (inputs is None or targets is None):
            raise ValueError(f"strategy {self.strategy.name} scores on data: pass inputs= and targets= (a batch)")
        self.layers = prunable_layers(model, prune_classifier)
        device = next(iter(self.layers.values())).weight.device if self.layers else None
        self.inputs = None if inputs is None else inputs.to(device)
        self.targets = None if targets is None else targets.to(device)
        reference = self.strategy.matched
        self._reference_scores = None  # <s>'s scores on the reference model, when its scope is global
        if reference is not None and reference.scope == "global" and self.layers:
            self._reference_scores = _scores(reference, self._context())

    def __call__(self, compression: float) -> dict[str, Tensor]:
        """Prune the model to ``compression`` and return the masks (see :func:`prune`)."""
        if self.strategy.structure == "channels":
            return _prune_channels(self.model, self.strategy, compression, self.inputs, self.prune_classifier)
        keep = kept_count(self.model, self.layers, compression)
        counts = self._matched_counts(compression, keep)
        masks = _masks(self.strategy, self._context(), keep, counts) if self.layers else {}
        apply_masks(self.model, masks)
        return masks

    def _context(self) -> ScoreContext:
        return ScoreContext(self.model, self.layers, self.inputs, self.targets, _generator(self.seed))

    def _matched_counts(self, compression: float, keep: int) -> dict[str, int] | None:
        """For a matched strategy, the per-layer counts its reference trial kept at this round when given,
        else those its reference keeps of the reference model."""
        reference = self.strategy.matched
        if reference is None:
            return None
        if self.reference_rounds is not None:
            return self._recorded_counts(compression, keep)
        if self._reference_scores is None:  # a layer-wise reference: the same fraction of every layer
            return proportional_counts({name: layer.weight.numel() for name, layer in self.layers.items()}, keep)
        kept = select_global(self._reference_scores, keep)
        return {name: int(mask.count_nonzero()) for name, mask in kept.items()}

    def _recorded_counts(self, compression: float, keep: int) -> dict[str, int]:
        """The reference trial's counts at ``compression``, checked to cover these layers and sum to ``keep``."""
        kept = dict(round_at(self.reference_rounds, compression).kept)
        if kept.keys() != self.layers.keys():
            raise ValueError(f"the reference's round at compression {compression:g} is for layers {sorted(kept)}, "
                             f"this model prunes {sorted(self.layers)}")
        if sum(kept.values()) != keep:
            raise ValueError(f"the reference kept {sum(kept.values())} weights at compression {compression:g}, "
                             f"this model keeps {keep} there")
        return kept


def _prune_channels(model: nn.Module, strategy: Strategy, compression: float, inputs: Tensor,
                    prune_classifier: bool) -> dict[str, Tensor]:
    """``prune`` for a channel strategy: its mask function chooses whole channels."""
    if prune_classifier:
        raise ValueError(f"strategy {strategy.name} removes channels and never the classes: prune_classifier must be False")
    check_compression(compression)
    inputs = inputs.to(next(model.parameters()).device)
    masks = strategy.score(ScoreContext(model, prunable_layers(model), inputs, None, _generator(None)), compression)
    apply_masks(model, masks)
    return masks


def _masks(strategy: Strategy, ctx: ScoreContext, keep: int, matched: dict[str, int] | None) -> dict[str, Tensor]:
    """Masks keeping ``keep`` prunable weights the way ``strategy`` chooses them; a matched strategy keeps
    the per-layer counts ``matched``."""
    if strategy.matched is not None:
        counts = matched
    elif strategy.scope == "layer":
        counts = proportional_counts({name: weight.numel() for name, weight in ctx.weights.items()}, keep)
    else:
        counts = None
    scores = _scores(strategy, ctx)
    return select_global(scores, keep) if counts is None else select_per_layer(scores, counts)


def _scores(strategy: Strategy, ctx: ScoreContext) -> dict[str, Tensor]:
    """``strategy``'s checked scores of the prunable weights, weights pruned earlier scoring 0."""
    with torch.no_grad():
        scores = _checked(strategy, strategy.score(ctx), ctx)
        earlier = get_masks(ctx.model)
        return {name: s.masked_fill(~earlier[name], 0) if name in earlier else s for name, s in scores.items()}


def _checked(strategy: Strategy, scores: dict[str, Tensor], ctx: ScoreContext) -> dict[str, Tensor]:
    """The scores, after checking that they cover exactly the prunable weights with their shapes."""
    if scores.keys() != ctx.layers.keys():
        raise ValueError(
            f"strategy {strategy.name} scored {sorted(scores)} but the prunable weights are {sorted(ctx.layers)}"
        )
    for name, weight in ctx.weights.items():
        if scores[name].shape != weight.shape:
            raise ValueError(
                f"strategy {strategy.name}: scores of {name} have shape {tuple(scores[name].shape)}, "
                f"the weight has {tuple(weight.shape)}"
            )
    return dict(scores)


def _generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or torch's global one when ``seed`` is None."""
    if seed is None:
        return torch.default_generator
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return torch.Generator().manual_seed(int(seed))
