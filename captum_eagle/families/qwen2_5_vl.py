"""Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``): flat 14-px patches + ``image_grid_thw``."""

from __future__ import annotations

import torch
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from captum_eagle.families.base import ModelFamily, register_family


@register_family
class Qwen25VLFamily(ModelFamily):
    """Qwen2.5-VL: sides are multiples of ``patch × merge`` (28); each frame is repeated in time."""

    name = "qwen2_5_vl"
    model_classes = ("Qwen2_5_VLForConditionalGeneration",)
    processor_class = "Qwen2_5_VLProcessor"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        ip = self.image_processor
        size: tuple[int, int] = smart_resize(
            height,
            width,
            factor=ip.patch_size * ip.merge_size,
            min_pixels=ip.size["shortest_edge"],
            max_pixels=ip.size["longest_edge"],
        )
        return size

    def pixel_inputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        ip = self.image_processor
        patch, merge, temporal = ip.patch_size, ip.merge_size, ip.temporal_patch_size
        batch, channels, height, width = images.shape
        grid_h, grid_w = height // patch, width // patch
        patches = self.normalize(images).reshape(
            batch, channels, grid_h // merge, merge, patch, grid_w // merge, merge, patch
        )
        # -> (B, gh/m, gw/m, m, m, C, p, p): merge windows outermost, as the processor orders them
        patches = patches.permute(0, 2, 5, 3, 6, 1, 4, 7).unsqueeze(6)
        patches = patches.expand(*patches.shape[:6], temporal, patch, patch)
        flat = patches.reshape(batch * grid_h * grid_w, channels * temporal * patch * patch)
        grid = torch.tensor([[1, grid_h, grid_w]], device=images.device).repeat(batch, 1)
        return {"pixel_values": flat.to(self.dtype), "image_grid_thw": grid}
