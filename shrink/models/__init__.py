"""The named model zoo: each name means one exact architecture, documented with its paper.

``create(name, num_classes=None, *, input_shape=None, weights=None)`` builds one; ``available()`` and
``info(name)`` describe them. Every model marks its classifier module with ``is_classifier = True``.
"""

from shrink.models.base import ModelInfo
from shrink.models.registry import UnknownModel, WeightsError, available, create, info, parameter_count

__all__ = ["ModelInfo", "UnknownModel", "WeightsError", "available", "create", "info", "parameter_count"]
