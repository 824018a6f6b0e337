"""The registry of pruning strategies: built-ins, ``@register_strategy`` plug-ins and entry points.

A strategy is a scoring function ``score(ctx: ScoreContext) -> dict[str, Tensor]`` that gives every
prunable weight a non-negative score of the weight's shape (float, or int32 for exact ranks); the highest
scores are kept. Its ``scope`` says how the kept count is spread: ``global`` ranks all weights together,
``layer`` keeps the same fraction of every layer. Selection itself is shared (``shrink.pruning.select``).

Third-party packages add strategies without forking: decorate the scoring function with
``@register_strategy`` in a module and name that module in the entry-point group ``shrink.strategies``;
the group is imported the first time the registry is read.

Structured strategies (``structure="channels"``, see ``shrink.pruning.channels``) choose whole channels
instead: they register a mask function ``masks(ctx, compression) -> dict[str, Tensor]`` that returns
boolean masks for every parameter losing channels (weights, biases, BatchNorm), and need ``inputs``.

``random-matched:<strategy>`` and ``magnitude-matched:<strategy>`` are derived on demand from any
registered weight strategy: random or magnitude scores, selected with exactly the per-layer kept counts
that ``<strategy>`` produces on the dense model (at every round of a schedule: see ``shrink.pruning.Pruner``).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

import torch
from torch import Tensor, nn

from shrink.pruning.names import MATCHED, MatchedName

ENTRY_POINT_GROUP = "shrink.strategies"
SCOPES = ("global", "layer")


@dataclass(frozen=True)
class ScoreContext:
    """What a scoring function may look at: the model, the layers owning the prunable weights (keyed by
    the weight's parameter name, in model order), the batch for data-driven strategies, and a CPU
    generator for random ones (seeded from ``prune``'s ``seed``, else torch's global generator)."""

    model: nn.Module
    layers: dict[str, nn.Module]
    inputs: Tensor | None
    targets: Tensor | None
    generator: torch.Generator

    @property
    def weights(self) -> dict[str, nn.Parameter]:
        """The prunable weights by parameter name."""
        return {name: layer.weight for name, layer in self.layers.items()}


ScoreFn = Callable[[ScoreContext], dict[str, Tensor]]
MaskFn = Callable[[ScoreContext, float], dict[str, Tensor]]
STRUCTURES = ("weights", "channels")


@dataclass(frozen=True)
class Strategy:
    """A registered strategy. ``matched`` is set for ``<family>:<strategy>`` names: the strategy whose
    per-layer kept counts are reproduced. ``structure`` is ``weights`` (``score`` is a ``ScoreFn``) or
    ``channels`` (``score`` is a ``MaskFn`` choosing whole channels)."""

    name: str
    score: ScoreFn | MaskFn
    scope: str
    description: str
    needs_data: bool
    aliases: tuple[str, ...] = ()
    matched: "Strategy | None" = None
    structure: str = "weights"


_registry: dict[str, Strategy] = {}
_aliases: dict[str, str] = {}
_loaded = {"builtin": False, "plugins": False}


def register_strategy(
    name: str,
    *,
    scope: str = "global",
    aliases: tuple[str, ...] = (),
    description: str,
    needs_data: bool = False,
    structure: str = "weights",
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator registering a scoring function as strategy ``name`` (kebab-case); returns it unchanged.

    ``scope`` is ``global`` (rank all prunable weights together) or ``layer`` (same fraction per layer);
    ``needs_data`` strategies get ``inputs``/``targets``; ``description`` is one line. With
    ``structure="channels"`` the function is a ``MaskFn`` choosing whole channels.
    """
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name):
        raise ValueError(f"strategy name {name!r} must be kebab-case: lowercase words joined by '-'")
    if any(not alias or ":" in alias for alias in aliases):
        raise ValueError(f"strategy {name}: aliases must be non-empty and without ':', got {aliases}")
    if scope not in SCOPES:
        raise ValueError(f"strategy {name}: scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not description or "\n" in description:
        raise ValueError(f"strategy {name}: description must be one non-empty line")
    if structure not in STRUCTURES:
        raise ValueError(f"strategy {name}: structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
    _load_builtins()  # listed first, and never shadowed by a plug-in
    for taken in (name, *aliases):
        if taken in _registry or taken in _aliases or taken in MATCHED:
            raise ValueError(f"strategy name or alias {taken!r} is already registered")

    def register(score: ScoreFn) -> ScoreFn:
        _registry[name] = Strategy(name, score, scope, description, needs_data, tuple(aliases), structure=structure)
        _aliases.update(dict.fromkeys(aliases, name))
        return score

    return register


def strategies() -> dict[str, Strategy]:
    """The registered strategies by canonical name (built-ins and plug-ins), in registration order."""
    _load_plugins()
    return dict(_registry)


def resolve_strategy(name: str) -> str:
    """Canonical name for a strategy name or alias, including ``<family>:<strategy>`` matched names."""
    if not isinstance(name, str):
        raise TypeError(f"strategy must be a name (str), got {type(name).__name__}")
    _load_plugins()
    matched = MatchedName.parse(name)
    if matched is not None:
        if not matched.known:
            raise ValueError(f"unknown strategy family {matched.family!r} in {name!r}; known: {', '.join(MATCHED)}")
        if MatchedName.parse(matched.reference) is not None:
            raise ValueError(f"{name!r}: a matched strategy must match a registered strategy, not another match")
        reference = resolve_strategy(matched.reference)
        if _registry[reference].structure != "weights":
            raise ValueError(f"{name!r}: {reference} removes whole channels; matched families reproduce per-weight counts")
        return str(MatchedName(matched.family, reference))
    if name in _registry:
        return name
    if name in _aliases:
        return _aliases[name]
    known = ", ".join([*_registry, *(f"{family}:<strategy>" for family in MATCHED)])
    raise ValueError(f"unknown strategy {name!r}; known: {known} (aliases: {', '.join(_aliases)})")


def get_strategy(name: str) -> Strategy:
    """The ``Strategy`` for a name or alias; matched names are built from their two parts."""
    canonical = resolve_strategy(name)
    matched = MatchedName.parse(canonical)
    if matched is None:
        return _registry[canonical]
    source, description = MATCHED[matched.family]
    reference = _registry[matched.reference]
    return Strategy(
        name=canonical,
        score=_registry[source].score,
        scope="layer",
        description=description.replace("<strategy>", matched.reference),
        needs_data=reference.needs_data,
        matched=reference,
    )


def _load_builtins() -> None:
    """Register the built-in strategies (``shrink.pruning.builtin``), once, before anything else."""
    if not _loaded["builtin"]:
        _loaded["builtin"] = True
        import shrink.pruning.builtin  # noqa: F401  (registers on import)


def _load_plugins() -> None:
    """The built-ins, then the modules named in the ``shrink.strategies`` entry-point group, once."""
    _load_builtins()
    if _loaded["plugins"]:
        return
    _loaded["plugins"] = True
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as error:
            raise ImportError(
                f"strategy plug-in {entry_point.name} = {entry_point.value} failed to load: {error}"
            ) from error
