"""The adapter contract between the wrapper and one model family, and the family registry."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, cast

import torch
import transformers
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from captum_eagle.registry import Registry

if TYPE_CHECKING:
    from captum_eagle.families.generic import GenericFamily

FAMILIES: Registry[type[ModelFamily]] = Registry("model family")


class ModelFamily:
    r"""How one family of image-text-to-text models lays out pixels and prompts.

    A family implements three small things; the wrapper does everything else:

    - :meth:`input_size`: the model's input resolution for an image of a given size;
    - :meth:`resize`: bring a PIL image to that resolution exactly as the processor would;
    - :meth:`pixel_inputs`: turn images ``(B, 3, H, W)`` in ``[0, 1]`` into the model's pixel
      keyword arguments *in torch*, so that the whole score stays differentiable.

    Subclasses register themselves with :func:`register_family` under a short ``name``, list the
    model class names they serve in ``model_classes`` and name the transformers processor class
    (``processor_class``) used to load a checkpoint's processor.
    """

    name: ClassVar[str] = ""
    model_classes: ClassVar[tuple[str, ...]] = ()
    processor_class: ClassVar[str] = ""

    def __init__(self, model: PreTrainedModel, processor: ProcessorMixin) -> None:
        if getattr(processor, "image_processor", None) is None:
            raise TypeError(
                f"The processor {type(processor).__name__} has no image processor, so it cannot "
                "turn images into model inputs. Pass the model's multimodal processor "
                "(AutoProcessor.from_pretrained(<model id>)), not its tokenizer."
            )
        self.model = model
        self.processor = processor
        self.image_processor = processor.image_processor
        # per-token input -> the value the processor gives answer tokens (see processor_inputs)
        self.answer_token_types: dict[str, int] = {}

    # -- what a family implements -------------------------------------------------------------
    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Return the ``(height, width)`` the model takes for an image of ``height × width``."""
        raise NotImplementedError

    def resize(
        self, image: Image.Image, resample: Image.Resampling = Image.Resampling.BICUBIC
    ) -> Image.Image:
        """Resize (and crop, if the processor crops) a PIL image to the model's input grid.

        ``resample=NEAREST`` maps label images (region ids) with the same geometry.
        """
        height, width = self.input_size(image.height, image.width)
        if (image.height, image.width) == (height, width):
            return image
        return image.resize((width, height), resample=resample)

    def pixel_inputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map images ``(B, 3, H, W)`` in ``[0, 1]`` to the model's pixel keyword arguments."""
        raise NotImplementedError

    # -- shared helpers --------------------------------------------------------------------------
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Apply the processor's mean/std normalisation in torch (differentiable)."""
        mean = torch.as_tensor(self.image_processor.image_mean, dtype=images.dtype)
        std = torch.as_tensor(self.image_processor.image_std, dtype=images.dtype)
        mean = mean.to(images.device).view(1, -1, 1, 1)
        std = std.to(images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def processor_inputs(self, image: Image.Image, text: str) -> dict[str, Any]:
        """Run the family's own processor on an already resized image (used to tokenise).

        Training ``labels`` (PaliGemma returns them) are dropped: they are no model input here.
        """
        encoded = dict(self.processor(images=[image], text=[text], return_tensors="pt"))
        encoded.pop("labels", None)
        if "suffix" in inspect.signature(type(self.processor).__call__).parameters:
            # PaliGemma's prefix-LM: the processor marks a suffix (the answer) in token_type_ids.
            # An empty suffix is one end-of-sequence token, marked as any answer token is.
            probe = self.processor(images=[image], text=[text], suffix=[""], return_tensors="pt")
            self.answer_token_types = {
                key: int(value[0, -1])
                for key, value in probe.items()
                if key not in ("input_ids", "attention_mask", "labels")
                and value.shape == probe["input_ids"].shape
            }
        return encoded

    def answer_token_inputs(
        self, token_inputs: dict[str, torch.Tensor], length: int
    ) -> dict[str, torch.Tensor]:
        r"""The per-token inputs (``token_type_ids``, ...) of ``length`` answer tokens.

        What the processor gives an answer: PaliGemma's marks the answer (its ``suffix=``) with
        ``token_type_ids`` 1, so it is attended causally after the bidirectional prefix; every
        other family gives answer tokens 0 (text, not image).

        Args:
            token_inputs (dict): the prompt's per-token inputs, ``(1, L)`` each
                (``sample.token_inputs``).
            length (int): number of answer tokens.

        Returns:
            dict: per key, a ``(length,)`` tensor of the key's dtype.
        """
        return {
            key: value.new_full((length,), self.answer_token_types.get(key, 0))
            for key, value in token_inputs.items()
        }


def register_family(cls: type[ModelFamily]) -> type[ModelFamily]:
    """Class decorator: make a :class:`ModelFamily` available under ``cls.name``."""
    if not cls.name or not cls.model_classes or not cls.processor_class:
        raise TypeError(f"{cls.__name__} must set `name`, `model_classes` and `processor_class`.")
    FAMILIES.add(cls.name, cls, replace=True)
    return cls


def list_families() -> dict[str, tuple[str, ...]]:
    """Return ``{family name: model class names}`` of every registered family."""
    return {name: cls.model_classes for name, cls in sorted(FAMILIES.items())}


def family_for(model: PreTrainedModel, name: str | None = None) -> type[ModelFamily]:
    """Find the family adapter for ``model`` (or by explicit ``name``).

    A model class with a hand-written adapter gets it; any other image-text-to-text model gets the
    processor-agnostic ``"generic"`` path. A model that cannot take images is a ``TypeError``.
    """
    if name is not None:
        return FAMILIES.get(name)
    class_names = [klass.__name__ for klass in type(model).__mro__]
    for _, cls in FAMILIES.items():
        if any(class_name in cls.model_classes for class_name in class_names):
            return cls
    generic = cast("type[GenericFamily]", FAMILIES.get("generic"))
    generic.check_model(model)
    return generic


def image_only_processor(
    class_name: str, image_processor: Any, tokenizer: Any, **kwargs: Any
) -> ProcessorMixin:
    """Build a processor of ``class_name`` without a video processor.

    Qwen2.5-VL and InternVL processors normally require a torchvision-backed video processor; for
    still images none is needed, so we build a subclass whose only sub-processors are the image
    processor and the tokenizer. (Such a processor cannot be ``save_pretrained``-ed whole: save its
    tokenizer and image processor separately.)
    """
    processor_class = image_only_processor_class(getattr(transformers, class_name))
    return processor_class(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=None, **kwargs
    )


def processor_class_for(model: PreTrainedModel, family: type[ModelFamily]) -> type[ProcessorMixin]:
    r"""The image-only processor class that loads ``model``'s processor from a checkpoint.

    An adapter family names its processor class; the generic path takes the class transformers
    maps the model type to (``AutoProcessor``'s table). Either way the video processor is
    removed (:func:`image_only_processor`), so no torchvision is needed.

    Raises:
        ValueError: transformers knows no processor class for the model type.
    """
    name = family.processor_class
    if name == "AutoProcessor":
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

        model_type = str(getattr(model.config, "model_type", ""))
        mapped = PROCESSOR_MAPPING_NAMES.get(model_type)
        if mapped is None or not hasattr(transformers, mapped):
            raise ValueError(
                f"transformers has no processor class for the model type {model_type!r}; load "
                "the processor yourself and pass it: MLLMForwardWrapper(model, processor)."
            )
        name = mapped
    processor_class: type[ProcessorMixin] = image_only_processor_class(getattr(transformers, name))
    return processor_class


_IMAGE_ONLY_CLASSES: dict[type[ProcessorMixin], type[ProcessorMixin]] = {}


class _NoVideoProcessor:
    """Stands in for the video processor: some chat templates (SmolVLM) read its defaults."""

    num_frames = None
    fps = None


def image_only_processor_class(base: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """The subclass of processor class ``base`` without a video processor (cached per class).

    Used by :func:`image_only_processor` and to ``from_pretrained`` a checkpoint's processor
    without torchvision (see there).
    """
    if base not in _IMAGE_ONLY_CLASSES:

        def get_attributes(cls: type[ProcessorMixin]) -> list[str]:
            return [name for name in base.get_attributes() if name != "video_processor"]

        _IMAGE_ONLY_CLASSES[base] = type(
            f"ImageOnly{base.__name__}",
            (base,),
            {
                "get_attributes": classmethod(get_attributes),
                "video_processor": _NoVideoProcessor(),
                "__module__": __name__,
            },
        )
    return _IMAGE_ONLY_CLASSES[base]


def check_processor_matches(
    model: PreTrainedModel, processor: ProcessorMixin, family: type[ModelFamily] | None = None
) -> None:
    r"""Raise a ``ValueError`` if ``processor`` does not belong to ``model``.

    A processor of another checkpoint or family fails deep inside the first forward (an index
    error in torch, a missing attribute, a ``None`` subscripted); this check runs when the wrapper
    is built and says what disagrees. It compares the processor class with the family's
    (when ``family`` is given), the image token id with the model config's, the patch, merge and
    image sizes with the vision config's, and the tokenizer's vocabulary with the model's
    embedding table.

    Args:
        model (PreTrainedModel): the image-text-to-text model.
        processor (ProcessorMixin): the processor meant for it.
        family (type[ModelFamily], optional): the family adapter chosen for ``model``.
    """
    problems = []
    if family is not None and family.processor_class != "AutoProcessor":  # generic: any class
        names = [klass.__name__ for klass in type(processor).__mro__]
        if family.processor_class not in names:
            problems.append(
                f"the {family.name!r} family expects a {family.processor_class}, not a "
                f"{type(processor).__name__}"
            )
    config = model.config
    ours = _image_token_ids(processor)
    theirs = getattr(config, "image_token_id", getattr(config, "image_token_index", None))
    if ours and theirs not in ours:
        problems.append(
            f"the processor's image token {getattr(processor, 'image_token', None)!r} has id "
            f"{' or '.join(map(str, sorted(ours)))} but the model config's image_token_id is "
            f"{theirs}"
        )
    problems += _vision_mismatches(processor, getattr(config, "vision_config", None))
    tokenizer = getattr(processor, "tokenizer", None)
    embeddings = model.get_input_embeddings()
    n_embedded = getattr(embeddings, "num_embeddings", None)
    if tokenizer is not None and n_embedded is not None and len(tokenizer) > n_embedded:
        problems.append(
            f"the tokenizer has {len(tokenizer)} tokens but the model embeds only {n_embedded}"
        )
    if problems:
        raise ValueError(
            f"The processor ({type(processor).__name__}) does not match the model "
            f"({type(model).__name__}): {'; '.join(problems)}. Load both from the same checkpoint, "
            "e.g. MLLMForwardWrapper.from_pretrained(model_id)."
        )


def _image_token_ids(processor: ProcessorMixin) -> set[int]:
    """Ids the processor may mean by "image token".

    Families differ: Gemma 3's processor calls the begin-of-image token its ``image_token_id``
    while the model config names the soft token its tokenizer calls ``image_token_id``.
    """
    ids = {getattr(processor, "image_token_id", None)}
    tokenizer = getattr(processor, "tokenizer", None)
    ids.add(getattr(tokenizer, "image_token_id", None))
    token = getattr(processor, "image_token", None)
    if token is not None and tokenizer is not None:
        ids.add(tokenizer.convert_tokens_to_ids(token))
    return {i for i in ids if isinstance(i, int)}


def _vision_mismatches(processor: ProcessorMixin, vision: Any) -> list[str]:
    """Patch / merge / image sizes of the processor that disagree with the vision config."""
    if vision is None:
        return []
    # The processor-level patch size may include a downsampling factor (Aya Vision): compare
    # the image processor's, which is the vision tower's own.
    image_processor = processor.image_processor
    pairs = [
        ("patch size", getattr(image_processor, "patch_size", None), "patch_size"),
        ("merge size", getattr(image_processor, "merge_size", None), "spatial_merge_size"),
        (
            "temporal patch size",
            getattr(image_processor, "temporal_patch_size", None),
            "temporal_patch_size",
        ),
    ]
    size = getattr(image_processor, "crop_size", None) or getattr(image_processor, "size", None)
    size = dict(size) if size is not None else {}
    if size.get("height") is not None:
        pairs.append(("image size", (size["height"], size["width"]), "image_size"))
    problems = []
    for what, ours, key in pairs:
        theirs = getattr(vision, key, None)
        if ours is None or theirs is None:
            continue
        if _as_pair(ours) != _as_pair(theirs):
            problems.append(
                f"the processor's {what} is {ours} but the vision config's {key} is {theirs}"
            )
    return problems


def _as_pair(value: Any) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, dict):
        return (int(value["height"]), int(value["width"]))
    return tuple(int(v) for v in value)
