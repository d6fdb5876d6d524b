"""Conformance kit: for every tiny family, the wrapper feeds the model what its processor would.

Parametrised over ``captum_eagle.testing.list_tiny_models()``, so a family added there is checked
here without a new line. For each family, on the
generic path and on the family's torch adapter if it has one:

- pixel inputs of masked images equal the processor's output on the same masked images, for random
  region subsets and two image sizes / aspect ratios; the prompt's token layout does not depend on
  the masking;
- the region basis (one matmul per batch of subsets) equals the processor within its 8-bit rounding;
- per-token (log-)probabilities equal a direct teacher-forced model forward on the processor's
  inputs (PaliGemma's with the answer as ``suffix=``);
- batched results equal single results;
- Eagle's exact order equals the naive one-forward-per-subset reference;
- ``wrapper.generate`` equals ``model.generate`` on the processor's inputs.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from benchmarks.reference import naive_greedy
from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper, testing
from captum_eagle.families import ModelFamily
from captum_eagle.wrapper import PreparedSample

# (family, path): the generic path for every family, and the torch adapter where there is one
GENERIC_CASES = [(name, "generic") for name in testing.list_tiny_models()]
CASES = GENERIC_CASES + [
    (name, "adapter")
    for name in testing.list_tiny_models()
    if testing.tiny_model_path(name) != "generic"
]
SIZES = {"wide": (24, 40), "tall": (40, 28)}  # (height, width): two aspect ratios
PROMPT = "describe the image ."
TARGET = "a red cat sitting"
ROWS, COLUMNS = 2, 3  # 6 regions
TOKEN_KEYS = ("input_ids", "attention_mask")


def case_id(case: tuple[str, str]) -> str:
    return f"{case[1]}-{case[0]}"


@functools.cache
def tiny(name: str) -> tuple[PreTrainedModel, ProcessorMixin]:
    return testing.tiny_model(name)


@pytest.fixture(scope="module", params=CASES, ids=case_id)
def wrapper(request: pytest.FixtureRequest) -> MLLMForwardWrapper:
    name, path = request.param
    family = "generic" if path == "generic" else None
    wrapper = MLLMForwardWrapper(*tiny(name), family=family, batch_size=8)
    assert (wrapper.adapter.name == "generic") == (path == "generic")
    return wrapper


@pytest.fixture(scope="module", params=sorted(SIZES))
def photo(request: pytest.FixtureRequest) -> Image.Image:
    height, width = SIZES[request.param]
    rng = np.random.default_rng(height * width)
    array = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    array[height // 4 : height // 2, width // 4 : width // 2] = (220, 30, 30)
    return Image.fromarray(array)


@pytest.fixture(scope="module")
def sample(wrapper: MLLMForwardWrapper, photo: Image.Image) -> PreparedSample:
    return wrapper.prepare(photo, PROMPT, TARGET)


@pytest.fixture(scope="module")
def mask(sample: PreparedSample) -> FeatureMask:
    return FeatureMask.grid(sample.image, ROWS, COLUMNS)


def random_subsets(n_regions: int, count: int = 4, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    subsets = torch.rand(count, n_regions, generator=generator) > 0.5
    subsets[0] = False  # the empty subset: all baseline, or the full image when removing
    return subsets


def masked_images(
    image: torch.Tensor, mask: FeatureMask, subsets: torch.Tensor, keep: bool, fill: float = 0.0
) -> torch.Tensor:
    inside = subsets[:, mask.mask[0, 0]][:, None]
    return torch.where(inside == keep, image, fill)


def to_pil(image: torch.Tensor) -> Image.Image:
    array = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(array)


def processor_outputs(
    adapter: ModelFamily, images: torch.Tensor, text: str
) -> list[dict[str, torch.Tensor]]:
    """The family's own processor call on each image, with the given text."""
    return [adapter.processor_inputs(to_pil(image), text) for image in images]


