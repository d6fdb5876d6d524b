"""Deterministic CPU training of the bundled shapes model.

Usage (the bundled weights: the defaults, then a caption-heavy second stage that also learns
the caption position of each patch, 29.4 min in all on an idle 2-core CPU)::

    python -m captum_eagle.zoo.train --out /tmp/stage1
    python -m captum_eagle.zoo.train --out captum_eagle/zoo/weights --init /tmp/stage1 \
        --seed 1 --steps 950 --vision-steps 0 --lr 1e-3 --p-caption 0.7 --aux-rank

Scenes are generated on the fly from training seeds below :data:`EVAL_SEED`. A run has two phases:

1. ``--vision-steps`` (default 1000) steps of vision-only pre-training: the CLIP tower and a
   linear head learn to name the colour and shape (with ``--aux-rank`` also the caption
   position, i.e. left-to-right rank) of the object under each 8x8 patch
   (:func:`patch_labels`). Learning shapes only through the caption loss was the bottleneck
   (shape names were the captions' main error, then the order of objects in crowded scenes);
   this dense signal teaches them in minutes.
2. ``--steps`` (default 1700) steps of the whole LLaVA model. Each sample is either a caption
   (prompt :data:`DEFAULT_CAPTION_PROMPT`) or a yes/no question, encoded exactly as at inference
   (chat template + processor, then the answer tokens and ``</s>``). The loss covers the answer
   tokens, averaged per sample, then over the batch, so that the one-word yes/no answers weigh as
   much as whole captions, plus ``--aux-weight`` (default 1) times the per-patch loss of phase 1.

The head is used only in training; the saved model is a plain
:class:`transformers.LlavaForConditionalGeneration`. A run with ``--steps`` is fully determined
by its arguments; ``train_seconds`` in ``training_info.json`` records its duration. With
``--minutes`` instead, phase 2 stops after that wall-clock time and its learning-rate schedule
follows elapsed time, so the result depends on the machine's speed; the number of steps done is
written to ``training_info.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from .evaluate import (
    EVAL_SEED,
    caption_metrics,
    encode_with_answers,
    question_metrics,
    stack_pixels,
)
from .model import DEFAULT_CAPTION_PROMPT, PATCH_SIZE, build_model, build_processor, save_all
from .scenes import (
    COLOURS,
    MAX_OBJECTS,
    SCENE_KINDS,
    SHAPES,
    Scene,
    generate_scene,
    make_question,
    partial_match_causes,
)

__all__ = ["main", "sample_batch", "train"]

#: Probability of each scene kind in training.
KIND_WEIGHTS = {"plain": 0.35, "redundant": 0.15, "partial_match": 0.2, "crowded": 0.3}


def patch_labels(scene: Scene, patch: int = PATCH_SIZE, min_pixels: int = 6) -> np.ndarray:
    """Per-patch targets of the auxiliary vision loss: colour, shape and reading-order rank.

    Parameters
    ----------
    scene : Scene
    patch : int, default PATCH_SIZE
        Side of a vision-tower patch in pixels.
    min_pixels : int, default 6
        A patch with fewer object pixels than this is background.

    Returns
    -------
    numpy.ndarray
        int64 array of shape (3, G * G), G = image side // ``patch``, in the vision tower's
        row-major patch order. For the object covering most of the patch, row 0 holds
        ``1 + colour index``, row 1 ``1 + shape index`` and row 2 ``1 + its position in the
        caption`` (``scene.objects`` is in reading order); 0 marks background in every row.
        The rank teaches the tower where each object falls in the left-to-right order, which
        was the main error of crowded captions once colours and shapes were learnt.
    """
    g = scene.image.shape[0] // patch
    colour_ids = {c: i + 1 for i, c in enumerate(COLOURS)}
    shape_ids = {s: i + 1 for i, s in enumerate(SHAPES)}
    labels = np.zeros((3, g * g), dtype=np.int64)
    if not scene.objects:
        return labels
    counts = np.stack(
        [o.mask.reshape(g, patch, g, patch).sum(axis=(1, 3)).reshape(-1) for o in scene.objects]
    )
    best = counts.argmax(axis=0)
    for j in np.nonzero(counts.max(axis=0) >= min_pixels)[0]:
        obj = scene.objects[int(best[j])]
        labels[0, j] = colour_ids[obj.colour]
        labels[1, j] = shape_ids[obj.shape]
        labels[2, j] = int(best[j]) + 1
    return labels


#: Classes of each row of :func:`patch_labels` (background included): colour, shape, rank.
PATCH_CLASSES = (len(COLOURS) + 1, len(SHAPES) + 1, MAX_OBJECTS + 1)


def _training_scene(seed: int) -> tuple[Scene, np.random.Generator]:
    """Draw the scene kind of a training seed (:data:`KIND_WEIGHTS`); return scene and rng."""
    rng = np.random.default_rng([seed, 7])
    kinds = list(KIND_WEIGHTS)
    kind = kinds[int(rng.choice(len(kinds), p=list(KIND_WEIGHTS.values())))]
    return generate_scene(seed, kind), rng


def _lr_scale(step: int, warmup: int, progress: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay with ``progress`` in [0, 1]."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * progress))


def _training_example(
    seed: int, p_caption: float, p_partial_no: float
) -> tuple[object, str, str, np.ndarray]:
    """Return ``(image, prompt, answer, patch_labels)`` for one training seed."""
    scene, rng = _training_scene(seed)
    patches = patch_labels(scene)
    if rng.random() < p_caption:
        return scene.pil(), DEFAULT_CAPTION_PROMPT, scene.caption, patches
    objects = scene.objects
    present = {(o.colour, o.shape) for o in objects}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    clean = [p for p in absent if not partial_match_causes(objects, *p)]
    partial = [p for p in absent if partial_match_causes(objects, *p)]
    u = rng.random()
    if u < 0.5 or not (clean or partial):
        o = objects[int(rng.integers(len(objects)))]
        pair = (o.colour, o.shape)
    elif (u < 0.5 + 0.5 * p_partial_no and partial) or not clean:
        pair = partial[int(rng.integers(len(partial)))]
    else:
        pair = clean[int(rng.integers(len(clean)))]
    q = make_question(objects, *pair)
    return scene.pil(), q.text, q.answer, patches


def sample_batch(
    processor, seeds: list[int], p_caption: float = 0.5, p_partial_no: float = 0.03
) -> dict[str, torch.Tensor]:
    """Build one training batch from training seeds.

    Parameters
    ----------
    processor : transformers.LlavaProcessor
    seeds : list of int
        One scene seed per sample (must be below :data:`EVAL_SEED`).
    p_caption : float, default 0.5
        Probability that a sample is a caption (otherwise a yes/no question).
    p_partial_no : float, default 0.03
        Among "no" questions, the probability of asking about an absent object that shares an
        attribute with a scene object. Keeping it low keeps the attribute-binding confusion
        (false "yes" with a partial-match distractor) that the hallucination benchmarks need.

    Returns
    -------
    dict
        Output of :func:`~captum_eagle.zoo.evaluate.encode_with_answers`, plus ``patch_labels``
        (B, 3, G * G) from :func:`patch_labels`.
    """
    if max(seeds) >= EVAL_SEED:
        raise ValueError("training seeds must stay below EVAL_SEED")
    examples = [_training_example(s, p_caption, p_partial_no) for s in seeds]
    images, prompts, answers, patches = zip(*examples, strict=True)
    batch = encode_with_answers(processor, images, prompts, answers)
    batch["patch_labels"] = torch.as_tensor(np.stack(patches))
    return batch


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over each sample's answer tokens, then over the batch.

    Parameters
    ----------
    logits : torch.Tensor
        (B, T, V) model outputs.
    labels : torch.Tensor
        (B, T) targets, ``-100`` where ignored.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    mask = target != -100
    tok_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.clamp(min=0).reshape(-1), reduction="none"
    ).view(target.shape)
    per_row = (tok_loss * mask).sum(1) / mask.sum(1).clamp(min=1)
    return per_row.mean()


def patch_loss(
    logits: torch.Tensor, targets: torch.Tensor, classes: tuple[int, ...] = PATCH_CLASSES
) -> torch.Tensor:
    """Cross-entropy of the auxiliary per-patch predictions.

    Parameters
    ----------
    logits : torch.Tensor
        (B, P, sum(classes)): the classes of the predicted rows of :func:`patch_labels` side by
        side (background + colours, background + shapes, then background + ranks if predicted)
        for each of the P patches.
    targets : torch.Tensor
        (B, 3, P) from :func:`patch_labels`.
    classes : tuple of int, default PATCH_CLASSES
        Class counts of the rows predicted by ``logits`` (the first ``len(classes)`` rows of
        ``targets``); ``PATCH_CLASSES[:2]`` predicts colour and shape only.

    Returns
    -------
    torch.Tensor
        Scalar: the sum over rows of the mean cross-entropy over all patches.
    """
    if logits.shape[-1] != sum(classes):
        raise ValueError(f"logits have {logits.shape[-1]} classes, expected sum({classes})")
    total = logits.new_zeros(())
    for row, chunk in enumerate(logits.split(classes, dim=-1)):
        total = total + torch.nn.functional.cross_entropy(
            chunk.reshape(-1, chunk.shape[-1]), targets[:, row].reshape(-1)
        )
    return total


def _pretrain_vision(
    model,
    head: torch.nn.Linear,
    processor,
    steps: int,
    batch_size: int,
    lr: float,
    warmup: int,
    seed_base: int,
    classes: tuple[int, ...],
) -> None:
    """Train the vision tower and ``head`` alone on :func:`patch_labels` (see :func:`train`)."""
    tower = model.model.vision_tower
    params = list(tower.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * _lr_scale(step, warmup, step / steps)
        first = seed_base + step * batch_size
        scenes = [_training_scene(s)[0] for s in range(first, first + batch_size)]
        pixels = stack_pixels(
            processor.image_processor([sc.pil() for sc in scenes])["pixel_values"]
        )
        targets = torch.as_tensor(np.stack([patch_labels(sc) for sc in scenes]))
        # Same features as the projector sees: last layer, CLS dropped ("default" strategy).
        features = tower(pixel_values=pixels).last_hidden_state[:, 1:]
        loss = patch_loss(head(features), targets, classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % 100 == 0:
            print(f"vision step {step + 1} loss {loss.item():.4f}", flush=True)


def train(
    out: str | Path,
    minutes: float | None = None,
    steps: int | None = 1700,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 2e-3,
    warmup: int = 100,
    p_caption: float = 0.5,
    p_partial_no: float = 0.03,
    threads: int = 2,
    eval_scenes: int = 200,
    checkpoint_minutes: float = 0.0,
    init: str | Path | None = None,
    aux_weight: float = 1.0,
    vision_steps: int = 1000,
    aux_rank: bool = False,
) -> dict:
    """Train the shapes model and save it to ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder.
    minutes : float, optional
        Wall-clock budget, used only when ``steps`` is None: training stops after that time and
        the cosine schedule follows elapsed time.
    steps : int or None, default 1700
        Number of optimisation steps (makes the run independent of machine speed).
    seed : int, default 0
        Seed of the initialisation; training scenes use seeds ``seed * 10**5 + i`` ... below
        :data:`EVAL_SEED`.
    batch_size : int, default 64
    lr : float, default 2e-3
        Peak AdamW learning rate (linear warm-up, cosine decay to 0).
    warmup : int, default 100
    p_caption, p_partial_no : float
        Training mixture, see :func:`sample_batch`.
    threads : int, default 2
    eval_scenes : int, default 200
        Evaluation scenes per kind measured at the end (0 to skip).
    checkpoint_minutes : float, default 0
        If positive, also save to ``out`` every that many minutes.
    init : str or Path, optional
        Continue from the weights saved in this folder instead of a fresh initialisation (use a
        different ``seed`` than the first stage so that new training scenes are drawn).
    aux_weight : float, default 1
        Weight of an auxiliary loss that trains the vision tower to name the colour and shape
        (and with ``aux_rank`` the caption position) of the object under each patch
        (:func:`patch_labels`), through a linear head used only in training (it is not saved;
        the saved model is a plain LLaVA).
    vision_steps : int, default 1000
        Steps of vision-only pre-training before the main loop: the vision tower and that head
        learn the per-patch colours and shapes alone (no language model: a step costs under half
        a full one), with their own warm-up and cosine schedule at ``lr``. Included in
        ``train_seconds``.
    aux_rank : bool, default False
        Add the third row of :func:`patch_labels` (each object's left-to-right caption
        position) to the auxiliary loss. It is what makes crowded captions right (their main
        error was the order of objects), but in a run that used it from the start the yes/no
        answer collapsed to a constant, so the bundled recipe turns it on in its second stage.

    Returns
    -------
    dict
        Training summary (also written to ``out/training_info.json``).
    """
    if steps is None and minutes is None:
        raise ValueError("give steps or minutes")
    if vision_steps < 0 or aux_weight < 0:
        raise ValueError(
            f"vision_steps and aux_weight must be >= 0, got {vision_steps}, {aux_weight}"
        )
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    processor = build_processor()
    model = build_model(processor.tokenizer, seed=seed)
    if init is not None:
        from .model import load_default_model

        model, _ = load_default_model(path=init)
    model.train()
    width = model.model.vision_tower.config.hidden_size
    classes = PATCH_CLASSES if aux_rank else PATCH_CLASSES[:2]
    aux_head = torch.nn.Linear(width, sum(classes))
    features: list[torch.Tensor] = []
    hook = model.model.multi_modal_projector.register_forward_pre_hook(
        lambda _module, args: features.append(args[0])
    )
    params = list(model.parameters()) + (list(aux_head.parameters()) if aux_weight else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    seed_base = seed * 100_000
    t0 = time.perf_counter()
    if vision_steps:
        _pretrain_vision(
            model, aux_head, processor, vision_steps, batch_size, lr, warmup, seed_base, classes
        )
        seed_base += vision_steps * batch_size
    budget = (minutes or 0.0) * 60.0
    last_save = t0
    step = 0
    losses: list[float] = []
    while True:
        elapsed = time.perf_counter() - t0
        if steps is not None:
            if step >= steps:
                break
            progress = step / steps
        else:
            # Time-bounded run: the schedule follows wall-clock progress, so the run ends on time
            # whatever the load of the machine (the number of steps done is recorded).
            if elapsed >= budget:
                break
            progress = elapsed / budget
        scale = _lr_scale(step, warmup, progress)
        for g in opt.param_groups:
            g["lr"] = lr * scale
        seeds = [seed_base + step * batch_size + i for i in range(batch_size)]
        batch = sample_batch(processor, seeds, p_caption, p_partial_no)
        labels = batch.pop("labels")
        targets = batch.pop("patch_labels")
        batch.pop("answer_start")
        features.clear()
        logits = model(**batch).logits
        loss = per_sample_loss(logits, labels)
        if aux_weight:
            loss = loss + aux_weight * patch_loss(aux_head(features[0]), targets, classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 25 == 0:
            el = time.perf_counter() - t0
            print(
                f"step {step} loss {np.mean(losses[-25:]):.4f} lr {lr * scale:.2e} {el:.0f}s",
                flush=True,
            )
        if checkpoint_minutes and time.perf_counter() - last_save > checkpoint_minutes * 60:
            save_all(model, processor, out)
            last_save = time.perf_counter()
            model.train()
    train_seconds = time.perf_counter() - t0
    hook.remove()
    model.eval()
    save_all(model, processor, out)
    info: dict = {
        "steps": step,
        "batch_size": batch_size,
        "lr": lr,
        "warmup": warmup,
        "seed": seed,
        "p_caption": p_caption,
        "p_partial_no": p_partial_no,
        "train_seconds": round(train_seconds, 1),
        "final_loss": float(np.mean(losses[-25:])),
        "torch": torch.__version__,
        "init": str(init) if init is not None else None,
        "aux_weight": aux_weight,
        "vision_steps": vision_steps,
        "aux_rank": aux_rank,
    }
    if eval_scenes:
        from .model import load_default_model

        model, processor = load_default_model(path=out)
        for kind in SCENE_KINDS:
            scenes = [generate_scene(EVAL_SEED + i, kind) for i in range(eval_scenes)]
            cm = caption_metrics(model, processor, scenes)
            qm = question_metrics(model, processor, scenes)
            info[f"eval_{kind}"] = {
                "caption_exact": cm.exact_match,
                "token_accuracy": cm.token_accuracy,
                "yes_no_accuracy_clean": qm.accuracy_clean,
                "n_clean": qm.n_clean,
                "false_yes_partial": qm.false_yes_partial,
                "n_partial": qm.n_partial,
            }
            print(kind, info[f"eval_{kind}"], flush=True)
    Path(out, "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description="Train the bundled shapes model (CPU).")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "weights"))
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, default=1700, help="default: %(default)s")
    group.add_argument("--minutes", type=float, default=None, help="time budget instead of steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--p-caption", type=float, default=0.5)
    ap.add_argument("--p-partial-no", type=float, default=0.03)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-scenes", type=int, default=200)
    ap.add_argument("--checkpoint-minutes", type=float, default=0.0)
    ap.add_argument("--init", default=None, help="continue from weights in this folder")
    ap.add_argument("--aux-weight", type=float, default=1.0, help="per-patch vision loss weight")
    ap.add_argument("--vision-steps", type=int, default=1000, help="vision-only pre-training steps")
    ap.add_argument(
        "--aux-rank", action="store_true", help="also predict each patch's caption position"
    )
    args = ap.parse_args(argv)
    train(
        args.out,
        minutes=args.minutes,
        steps=None if args.minutes is not None else args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        p_caption=args.p_caption,
        p_partial_no=args.p_partial_no,
        threads=args.threads,
        eval_scenes=args.eval_scenes,
        checkpoint_minutes=args.checkpoint_minutes,
        init=args.init,
        aux_weight=args.aux_weight,
        vision_steps=args.vision_steps,
        aux_rank=args.aux_rank,
    )


if __name__ == "__main__":
    main()
