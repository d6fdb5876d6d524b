"""Model-family adapters, registered by model class (see :class:`ModelFamily`)."""

from captum_eagle.families.base import (
    ModelFamily,
    family_for,
    image_only_processor,
    list_families,
    register_family,
)
from captum_eagle.families.internvl import InternVLFamily
from captum_eagle.families.llava import LlavaFamily
from captum_eagle.families.qwen2_5_vl import Qwen25VLFamily

__all__ = [
    "InternVLFamily",
    "LlavaFamily",
    "ModelFamily",
    "Qwen25VLFamily",
    "family_for",
    "image_only_processor",
    "list_families",
    "register_family",
]
