"""Quality measurements of the shapes model on generated scenes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from .model import DEFAULT_CAPTION_PROMPT, chat_prompt, question_prompt
from .scenes import Question, Scene

__all__ = [
    "EVAL_SEED",
    "answer_questions",
    "caption_metrics",
    "encode_with_answers",
    "generate_captions",
    "question_metrics",
]

#: Evaluation scenes use seeds from here on; training uses seeds below it.
EVAL_SEED = 10**6


def _images(scenes_or_images: Sequence) -> list:
    return [s.pil() if isinstance(s, Scene) else s for s in scenes_or_images]


def stack_pixels(pixel_values: Sequence) -> torch.Tensor:
    """Stack an image processor's per-image ``pixel_values`` into one float tensor (B, 3, H, W)."""
    return torch.as_tensor(np.stack([np.asarray(p) for p in pixel_values])).float()


def encode_with_answers(
    processor: LlavaProcessor,
    images: Sequence,
    prompts: Sequence[str],
    answers: Sequence[str],
) -> dict[str, torch.Tensor]:
    """Encode (image, prompt, answer) triples exactly as the model sees them at inference.

    The prompt goes through the chat template and the processor; the answer tokens
    (``tokenizer(answer, add_special_tokens=False)``) and ``</s>`` are appended. Sequences are
    right-padded.

    Parameters
    ----------
    processor : transformers.LlavaProcessor
    images : sequence of PIL.Image.Image or Scene
    prompts : sequence of str
        User prompts (e.g. :data:`DEFAULT_CAPTION_PROMPT` or a question).
    answers : sequence of str
        Target texts.

    Returns
    -------
    dict
        ``input_ids``, ``attention_mask``, ``pixel_values`` and ``labels`` (``-100`` outside the
        answer and ``</s>``), plus ``answer_start`` (index of the first answer token per row).
    """
    tok = processor.tokenizer
    texts = [chat_prompt(processor, p) for p in prompts]
    enc = processor(images=_images(images), text=texts, padding=False)
    rows, labels, starts = [], [], []
    for ids, answer in zip(enc["input_ids"], answers, strict=True):
        ans = [*tok(answer, add_special_tokens=False).input_ids, tok.eos_token_id]
        rows.append(list(ids) + ans)
        labels.append([-100] * len(ids) + ans)
        starts.append(len(ids))
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    label_t = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, labels, strict=True)):
        input_ids[i, : len(r)] = torch.tensor(r)
        attention[i, : len(r)] = 1
        label_t[i, : len(lab)] = torch.tensor(lab)
    pixel_values = stack_pixels(enc["pixel_values"])
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "pixel_values": pixel_values,
        "labels": label_t,
        "answer_start": torch.tensor(starts),
    }


@torch.no_grad()
def generate_captions(
    model: LlavaForConditionalGeneration,
    processor: LlavaProcessor,
    scenes_or_images: Sequence,
    prompt: str = DEFAULT_CAPTION_PROMPT,
    batch_size: int = 64,
    max_new_tokens: int = 32,
) -> list[str]:
    """Greedy-decode captions for a batch of images.

    Parameters
    ----------
    model : transformers.LlavaForConditionalGeneration
    processor : transformers.LlavaProcessor
    scenes_or_images : sequence of Scene or PIL.Image.Image
    prompt : str, default DEFAULT_CAPTION_PROMPT
    batch_size : int, default 64
    max_new_tokens : int, default 32

    Returns
    -------
    list of str
        Decoded captions (special tokens removed, words separated by single spaces).
    """
    images = _images(scenes_or_images)
    text = chat_prompt(processor, prompt)
    device = next(model.parameters()).device
    out: list[str] = []
    tok = processor.tokenizer
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        inputs = processor(images=chunk, text=[text] * len(chunk), return_tensors="pt").to(device)
        gen = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        new = gen[:, inputs["input_ids"].shape[1] :]
        out.extend(
            tok.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=False).strip()
            for row in new
        )
    return out


