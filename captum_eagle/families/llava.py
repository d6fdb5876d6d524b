"""LLaVA-1.5 (``LlavaForConditionalGeneration``): one square CLIP image, mean/std normalised."""

from __future__ import annotations

import torch
from PIL import Image

from captum_eagle.families.base import ModelFamily, register_family


@register_family
class LlavaFamily(ModelFamily):
    """LLaVA-1.5: resize the shortest edge, centre-crop to the CLIP grid (336 × 336 for 7B)."""

    name = "llava"
    model_classes = ("LlavaForConditionalGeneration",)
    processor_class = "LlavaProcessor"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        crop = self.image_processor.crop_size
        return int(crop["height"]), int(crop["width"])

    def resize(
        self, image: Image.Image, resample: Image.Resampling = Image.Resampling.BICUBIC
    ) -> Image.Image:
        out_h, out_w = self.input_size(image.height, image.width)
        if (image.height, image.width) == (out_h, out_w):
            return image
        shortest = self.image_processor.size.get("shortest_edge", min(out_h, out_w))
        scale = shortest / min(image.height, image.width)
        new_w, new_h = (
            max(out_w, round(image.width * scale)),
            max(out_h, round(image.height * scale)),
        )
        image = image.resize((new_w, new_h), resample=resample)
        left, top = (new_w - out_w) // 2, (new_h - out_h) // 2
        return image.crop((left, top, left + out_w, top + out_h))

    def pixel_inputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.normalize(images).to(self.dtype)}
