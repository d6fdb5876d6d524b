"""Tests of the bundled shapes model: scene generator, offline loading and model quality."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from captum_eagle.zoo import (
    DEFAULT_CAPTION_PROMPT,
    SCENE_KINDS,
    WEIGHTS_DIR,
    Question,
    Scene,
    SceneObject,
    chat_prompt,
    generate_scene,
    generate_scenes,
    load_default_model,
    question_prompt,
)
from captum_eagle.zoo.evaluate import (
    EVAL_SEED,
    caption_metrics,
    encode_with_answers,
    question_metrics,
)
from captum_eagle.zoo.model import build_model, build_processor

# --------------------------------------------------------------------------- generator


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_generator_is_deterministic(kind: str) -> None:
    a, b = generate_scene(123, kind), generate_scene(123, kind)
    assert np.array_equal(a.image, b.image)
    assert a.caption == b.caption
    assert [q.text for q in a.questions] == [q.text for q in b.questions]
    c = generate_scene(124, kind)
    assert not np.array_equal(a.image, c.image)


# Digest of the first 20 evaluation scenes of each kind (images and captions). The bundled weights
# were trained and evaluated on these scenes: a change to the generator's output (even a faster
# rewrite that draws differently) must fail here, not silently change the data.
_SCENE_DIGESTS = {
    "plain": "4c777d00d3e5368f",
    "redundant": "92e54d4fc32d25a8",
    "partial_match": "23b9e1c4a7c97555",
    "crowded": "76a96bebb9720659",
}


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_generator_output_is_unchanged(kind: str) -> None:
    digest = hashlib.sha256()
    for scene in generate_scenes(20, seed=EVAL_SEED, kind=kind):
        digest.update(scene.image.tobytes())
        digest.update(scene.caption.encode())
    assert digest.hexdigest()[:16] == _SCENE_DIGESTS[kind]


def test_generate_scenes_uses_consecutive_seeds() -> None:
    scenes = generate_scenes(3, seed=10, kind="crowded")
    assert len(scenes) == 3
    for i, s in enumerate(scenes):
        assert s.seed == 10 + i
        assert np.array_equal(s.image, generate_scene(10 + i, "crowded").image)


def test_unknown_kind_lists_valid_kinds() -> None:
    with pytest.raises(ValueError, match=r"plain.*redundant.*partial_match.*crowded"):
        generate_scene(0, kind="nope")


def _check_ground_truth(scene: Scene) -> None:
    img = scene.image
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    union = np.zeros(img.shape[:2], dtype=bool)
    for o in scene.objects:
        assert isinstance(o, SceneObject)
        assert o.mask.shape == img.shape[:2] and o.mask.dtype == bool
        ys, xs = np.nonzero(o.mask)
        assert o.box == (xs.min(), ys.min(), xs.max(), ys.max())
        assert not (union & o.mask).any(), "object masks overlap"
        union |= o.mask
        # Objects are bright, the background is dark.
        assert img[o.mask].max(axis=1).mean() > 150
    assert img[~union].max(axis=1).mean() < 45
    # Caption lists the objects left to right.
    assert scene.caption == " and ".join(f"a {o.colour} {o.shape}" for o in scene.objects)
    xs = [o.centre[0] for o in scene.objects]
    assert xs == sorted(xs)
    for q in scene.questions:
        assert isinstance(q, Question)
        present = any(o.colour == q.colour and o.shape == q.shape for o in scene.objects)
        assert q.answer == ("yes" if present else "no")
        assert q.text == f"is there a {q.colour} {q.shape}?"
        if q.answer == "no":
            expected = [
                i for i, o in enumerate(scene.objects) if o.colour == q.colour or o.shape == q.shape
            ]
            assert q.candidate_causes == expected


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_masks_boxes_caption_and_questions_are_consistent(kind: str) -> None:
    for scene in generate_scenes(30, seed=500, kind=kind):
        _check_ground_truth(scene)


def test_plain_scenes_have_one_to_three_separated_objects() -> None:
    counts = set()
    for scene in generate_scenes(60, seed=0, kind="plain"):
        counts.add(len(scene.objects))
        for i, a in enumerate(scene.objects):
            for b in scene.objects[i + 1 :]:
                # Masks are separated by background (no touching).
                ys, xs = np.nonzero(a.mask)
                yb, xb = np.nonzero(b.mask)
                d = np.abs(ys[:, None] - yb[None]) + np.abs(xs[:, None] - xb[None])
                assert d.min() > 1
    assert counts == {1, 2, 3}


def test_crowded_scenes_have_four_to_six_objects_some_touching() -> None:
    touching = 0
    scenes = generate_scenes(30, seed=0, kind="crowded")
    for scene in scenes:
        assert 4 <= len(scene.objects) <= 6
        gaps = []
        for i, a in enumerate(scene.objects):
            for b in scene.objects[i + 1 :]:
                ys, xs = np.nonzero(a.mask)
                yb, xb = np.nonzero(b.mask)
                cheb = np.maximum(np.abs(ys[:, None] - yb[None]), np.abs(xs[:, None] - xb[None]))
                gaps.append(cheb.min())
        touching += min(gaps) <= 2
    assert touching >= len(scenes) // 2


def test_partial_match_scenes_have_a_distractor_question() -> None:
    for scene in generate_scenes(40, seed=0, kind="partial_match"):
        q = scene.questions[0]
        assert q.answer == "no"
        assert q.has_distractor and q.candidate_causes
        for i in q.candidate_causes:
            o = scene.objects[i]
            assert o.colour == q.colour or o.shape == q.shape
        assert not any(o.colour == q.colour and o.shape == q.shape for o in scene.objects)


def test_redundant_scenes_have_two_objects_with_the_asked_attributes() -> None:
    for scene in generate_scenes(40, seed=0, kind="redundant"):
        q = scene.questions[0]
        assert q.answer == "yes"
        assert len(q.evidence) >= 2
        for i in q.evidence:
            assert (scene.objects[i].colour, scene.objects[i].shape) == (q.colour, q.shape)


# --------------------------------------------------------------------------- model

pytestmark_model = pytest.mark.skipif(
    not (WEIGHTS_DIR / "model.safetensors").is_file(), reason="bundled weights not trained yet"
)


@pytest.fixture(scope="module")
def shapes():
    torch.set_num_threads(2)
    return load_default_model()


def test_missing_weights_error_says_how_to_train(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"captum_eagle\.zoo\.train"):
        load_default_model(path=tmp_path)


@pytestmark_model
def test_load_offline_and_processor_layout(shapes, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, processor = load_default_model()
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n_params < 2e6
    text = chat_prompt(processor, DEFAULT_CAPTION_PROMPT)
    assert text.count("<image>") == 1
    assert text.endswith("answer:")
    scene = generate_scene(EVAL_SEED)
    inputs = processor(images=scene.pil(), text=text, return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 64
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape[:2] == inputs["input_ids"].shape
    tok = processor.tokenizer
    ids = tok(scene.caption, add_special_tokens=False).input_ids
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, clean_up_tokenization_spaces=False) == scene.caption
    assert question_prompt(scene.questions[0]) == scene.questions[0].text


def _mixed_scenes(n_per_kind: int, offset: int = 0) -> list[Scene]:
    return [
        generate_scene(EVAL_SEED + offset + i, kind)
        for kind in SCENE_KINDS
        for i in range(n_per_kind)
    ]


# Measured for the bundled weights (captum_eagle/zoo/weights/training_info.json) on the training
# script's 200 evaluation scenes per kind: exact captions 95% / 89% / 96.5% / 49.5% (plain /
# redundant / partial-match / crowded), token accuracy 96.3-99.6%; yes/no 99.7-100% without a
# distractor, 43-70% false "yes" with one. On this test's 160 mixed scenes: 80.6% exact, 97.5%
# token accuracy (the caption threshold holds with little margin: crowded scenes pull it down).
@pytestmark_model
def test_caption_quality(shapes) -> None:
    model, processor = shapes
    metrics = caption_metrics(model, processor, _mixed_scenes(40))
    assert metrics.exact_match >= 0.80, metrics
    assert metrics.token_accuracy >= 0.95, metrics


@pytestmark_model
def test_yes_no_quality_and_partial_match_hallucinations(shapes) -> None:
    model, processor = shapes
    metrics = question_metrics(model, processor, _mixed_scenes(40, offset=1000))
    assert metrics.n_clean >= 150 and metrics.n_partial >= 100
    assert metrics.accuracy_clean >= 0.95, metrics
    assert metrics.false_yes_partial >= 0.30, metrics


@pytestmark_model
@torch.no_grad()
def test_blacking_out_an_object_lowers_its_words_more_than_background(shapes) -> None:
    model, processor = shapes
    rng = np.random.default_rng(0)
    scenes = generate_scenes(60, seed=EVAL_SEED + 2000, kind="plain")
    images, captions, targets = [], [], []
    for scene in scenes:
        k = int(rng.integers(len(scene.objects)))
        obj = scene.objects[k]
        union = np.zeros(scene.image.shape[:2], dtype=bool)
        for o in scene.objects:
            union |= o.mask
        # Equal-area background patch: the object's mask shifted to a spot free of objects.
        ys, xs = np.nonzero(obj.mask)
        bg = None
        for _ in range(500):
            dy = int(rng.integers(-ys.min(), 64 - ys.max()))
            dx = int(rng.integers(-xs.min(), 64 - xs.max()))
            cand = np.zeros_like(obj.mask)
            cand[ys + dy, xs + dx] = True
            if not (cand & union).any():
                bg = cand
                break
        if bg is None:
            continue
        for mask in (None, obj.mask, bg):
            img = scene.image.copy()
            if mask is not None:
                img[mask] = 0
            images.append(img)
            captions.append(scene.caption)
        # Caption token positions of this object's colour and shape words.
        start = sum(3 + 1 for _ in range(k))  # "a colour shape" + "and" per previous object
        targets.append([start + 1, start + 2])
    from PIL import Image

    pil = [Image.fromarray(im) for im in images]
    enc = encode_with_answers(processor, pil, [DEFAULT_CAPTION_PROMPT] * len(pil), captions)
    labels = enc.pop("labels")
    starts = enc.pop("answer_start")
    logp = model(**enc).logits.float().log_softmax(-1)
    drops_obj, drops_bg = [], []
    for j, tgt in enumerate(targets):
        vals = []
        for r in range(3):
            row = 3 * j + r
            pos = [int(starts[row]) + t for t in tgt]
            lp = sum(float(logp[row, p - 1, labels[row, p]]) for p in pos)
            vals.append(np.exp(lp))
        drops_obj.append(vals[0] - vals[1])
        drops_bg.append(vals[0] - vals[2])
    assert len(targets) >= 50
    assert np.mean(drops_obj) > np.mean(drops_bg) + 0.1


# --------------------------------------------------------------------------- training script


def test_training_is_deterministic_and_saves_a_loadable_folder(tmp_path) -> None:
    from safetensors.torch import load_file

    from captum_eagle import MLLMForwardWrapper
    from captum_eagle.zoo.train import main

    for name, rank in (("a", ["--aux-rank"]), ("b", ["--aux-rank"]), ("c", [])):
        main(
            [
                *rank,
                "--out",
                str(tmp_path / name),
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--eval-scenes",
                "0",
                "--threads",
                "1",
                "--vision-steps",
                "2",
                "--aux-weight",
                "0.5",
            ]
        )
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The caption-position row of the auxiliary loss changes what the vision tower learns.
    c = load_file(tmp_path / "c" / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)
    fresh = build_model(build_processor().tokenizer).state_dict()
    trained = load_default_model(path=tmp_path / "a")[0].state_dict()
    assert trained.keys() == fresh.keys()
    changed = [k for k in fresh if not torch.equal(fresh[k].half().float(), trained[k])]
    assert changed, "two optimisation steps changed no weight"
    info = json.loads((tmp_path / "a" / "training_info.json").read_text())
    assert info["steps"] == 2 and info["batch_size"] == 4
    assert info["vision_steps"] == 2 and info["aux_weight"] == 0.5 and info["aux_rank"] is True
    assert json.loads((tmp_path / "c" / "training_info.json").read_text())["aux_rank"] is False
    # The folder also loads as a plain Hugging Face checkpoint (processor_config.json saved).
    wrapper = MLLMForwardWrapper.from_pretrained(str(tmp_path / "a"))
    assert wrapper.processor.patch_size == 8
    sample = wrapper.prepare(generate_scene(EVAL_SEED).pil(), DEFAULT_CAPTION_PROMPT, "a red")
    assert wrapper.token_probabilities(sample.image, sample).shape == (1, 2)


def test_training_needs_steps_or_minutes(tmp_path) -> None:
    from captum_eagle.zoo.train import train

    with pytest.raises(ValueError, match="steps or minutes"):
        train(tmp_path, steps=None, minutes=None)
    with pytest.raises(ValueError, match="vision_steps and aux_weight"):
        train(tmp_path, steps=1, vision_steps=-1)
    with pytest.raises(ValueError, match="vision_steps and aux_weight"):
        train(tmp_path, steps=1, aux_weight=-0.5)


def test_patch_labels_name_the_object_under_each_patch() -> None:
    from captum_eagle.zoo.scenes import COLOURS, SHAPES, caption_for
    from captum_eagle.zoo.train import patch_labels

    scene = generate_scene(EVAL_SEED, "crowded")
    labels = patch_labels(scene)
    assert labels.shape == (3, 64) and labels.dtype == np.int64
    grid = labels.reshape(3, 8, 8)
    checked = 0
    for rank, obj in enumerate(scene.objects):
        ys, xs = np.nonzero(obj.mask)
        y, x = int(np.median(ys)), int(np.median(xs))
        if not obj.mask.reshape(8, 8, 8, 8)[y // 8, :, x // 8, :].sum() >= 32:
            continue  # the object covers under half of that patch: another one may dominate it
        assert grid[0, y // 8, x // 8] == list(COLOURS).index(obj.colour) + 1
        assert grid[1, y // 8, x // 8] == list(SHAPES).index(obj.shape) + 1
        assert grid[2, y // 8, x // 8] == rank + 1
        checked += 1
    assert checked >= 2
    covered = np.zeros((8, 8), dtype=int)
    for obj in scene.objects:
        covered = np.maximum(covered, obj.mask.reshape(8, 8, 8, 8).sum(axis=(1, 3)))
    # Background exactly where no object covers at least 6 pixels; colour and shape agree on it.
    np.testing.assert_array_equal(grid[0] == 0, covered < 6)
    np.testing.assert_array_equal(grid[0] == 0, grid[1] == 0)
    np.testing.assert_array_equal(grid[0] == 0, grid[2] == 0)
    # Ranks are positions in the caption, which lists the objects left to right.
    xs = [o.centre[0] for o in scene.objects]
    assert len(xs) >= 4 and xs == sorted(xs)
    assert scene.caption == caption_for(scene.objects)
    assert set(np.unique(grid[2])) <= set(range(len(xs) + 1))


def test_patch_loss_is_low_for_correct_logits_and_high_for_wrong_ones() -> None:
    from captum_eagle.zoo.train import PATCH_CLASSES, patch_labels, patch_loss

    targets = torch.as_tensor(
        np.stack([patch_labels(generate_scene(EVAL_SEED + i)) for i in range(3)])
    )
    assert targets.shape == (3, 3, 64)
    right = torch.cat(
        [torch.nn.functional.one_hot(targets[:, row], n) for row, n in enumerate(PATCH_CLASSES)],
        dim=-1,
    ).float()
    assert PATCH_CLASSES == (6, 5, 7)
    assert patch_loss(20 * right, targets).item() < 1e-6
    assert patch_loss(-20 * right, targets).item() > 20
    # Colour and shape only: the first two rows, and the rank logits must then be absent.
    two = right[..., : sum(PATCH_CLASSES[:2])]
    assert patch_loss(20 * two, targets, PATCH_CLASSES[:2]).item() < 1e-6
    # Right colours and shapes, wrong ranks: only the third row costs.
    wrong_rank = 20 * torch.cat([two, 1 - right[..., sum(PATCH_CLASSES[:2]) :]], dim=-1)
    assert patch_loss(wrong_rank, targets).item() > 10
    with pytest.raises(ValueError, match="expected sum"):
        patch_loss(right, targets, PATCH_CLASSES[:2])


# -- bad inputs (issue 20): a seed is an int >= 0, a kind one of SCENE_KINDS --------------------
@pytest.mark.parametrize(
    "seed, error",
    [(1.5, TypeError), ("1", TypeError), (True, TypeError), (None, TypeError), (-1, ValueError)],
)
def test_generate_scene_refuses_seeds_that_are_no_natural_number(seed, error) -> None:
    # before: 1.5 and "1" gave the scene of seed 1 and True that of seed 1, silently
    with pytest.raises(error, match="seed must be"):
        generate_scene(seed)
    with pytest.raises(error, match="seed must be"):
        generate_scenes(2, seed=seed)


@pytest.mark.parametrize("kind", [None, ["plain"], "Plain", ""])
def test_generate_scene_refuses_unknown_kinds_listing_the_valid_ones(kind) -> None:
    with pytest.raises(ValueError, match="valid kinds: " + ", ".join(SCENE_KINDS)):
        generate_scene(0, kind=kind)


@pytest.mark.parametrize("n, error", [(-1, ValueError), (1.5, TypeError), (None, TypeError)])
def test_generate_scenes_refuses_counts_that_are_no_natural_number(n, error) -> None:
    with pytest.raises(error, match="n must be"):
        generate_scenes(n)
    assert generate_scenes(0) == []
