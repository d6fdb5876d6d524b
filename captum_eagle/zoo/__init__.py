"""The bundled "shapes" model: a tiny LLaVA trained on generated scenes with known ground truth.

>>> from captum_eagle.zoo import generate_scene, load_default_model, DEFAULT_CAPTION_PROMPT
>>> scene = generate_scene(1_000_000, kind="partial_match")
>>> model, processor = load_default_model()  # doctest: +SKIP
"""

from .model import (
    CHAT_TEMPLATE,
    DEFAULT_CAPTION_PROMPT,
    WEIGHTS_DIR,
    build_processor,
    chat_prompt,
    load_default_model,
    question_prompt,
)
from .scenes import (
    COLOURS,
    SCENE_KINDS,
    SHAPES,
    Question,
    Scene,
    SceneObject,
    generate_scene,
    generate_scenes,
)

__all__ = [
    "CHAT_TEMPLATE",
    "COLOURS",
    "DEFAULT_CAPTION_PROMPT",
    "SCENE_KINDS",
    "SHAPES",
    "WEIGHTS_DIR",
    "Question",
    "Scene",
    "SceneObject",
    "build_processor",
    "chat_prompt",
    "generate_scene",
    "generate_scenes",
    "load_default_model",
    "question_prompt",
]
