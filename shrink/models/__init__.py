"""The named model zoo: each name means one exact architecture, documented with its paper.

``create(name, num_classes=None, *, input_shape=None, weights=None)`` builds one; ``available()`` and
``info(name)`` describe them; ``check_weights`` tells whether a state-dict file fits a model;
``published_weights``/``fetch_weights`` find torchvision's published weights (``shrink.models.published``).
Every model marks its classifier module with ``is_classifier = True``.
"""

from shrink.models.base import ModelInfo
from shrink.models.published import PublishedWeights, check_reachable, fetch_weights, published_weights
from shrink.models.registry import (UnknownModel, WeightsError, available, check_weights, create, info,
                                    parameter_count, read_state)

__all__ = ["ModelInfo", "PublishedWeights", "UnknownModel", "WeightsError", "available", "check_reachable",
           "check_weights", "create", "fetch_weights", "info", "parameter_count", "published_weights", "read_state"]
