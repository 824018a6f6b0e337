"""The built-in strategies; importing this package registers them, in the order listed by ``strategies()``.

ShrinkBench's class names (``GlobalMagWeight``, ...) are accepted as aliases.
"""

from shrink.pruning.builtin import magnitude, gradient, activation, random, channels  # noqa: I001  (listing order)

__all__ = ["magnitude", "gradient", "activation", "random", "channels"]
