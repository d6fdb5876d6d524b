"""Model-family adapters, registered by model class (see :class:`ModelFamily`).

Models without a hand-written adapter take the processor-agnostic path (:class:`GenericFamily`).
"""

from captum_eagle.families.base import (
    ModelFamily,
    family_for,
    image_only_processor,
    list_families,
    register_family,
)
from captum_eagle.families.generic import GenericFamily, RegionBasis, RegionSubsets
from captum_eagle.families.internvl import InternVLFamily
from captum_eagle.families.llava import LlavaFamily
from captum_eagle.families.qwen2_5_vl import Qwen25VLFamily

__all__ = [
    "GenericFamily",
    "InternVLFamily",
    "LlavaFamily",
    "ModelFamily",
    "Qwen25VLFamily",
    "RegionBasis",
    "RegionSubsets",
    "family_for",
    "image_only_processor",
    "list_families",
    "register_family",
]