def teacher_forced_inputs(
    processor: ProcessorMixin, image: Image.Image, sample: PreparedSample
) -> dict[str, torch.Tensor]:
    """The processor's inputs for prompt + answer, the answer passed as the family passes it.

    PaliGemma's processor takes the answer as ``suffix=`` (it appends ``<eos>`` and marks the
    answer in ``token_type_ids``); the other families take prompt + answer as one text.
    """
    if "suffix" in inspect.signature(type(processor).__call__).parameters:
        encoded = processor(
            images=[image], text=[sample.prompt_text], suffix=[sample.answer], return_tensors="pt"
        )
    else:
        encoded = processor(
            images=[image], text=[sample.prompt_text + sample.answer], return_tensors="pt"
        )
    return {key: value for key, value in encoded.items() if key != "labels"}


def pixel_part(encoded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    shape = encoded["input_ids"].shape
    return {
        key: value
        for key, value in encoded.items()
        if key not in TOKEN_KEYS and isinstance(value, torch.Tensor) and value.shape != shape
    }


def batched(outputs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The processor's batching: per-image outputs concatenated along the first dimension."""
    return {
        key: torch.cat([pixel_part(out)[key] for out in outputs]) for key in pixel_part(outputs[0])
    }


def assert_same_inputs(
    ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], atol: float
) -> None:
    assert set(ours) == set(reference)
    for key, value in reference.items():
        assert ours[key].shape == value.shape, key
        if value.is_floating_point():
            torch.testing.assert_close(ours[key].float(), value.float(), atol=atol, rtol=0)
        else:
            assert torch.equal(ours[key].cpu(), value), key


@pytest.mark.parametrize("keep", [True, False])
def test_pixel_inputs_equal_the_processor_on_masked_images(wrapper, sample, mask, keep) -> None:
    images = masked_images(sample.image, mask, random_subsets(mask.n_regions), keep)
    outputs = processor_outputs(wrapper.adapter, images, sample.prompt_text)
    # The token layout depends on the image size only, which masking does not change.
    for encoded in outputs:
        assert torch.equal(encoded["input_ids"], sample.prompt_ids)
    # float32 round-off of the adapters' torch normalisation; the generic path is the processor.
    assert_same_inputs(wrapper.adapter.pixel_inputs(images), batched(outputs), atol=1e-5)


@pytest.mark.parametrize(
    "wrapper", GENERIC_CASES, indirect=True, ids=case_id
)  # the region basis is generic
def test_region_basis_equals_the_processor_within_8_bit_rounding(wrapper, sample, mask) -> None:
    # Mid-range pixels and a grey baseline: the processor's resize never clips, so the only gap
    # to the processor is its rounding to 8 bits (<= 1 level per call, per basis term).
    image = 0.25 + 0.5 * sample.image
    basis = wrapper.adapter.region_basis(image, mask.mask, baselines=0.5)
    subsets = random_subsets(mask.n_regions)
    for keep in (True, False):
        lazy = basis.subsets(subsets, keep)
        torch.testing.assert_close(lazy.images(), masked_images(image, mask, subsets, keep, 0.5))
        reference = batched(processor_outputs(wrapper.adapter, lazy.images(), sample.prompt_text))
        level = 1 / 255 / min(wrapper.processor.image_processor.image_std)
        assert_same_inputs(lazy.pixel_inputs(), reference, atol=(mask.n_regions + 1) * level)


@pytest.mark.parametrize(
    "wrapper", GENERIC_CASES, indirect=True, ids=case_id
)  # the region basis is generic
def test_region_basis_scores_like_the_processor_with_a_black_baseline(wrapper, sample, mask):
    # Black fill: the resize can clip its overshoot at region borders, a local error, so the mean
    # pixel error stays within one 8-bit level and the probabilities barely move.
    basis = wrapper.adapter.region_basis(sample.image, mask.mask, baselines=0.0)
    lazy = basis.subsets(random_subsets(mask.n_regions, count=6, seed=1), keep=True)
    ours, reference = lazy.pixel_inputs(), wrapper.adapter.pixel_inputs(lazy.images())
    level = 1 / 255 / min(wrapper.processor.image_processor.image_std)
    error = (ours["pixel_values"].float() - reference["pixel_values"].float()).abs()
    assert error.mean() <= level
    torch.testing.assert_close(
        wrapper.token_probabilities(lazy, sample),
        wrapper.token_probabilities(lazy.images(), sample),
        atol=1e-3,
        rtol=0,
    )


@torch.no_grad()
def test_token_log_probabilities_equal_a_direct_teacher_forced_forward(
    wrapper, sample, mask
) -> None:
    images = masked_images(sample.image, mask, random_subsets(mask.n_regions, count=3), True)
    # log-probabilities: a random tiny model's probabilities are ~1/vocabulary, so an attention
    # mistake (PaliGemma's answer attended as prefix) moves them by only ~1e-6, but its
    # log-probabilities by ~3e-3
    ours = wrapper.token_log_probabilities(images, sample)
    full_ids = torch.cat([sample.prompt_ids[0], sample.answer_ids])
    n_prompt = sample.prompt_ids.shape[1]
    for row, image in enumerate(images):
        encoded = teacher_forced_inputs(wrapper.processor, to_pil(image), sample)
        assert torch.equal(encoded["input_ids"][0, : full_ids.numel()], full_ids)
        logits = wrapper.model(**encoded).logits[0]
        positions = n_prompt + sample.target_indices - 1
        direct = torch.log_softmax(logits[positions].float(), -1)
        direct = direct.gather(-1, sample.target_ids[:, None])[:, 0]
        torch.testing.assert_close(ours[row], direct, atol=1e-4, rtol=0)


def test_batched_results_equal_single_results(wrapper, sample, mask) -> None:
    subsets = random_subsets(mask.n_regions, count=3, seed=2)
    images = masked_images(sample.image, mask, subsets, True)
    batch = wrapper.token_probabilities(images, sample)
    single = torch.cat([wrapper.token_probabilities(image[None], sample) for image in images])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-4)
    if hasattr(wrapper.adapter, "region_basis"):
        lazy = wrapper.adapter.region_basis(sample.image, mask.mask).subsets(subsets)
        batch = wrapper.token_probabilities(lazy, sample)
        single = torch.cat([wrapper.token_probabilities(lazy[i : i + 1], sample) for i in range(3)])
        torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("photo", ["wide"], indirect=True)  # one size: the search is the slow part
def test_eagle_exact_order_equals_the_naive_reference(wrapper, sample) -> None:
    mask = FeatureMask.grid(sample.image, 2, 2)
    result = EagleAttribution(wrapper).explain(
        sample.image, feature_mask=mask, additional_forward_args=(sample,)
    )
    assert result.order.tolist() == naive_greedy(wrapper, sample, mask).order


@torch.no_grad()
def test_generate_equals_model_generate_on_processor_inputs(wrapper, sample, mask) -> None:
    images = masked_images(sample.image, mask, random_subsets(mask.n_regions, count=2), True)
    ours = wrapper.generate_ids(images, sample, max_new_tokens=6)
    eos = wrapper.model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) | {wrapper.tokenizer.eos_token_id}
    for row, encoded in enumerate(processor_outputs(wrapper.adapter, images, sample.prompt_text)):
        output = wrapper.model.generate(
            **encoded,
            max_new_tokens=6,
            do_sample=False,
            num_beams=1,
            pad_token_id=wrapper.tokenizer.pad_token_id,
        )
        answer = output[0, sample.prompt_ids.shape[1] :].tolist()
        stops = [i for i, token in enumerate(answer) if token in eos]
        assert ours[row].tolist() == answer[: stops[0] if stops else None]
