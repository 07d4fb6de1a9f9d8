"""Shared fixtures: models are loaded once per session, since loading and hashing cost seconds."""

from __future__ import annotations

import os

import pytest
import torch

# Tests share two cores with the rest of the machine; determinism matters more than speed here. Under
# pytest-xdist the workers share them: one thread each, as more only wait on each other.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // _WORKERS))


@pytest.fixture(scope="session")
def lite0():
    from atlas.models import load_model

    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def lite1():
    from atlas.models import load_model

    return load_model("efficientnet_lite1")


@pytest.fixture(scope="session")
def lite2():
    from atlas.models import load_model

    return load_model("efficientnet_lite2")


@pytest.fixture(scope="session")
def tiny_resnet():
    from atlas.models import load_model

    return load_model("test_resnet", random_weights=True)


WEIGHT_FIXTURES = {"lite0", "lite1", "lite2"}


def pytest_collection_modifyitems(config, items):
    """`slow` means what it says: a test that takes real weights from a fixture must be marked."""
    unmarked = [item.nodeid for item in items
                if WEIGHT_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError(f"these tests load real weights but are not marked slow: {', '.join(unmarked)}")


# The browser tests' fixtures; each browser test module defines the `site` they open.
@pytest.fixture(scope="module")
def server(site):
    from tests.browser_support import serve_parent

    with serve_parent(site) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from tests.browser_support import chromium

    with chromium() as browser:
        yield browser


@pytest.fixture(params=["file", "http"])
def tab(request, browser, site, server):
    from tests.browser_support import open_tab

    t = open_tab(browser, site.as_uri() + "/" if request.param == "file" else server)
    yield t
    t.page.context.close()
