"""Fixtures of the structured-pruning tests: the small models of ``nets``."""

import pytest

from tests.structured.nets import NETS, randomized


@pytest.fixture(params=sorted(NETS))
def net(request):
    """(name, model, input shape) for each of the small models."""
    build, shape = NETS[request.param]
    return request.param, randomized(build()), shape
