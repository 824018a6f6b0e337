"""torchvision's published weights, found through its weights API in torch.hub's cache, offline."""

import functools
import http.server
import socket
import threading
import time

import pytest
import torch

from helpers import RESNET18_FILE, published_state
from shrink import models
from shrink.models import published

def test_names_resolve_through_torchvision_and_default_says_which(torch_home):
    weights = models.published_weights("resnet18")
    assert (weights.name, weights.num_classes, weights.source) == ("IMAGENET1K_V1", 1000, "torchvision:IMAGENET1K_V1")
    assert weights == models.published_weights("resnet18", "IMAGENET1K_V1")
    assert weights.file == torch_home / RESNET18_FILE


def test_cached_file_is_used_and_nothing_is_fetched(torch_home, monkeypatch):
    torch_home.mkdir(parents=True)
    torch.save(published_state("resnet18"), torch_home / RESNET18_FILE)
    monkeypatch.setattr(published.urllib.request, "urlopen", None)  # any request would fail loudly
    assert models.fetch_weights(models.published_weights("resnet18")) == torch_home / RESNET18_FILE
    models.check_reachable(models.published_weights("resnet18"))
    assert sorted(p.name for p in torch_home.iterdir()) == [RESNET18_FILE]


@pytest.mark.parametrize(("model", "weights", "message"), [
    ("resnet20", None, "resnet20 has no published torchvision weights; the models that have them: alexnet, vgg11"),
    ("resnet18", "IMAGENET1K_V2", "torchvision has no weights 'IMAGENET1K_V2' for resnet18; it has: DEFAULT, IMAGENET1K_V1"),
])
def test_models_and_weights_torchvision_lacks_are_named(model, weights, message):
    with pytest.raises(models.WeightsError, match=message):
        models.published_weights(model, weights)


def test_missing_weights_without_downloads_name_the_file_and_where_to_put_it(torch_home, monkeypatch):
    monkeypatch.setenv("SHRINK_NO_DOWNLOAD", "1")
    with pytest.raises(models.WeightsError) as error:
        models.fetch_weights(models.published_weights("resnet18"))
    message = str(error.value)
    assert "\n" not in message
    assert f"are not in {torch_home / RESNET18_FILE}" in message
    assert "download https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


@pytest.fixture
def served(tmp_path):
    """A local HTTP server over tmp_path/www, and its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_missing_weights_are_downloaded_into_torch_hubs_cache(torch_home, served):
    www, url = served
    torch.save(published_state("resnet18"), www / RESNET18_FILE)
    weights = published.PublishedWeights("resnet18", "IMAGENET1K_V1", f"{url}/{RESNET18_FILE}", 1000)
    assert models.fetch_weights(weights) == torch_home / RESNET18_FILE
    assert (torch_home / RESNET18_FILE).read_bytes() == (www / RESNET18_FILE).read_bytes()


def test_a_silent_server_gives_up_within_the_timeout(torch_home):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/{RESNET18_FILE}"
        weights = published.PublishedWeights("resnet18", "IMAGENET1K_V1", url, 1000)
        start = time.monotonic()
        with pytest.raises(models.WeightsError, match="timed out"):
            models.fetch_weights(weights, timeout_s=0.3)
        with pytest.raises(models.WeightsError, match="does not answer"):
            models.check_reachable(weights, timeout_s=0.3)
    assert time.monotonic() - start < 3
    assert not torch_home.exists() or list(torch_home.iterdir()) == []


def test_a_state_dict_file_is_checked_against_the_model_on_the_meta_device(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(published_state("resnet18"), path)
    models.check_weights("resnet18", path, 1000)
    with pytest.raises(models.WeightsError, match=r"does not fit resnet18: fc.weight has shape \(1000, 512\), "
                                                  r"expected \(10, 512\); fc.bias"):
        models.check_weights("resnet18", path, 10)
    torch.save(published_state("mobilenet_v2"), path)
    with pytest.raises(models.WeightsError, match=r"does not fit resnet18: missing conv1.weight; missing bn1.weight; "
                                                  r"missing bn1.bias; and \d+ more"):
        models.check_weights("resnet18", path, 1000)
