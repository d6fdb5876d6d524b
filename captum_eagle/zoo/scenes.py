"""Deterministic generator of small synthetic scenes with known ground truth.

Every scene is a 64x64 RGB image of a few coloured shapes on a dark, lightly noisy background.
Blacking out a region (setting it to 0) therefore produces an image that still looks like the
training distribution: the object simply disappears. Each scene carries per-object masks and
boxes, a caption listing the objects from left to right, and yes/no questions about present and
absent objects. For absent objects, the question records the *candidate causes* of a possible
hallucination: the scene objects that share the colour or the shape of the asked object.

Scene kinds
-----------
``plain``
    1-3 separated objects.
``redundant``
    Two objects with the same colour and shape (e.g. two red circles) plus 0-1 other object,
    so the first question ("is there a red circle?") is supported by two independent objects.
``partial_match``
    1-3 objects and a question about an absent object that shares its colour or its shape with
    at least one scene object (the attribute-binding distractor that makes small models answer
    "yes" wrongly).
``crowded``
    4-6 objects, some touching.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from captum_eagle.checks import check_int

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "COLOURS",
    "IMAGE_SIZE",
    "MAX_OBJECTS",
    "SCENE_KINDS",
    "SHAPES",
    "Question",
    "Scene",
    "SceneObject",
    "caption_for",
    "generate_scene",
    "generate_scenes",
    "make_question",
    "partial_match_causes",
    "question_text",
]

IMAGE_SIZE = 64

#: Nominal RGB value of each colour name (a small per-object jitter is added when drawing).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 235),
    "yellow": (230, 215, 40),
    "white": (235, 235, 235),
}

#: Shape names understood by the generator.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")

#: Most objects in a scene (crowded scenes have 4 to this many).
MAX_OBJECTS = 6

#: Scene kinds accepted by :func:`generate_scene`.
SCENE_KINDS: tuple[str, ...] = ("plain", "redundant", "partial_match", "crowded")

_BACKGROUND_LEVEL = 18.0
_BACKGROUND_NOISE = 6.0
_OBJECT_NOISE = 8.0
_COLOUR_JITTER = 15
_MIN_CENTRE_DX = 3  # keeps the left-to-right reading order unambiguous


@dataclass
class SceneObject:
    """One object drawn in a scene.

    Attributes
    ----------
    colour : str
        Colour name (a key of :data:`COLOURS`).
    shape : str
        Shape name (one of :data:`SHAPES`).
    mask : numpy.ndarray
        Boolean array of shape (H, W), True on the object's pixels.
    box : tuple of int
        Tight bounding box ``(x0, y0, x1, y1)`` of the mask, inclusive pixel coordinates.
    """

    colour: str
    shape: str
    mask: np.ndarray
    box: tuple[int, int, int, int]

    @property
    def words(self) -> tuple[str, str]:
        """The two caption words naming the object, ``(colour, shape)``."""
        return (self.colour, self.shape)

    @property
    def centre(self) -> tuple[float, float]:
        """Centre ``(x, y)`` of the bounding box."""
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)


@dataclass
class Question:
    """A yes/no question about one (colour, shape) combination.

    Attributes
    ----------
    text : str
        The question, e.g. ``"is there a red circle?"``.
    answer : str
        ``"yes"`` or ``"no"``.
    colour, shape : str
        The asked object.
    candidate_causes : list of int
        For an absent object (answer "no"): indices into ``Scene.objects`` of the objects sharing
        its colour or its shape — the candidate causes of a hallucinated "yes". Empty for present
        objects and for absent objects without such a distractor.
    evidence : list of int
        For a present object (answer "yes"): indices of the objects matching both colour and
        shape. Empty for absent objects.
    """

    text: str
    answer: str
    colour: str
    shape: str
    candidate_causes: list[int] = field(default_factory=list)
    evidence: list[int] = field(default_factory=list)

    @property
    def has_distractor(self) -> bool:
        """True when the asked object is absent but shares an attribute with a scene object."""
        return self.answer == "no" and len(self.candidate_causes) > 0


@dataclass
class Scene:
    """A generated scene: image, objects with ground truth, caption and questions.

    Attributes
    ----------
    image : numpy.ndarray
        uint8 array of shape (H, W, 3).
    objects : list of SceneObject
        Objects in caption (left-to-right) order.
    caption : str
        E.g. ``"a red circle and a blue square"``.
    questions : list of Question
        Yes/no questions about present and absent objects.
    kind : str
        The scene kind it was generated as.
    seed : int
        The seed it was generated from.
    """

    image: np.ndarray
    objects: list[SceneObject]
    caption: str
    questions: list[Question]
    kind: str
    seed: int

    def pil(self) -> Image.Image:
        """Return the image as a ``PIL.Image.Image`` (RGB)."""
        from PIL import Image

        return Image.fromarray(self.image, mode="RGB")


def question_text(colour: str, shape: str) -> str:
    """Return the question asking whether a ``colour`` ``shape`` is in the image.

    Parameters
    ----------
    colour, shape : str
        The asked object.

    Returns
    -------
    str
        E.g. ``"is there a red circle?"``.
    """
    return f"is there a {colour} {shape}?"


def caption_for(objects: list[SceneObject]) -> str:
    """Return the caption listing ``objects`` in the given order.

    Parameters
    ----------
    objects : list of SceneObject
        Objects, already in reading order.

    Returns
    -------
    str
        ``"a <colour> <shape>"`` phrases joined by ``" and "``.
    """
    return " and ".join(f"a {o.colour} {o.shape}" for o in objects)


# --------------------------------------------------------------------------- drawing


#: Pixel coordinates (y, x) of the image grid, built once (every placement attempt uses them).
_GRID = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)


def _shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = _GRID
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        h = r * 0.85
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if shape == "triangle":
        # Upward-pointing isosceles triangle inscribed in the (2r x 2r) box.
        t = (dy + r) / (2.0 * r)  # 0 at the apex, 1 at the base
        return (t >= 0) & (t <= 1) & (np.abs(dx) <= r * t)
    if shape == "cross":
        w = max(r / 3.0, 1.5)
        return ((np.abs(dx) <= r) & (np.abs(dy) <= w)) | ((np.abs(dy) <= r) & (np.abs(dx) <= w))
    raise ValueError(f"unknown shape {shape!r}")


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    if k <= 0:
        return mask
    out = mask.copy()
    for _ in range(k):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


class _Placer:
    """Rejection sampler placing objects without overlap."""

    def __init__(self, rng: np.random.Generator, gap: int, radius: tuple[float, float]):
        self.rng = rng
        self.gap = gap
        self.radius = radius
        self.occupied = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        self.placed: list[tuple[str, str, np.ndarray]] = []
        self.centres_x: list[float] = []

    def _ok(self, mask: np.ndarray, cx: float) -> bool:
        if mask.sum() < 12:
            return False
        if (_dilate(mask, self.gap) & self.occupied).any():
            return False
        return all(abs(cx - other) >= _MIN_CENTRE_DX for other in self.centres_x)

    def place(self, colour: str, shape: str, touch: bool = False, tries: int = 200) -> bool:
        lo, hi = self.radius
        for _ in range(tries):
            r = float(self.rng.uniform(lo, hi))
            if touch and self.placed:
                # Put the new object right next to a random existing one.
                _, _, other = self.placed[int(self.rng.integers(len(self.placed)))]
                x0, y0, x1, y1 = _box(other)
                side = int(self.rng.integers(4))
                ocx, ocy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
                jitter = float(self.rng.uniform(-3, 3))
                if side == 0:
                    cx, cy = x1 + 1 + r, ocy + jitter
                elif side == 1:
                    cx, cy = x0 - 1 - r, ocy + jitter
                elif side == 2:
                    cx, cy = ocx + jitter, y1 + 1 + r
                else:
                    cx, cy = ocx + jitter, y0 - 1 - r
            else:
                cx = float(self.rng.uniform(r + 1, IMAGE_SIZE - 2 - r))
                cy = float(self.rng.uniform(r + 1, IMAGE_SIZE - 2 - r))
            if not (r <= cx <= IMAGE_SIZE - 1 - r and r <= cy <= IMAGE_SIZE - 1 - r):
                continue
            mask = _shape_mask(shape, cx, cy, r)
            if touch and self.placed:
                # Touching: the masks may be adjacent but must not overlap.
                if (mask & self.occupied).any() or mask.sum() < 12:
                    continue
                if any(abs(cx - other) < _MIN_CENTRE_DX for other in self.centres_x):
                    continue
            elif not self._ok(mask, cx):
                continue
            self.occupied |= mask
            self.placed.append((colour, shape, mask))
            self.centres_x.append(cx)
            return True
        return False


def _render(
    rng: np.random.Generator, placed: list[tuple[str, str, np.ndarray]]
) -> tuple[np.ndarray, list[SceneObject]]:
    base = _BACKGROUND_LEVEL + rng.normal(0.0, _BACKGROUND_NOISE, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    img = base
    objects = []
    for colour, shape, mask in placed:
        rgb = np.array(COLOURS[colour], dtype=np.float64)
        rgb = rgb + rng.integers(-_COLOUR_JITTER, _COLOUR_JITTER + 1, size=3)
        noise = rng.normal(0.0, _OBJECT_NOISE, size=(int(mask.sum()), 3))
        img[mask] = rgb + noise
        objects.append(SceneObject(colour, shape, mask, _box(mask)))
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    order = sorted(range(len(objects)), key=lambda i: (objects[i].centre[0], objects[i].centre[1]))
    return image, [objects[i] for i in order]


# --------------------------------------------------------------------------- questions


def _all_pairs() -> list[tuple[str, str]]:
    return [(c, s) for c in COLOURS for s in SHAPES]


def partial_match_causes(objects: list[SceneObject], colour: str, shape: str) -> list[int]:
    """Indices of the objects sharing the colour or the shape asked about (candidate causes)."""
    return [i for i, o in enumerate(objects) if o.colour == colour or o.shape == shape]


def make_question(objects: list[SceneObject], colour: str, shape: str) -> Question:
    """The yes/no question about a ``colour`` ``shape`` in a scene, with its evidence or causes."""
    evidence = [i for i, o in enumerate(objects) if o.colour == colour and o.shape == shape]
    if evidence:
        return Question(question_text(colour, shape), "yes", colour, shape, [], evidence)
    causes = partial_match_causes(objects, colour, shape)
    return Question(question_text(colour, shape), "no", colour, shape, causes, [])


def _standard_questions(rng: np.random.Generator, objects: list[SceneObject]) -> list[Question]:
    """One question about a present object, one about an absent object without distractor
    (when one exists) and one about an absent object with a distractor (when one exists)."""
    present = {(o.colour, o.shape) for o in objects}
    questions = []
    target = objects[int(rng.integers(len(objects)))]
    questions.append(make_question(objects, target.colour, target.shape))
    absent = [p for p in _all_pairs() if p not in present]
    clean = [p for p in absent if not partial_match_causes(objects, *p)]
    partial = [p for p in absent if partial_match_causes(objects, *p)]
    for pool in (clean, partial):
        if pool:
            colour, shape = pool[int(rng.integers(len(pool)))]
            questions.append(make_question(objects, colour, shape))
    return questions


# --------------------------------------------------------------------------- kinds


def _pick(rng: np.random.Generator, seq) -> str:
    return seq[int(rng.integers(len(seq)))]


def _distinct_pairs(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    pairs = _all_pairs()
    idx = rng.choice(len(pairs), size=n, replace=False)
    return [pairs[int(i)] for i in idx]


def _gen_plain(rng: np.random.Generator) -> list[tuple[str, str, np.ndarray]]:
    n = int(rng.integers(1, 4))
    placer = _Placer(rng, gap=2, radius=(5.0, 10.0))
    for colour, shape in _distinct_pairs(rng, n):
        placer.place(colour, shape)
    return placer.placed


def _gen_redundant(rng: np.random.Generator) -> list[tuple[str, str, np.ndarray]]:
    pairs = _distinct_pairs(rng, 2)
    placer = _Placer(rng, gap=2, radius=(5.0, 9.0))
    colour, shape = pairs[0]
    while len(placer.placed) < 2:
        if not placer.place(colour, shape):
            placer = _Placer(rng, gap=2, radius=(5.0, 9.0))
    if rng.random() < 0.5:
        placer.place(*pairs[1])
    return placer.placed


def _gen_partial(rng: np.random.Generator) -> list[tuple[str, str, np.ndarray]]:
    # Same layout statistics as "plain"; the distractor question is chosen afterwards.
    return _gen_plain(rng)


def _gen_crowded(rng: np.random.Generator) -> list[tuple[str, str, np.ndarray]]:
    n = int(rng.integers(4, MAX_OBJECTS + 1))
    while True:
        placer = _Placer(rng, gap=1, radius=(4.5, 8.0))
        pairs = _distinct_pairs(rng, n)
        for k, (colour, shape) in enumerate(pairs):
            touch = k > 0 and (k == 1 or rng.random() < 0.3)
            if not placer.place(colour, shape, touch=touch):
                placer.place(colour, shape)
        if len(placer.placed) >= 4:
            return placer.placed


_GENERATORS: dict[str, Callable[[np.random.Generator], list]] = {
    "plain": _gen_plain,
    "redundant": _gen_redundant,
    "partial_match": _gen_partial,
    "crowded": _gen_crowded,
}


def generate_scene(seed: int, kind: str = "plain") -> Scene:
    """Generate one scene deterministically from ``seed``.

    Parameters
    ----------
    seed : int
        Seed of the ``numpy.random.Generator`` drawing the scene. The same ``(seed, kind)`` always
        gives the same scene.
    kind : str, default "plain"
        One of :data:`SCENE_KINDS`.

    Returns
    -------
    Scene
        The image, its objects (left-to-right), caption and questions. For ``"redundant"`` the first
        question asks about the duplicated object (two pieces of evidence); for ``"partial_match"``
        the first question asks about an absent object with non-empty ``candidate_causes``.

    Raises
    ------
    TypeError
        If ``seed`` is not an int.
    ValueError
        If ``seed`` is negative or ``kind`` is not a known scene kind.
    """
    check_int("seed", seed, least=0)
    if not isinstance(kind, str) or kind not in _GENERATORS:
        raise ValueError(f"unknown scene kind {kind!r}; valid kinds: {', '.join(SCENE_KINDS)}")
    rng = np.random.default_rng([int(seed), SCENE_KINDS.index(kind)])
    placed = _GENERATORS[kind](rng)
    image, objects = _render(rng, placed)
    questions = _standard_questions(rng, objects)
    if kind == "redundant":
        counts: dict[tuple[str, str], int] = {}
        for o in objects:
            counts[(o.colour, o.shape)] = counts.get((o.colour, o.shape), 0) + 1
        dup = next(p for p, c in counts.items() if c >= 2)
        questions = [make_question(objects, *dup)] + [q for q in questions if q.answer == "no"]
    elif kind == "partial_match":
        partial = [q for q in questions if q.has_distractor]
        questions = partial + [q for q in questions if not q.has_distractor]
    return Scene(image, objects, caption_for(objects), questions, kind, int(seed))


def generate_scenes(n: int, seed: int = 0, kind: str = "plain") -> list[Scene]:
    """Generate ``n`` scenes from consecutive seeds ``seed, seed + 1, ...``.

    Parameters
    ----------
    n : int
        Number of scenes.
    seed : int, default 0
        Seed of the first scene.
    kind : str, default "plain"
        One of :data:`SCENE_KINDS`.

    Returns
    -------
    list of Scene
    """
    check_int("n", n, least=0)
    check_int("seed", seed, least=0)
    return [generate_scene(seed + i, kind) for i in range(n)]