@torch.no_grad()
def answer_questions(
    model: LlavaForConditionalGeneration,
    processor: LlavaProcessor,
    items: Sequence[tuple[Scene, Question]],
    batch_size: int = 128,
) -> tuple[list[str], np.ndarray]:
    """Answer yes/no questions greedily (one forward pass each: the first answer token).

    Parameters
    ----------
    model : transformers.LlavaForConditionalGeneration
    processor : transformers.LlavaProcessor
    items : sequence of (Scene, Question)
    batch_size : int, default 128

    Returns
    -------
    answers : list of str
        The greedy first answer word per question.
    p_yes : numpy.ndarray
        Probability of "yes" per question.
    """
    tok = processor.tokenizer
    yes_id = tok.convert_tokens_to_ids("yes")
    device = next(model.parameters()).device
    answers: list[str] = []
    p_yes: list[float] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        texts = [chat_prompt(processor, question_prompt(q)) for _, q in chunk]
        inputs = processor(
            images=[s.pil() for s, _ in chunk], text=texts, return_tensors="pt", padding=True
        ).to(device)
        logits = model(**inputs).logits[:, -1, :].float()
        probs = logits.softmax(-1)
        answers.extend(tok.convert_ids_to_tokens(logits.argmax(-1).tolist()))
        p_yes.extend(probs[:, yes_id].tolist())
    return answers, np.asarray(p_yes)


@dataclass
class CaptionMetrics:
    """Caption quality: exact-match rate and teacher-forced token accuracy (incl. ``</s>``)."""

    exact_match: float
    token_accuracy: float
    n: int


@torch.no_grad()
def caption_metrics(
    model: LlavaForConditionalGeneration,
    processor: LlavaProcessor,
    scenes: Sequence[Scene],
    batch_size: int = 64,
) -> CaptionMetrics:
    """Measure greedy exact-match and teacher-forced token accuracy of captions.

    Parameters
    ----------
    model : transformers.LlavaForConditionalGeneration
    processor : transformers.LlavaProcessor
    scenes : sequence of Scene
    batch_size : int, default 64

    Returns
    -------
    CaptionMetrics
    """
    captions = generate_captions(model, processor, scenes, batch_size=batch_size)
    exact = float(np.mean([c == s.caption for c, s in zip(captions, scenes, strict=True)]))
    device = next(model.parameters()).device
    correct = total = 0
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        enc = encode_with_answers(
            processor, chunk, [DEFAULT_CAPTION_PROMPT] * len(chunk), [s.caption for s in chunk]
        )
        labels = enc.pop("labels")[:, 1:].to(device)
        enc.pop("answer_start")
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits[:, :-1]
        keep = labels != -100
        correct += int((logits.argmax(-1)[keep] == labels[keep]).sum())
        total += int(keep.sum())
    return CaptionMetrics(exact, correct / max(total, 1), len(scenes))


@dataclass
class QuestionMetrics:
    """Yes/no quality.

    ``accuracy_clean`` is over questions without a partial-match distractor (present objects and
    absent objects sharing no attribute with the scene); ``false_yes_partial`` is the rate of "yes"
    answers to absent objects that share a colour or a shape with a scene object.
    """

    accuracy_clean: float
    n_clean: int
    false_yes_partial: float
    n_partial: int


def question_metrics(
    model: LlavaForConditionalGeneration,
    processor: LlavaProcessor,
    scenes: Sequence[Scene],
) -> QuestionMetrics:
    """Measure yes/no accuracy without distractors and the false "yes" rate with one.

    Parameters
    ----------
    model : transformers.LlavaForConditionalGeneration
    processor : transformers.LlavaProcessor
    scenes : sequence of Scene
        All questions of all scenes are asked.

    Returns
    -------
    QuestionMetrics
    """
    items = [(s, q) for s in scenes for q in s.questions]
    answers, _ = answer_questions(model, processor, items)
    clean = [
        a == q.answer for a, (_, q) in zip(answers, items, strict=True) if not q.has_distractor
    ]
    partial = [a == "yes" for a, (_, q) in zip(answers, items, strict=True) if q.has_distractor]
    return QuestionMetrics(
        float(np.mean(clean)) if clean else float("nan"),
        len(clean),
        float(np.mean(partial)) if partial else float("nan"),
        len(partial),
    )
