"""Shared fixtures: tiny random models of every family, built once per test session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from captum_eagle import MLLMForwardWrapper
from captum_eagle.testing import FAMILY_NAMES, tiny_model

PROMPT = "describe the image ."
TARGET = "a red cat sitting"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread; on a busy CPU, more threads spin and wait.

    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", params=FAMILY_NAMES)
def family(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def tiny(family: str):
    return tiny_model(family)


@pytest.fixture(scope="session")
def wrapper(tiny) -> MLLMForwardWrapper:
    return MLLMForwardWrapper(*tiny, batch_size=4)


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    array[8:24, 10:30] = (220, 30, 30)
    return Image.fromarray(array)


@pytest.fixture(scope="session")
def sample(wrapper: MLLMForwardWrapper, photo: Image.Image):
    return wrapper.prepare(photo, PROMPT, TARGET)


@pytest.fixture()
def images(sample) -> torch.Tensor:
    scales = torch.linspace(0.1, 1.0, 5).view(5, 1, 1, 1)
    return sample.image.repeat(5, 1, 1, 1) * scales
