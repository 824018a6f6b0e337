"""Strategy names that other subpackages read without torch: the built-in baselines and the
``<family>:<strategy>`` format of matched baselines (this module is their one owner; the report parses
matched names through :meth:`MatchedName.parse`)."""

from dataclasses import dataclass

# Matched families: prefix -> (the registered strategy whose scores they select, one-line description).
MATCHED = {
    "random-matched": ("random", "random weights, with exactly the per-layer sparsities <strategy> gives the "
                                 "dense model (at each round of a schedule)"),
    "magnitude-matched": ("layer-magnitude", "|w|, with exactly the per-layer sparsities <strategy> gives the "
                                             "dense model (at each round of a schedule)"),
}

# The built-in baselines: the five of Blalock et al. 2020 (ShrinkBench's) and layer-wise random; every
# matched strategy is one too (``is_baseline``). A sweep's proposed methods default to its other strategies.
BASELINES = ("global-magnitude", "layer-magnitude", "global-gradient", "layer-gradient", "random", "layer-random")


@dataclass(frozen=True)
class MatchedName:
    """A matched baseline's name: ``family`` (a key of :data:`MATCHED`) and the ``reference`` strategy whose
    per-layer counts it keeps; ``str()`` is ``<family>:<reference>``."""

    family: str
    reference: str

    @classmethod
    def parse(cls, name: str) -> "MatchedName | None":
        """The parts of ``name`` when it has the matched form (known family or not), else None."""
        family, sep, reference = name.partition(":")
        return cls(family, reference) if sep else None

    @property
    def known(self) -> bool:
        """Whether the family is one of :data:`MATCHED`."""
        return self.family in MATCHED

    def __str__(self) -> str:
        return f"{self.family}:{self.reference}"


def matched_names(reference: str) -> list[str]:
    """Every matched baseline of ``reference``, in :data:`MATCHED` order."""
    return [str(MatchedName(family, reference)) for family in MATCHED]


def is_baseline(name: str) -> bool:
    """Whether the canonical strategy name ``name`` is a built-in baseline (``BASELINES`` or a matched one)."""
    matched = MatchedName.parse(name)
    return name in BASELINES or (matched is not None and matched.known)
