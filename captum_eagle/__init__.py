"""captum-eagle: Eagle attribution for multimodal LLMs (where they attend, what they rely on).

A Captum plugin: :class:`MLLMForwardWrapper` turns a Hugging Face image-text-to-text model into a
forward function that Captum's methods and :class:`EagleAttribution` perturb alike, and
:class:`FeatureMask` builds SLICO superpixel masks in Captum's ``feature_mask`` format.
"""

from captum_eagle.attribution import EagleAttribution, EagleResult
from captum_eagle.baselines import list_methods
from captum_eagle.families import ModelFamily, list_families, register_family
from captum_eagle.masks import FeatureMask
from captum_eagle.registry import UnknownNameError
from captum_eagle.search import list_searches, register_search
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample

__all__ = [
    "EagleAttribution",
    "EagleResult",
    "FeatureMask",
    "MLLMForwardWrapper",
    "ModelFamily",
    "PreparedSample",
    "UnknownNameError",
    "list_families",
    "list_methods",
    "list_searches",
    "register_family",
    "register_search",
]
