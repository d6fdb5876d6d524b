"""InternVL3.5 "-HF" checkpoints (``InternVLForConditionalGeneration``): one 448-px tile."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from captum_eagle.families.base import ModelFamily, register_family


@register_family
class InternVLFamily(ModelFamily):
    """InternVL: a single tile (no dynamic cropping) so the image-token count is fixed."""

    name = "internvl"
    model_classes = ("InternVLForConditionalGeneration",)
    processor_class = "InternVLProcessor"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        size = self.image_processor.size
        return int(size["height"]), int(size["width"])

    def pixel_inputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.normalize(images).to(self.dtype)}

    def processor_inputs(self, image: Image.Image, text: str) -> dict[str, Any]:
        return dict(
            self.processor(images=[image], text=[text], crop_to_patches=False, return_tensors="pt")
        )
