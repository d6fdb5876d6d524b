r"""``MLLMForwardWrapper``: a Hugging Face image-text-to-text model as a Captum forward function.

The wrapper fixes a prompt and an answer (a :class:`PreparedSample`) and maps a batch of images to
the conditional probabilities of the answer's tokens under teacher forcing. Every Captum method
(FeatureAblation, Lime, KernelShap, IntegratedGradients, ...) and :class:`EagleAttribution` perturb
the same ``(1, 3, H, W)`` image tensor in ``[0, 1]`` at the model's input resolution.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import transformers
from PIL import Image
from torch import nn
from transformers import PreTrainedModel, ProcessorMixin

from captum_eagle.families import ModelFamily, family_for
from captum_eagle.families.base import _image_only_class

ImageLike = Image.Image | np.ndarray | torch.Tensor
TargetSelection = None | int | slice | str | list[int] | tuple[int, ...] | torch.Tensor
Score = Literal["probability", "log_probability"]


@dataclass(frozen=True)
class PreparedSample:
    r"""A prompt, an answer and the target tokens, fixed for a batch of images.

    Attributes:
        image (Tensor): ``(1, 3, H, W)`` float image in ``[0, 1]`` at the model's input resolution.
        prompt (str): the user's prompt.
        prompt_text (str): the prompt after the chat template (with the image slot).
        prompt_ids (Tensor): ``(1, L)`` prompt token ids, image tokens already expanded.
        answer (str): the answer that is explained (generated greedily or given by the user).
        answer_ids (Tensor): ``(A,)`` token ids of the answer.
        answer_tokens (list[str]): the answer's tokens as text.
        target_indices (Tensor): ``(T,)`` indices into the answer of the explained tokens.
        token_inputs (dict): per-token extra inputs of the prompt (e.g. ``mm_token_type_ids``).
        family (str): name of the model family adapter.
    """

    image: torch.Tensor
    prompt: str
    prompt_text: str
    prompt_ids: torch.Tensor
    answer: str
    answer_ids: torch.Tensor
    answer_tokens: list[str]
    target_indices: torch.Tensor
    token_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    family: str = ""

    @property
    def target_ids(self) -> torch.Tensor:
        """Vocabulary ids of the target tokens, ``(T,)``."""
        return self.answer_ids[self.target_indices]

    @property
    def target_tokens(self) -> list[str]:
        """The target tokens as text."""
        return [self.answer_tokens[i] for i in self.target_indices.tolist()]

    @property
    def n_targets(self) -> int:
        return int(self.target_indices.numel())

    def with_targets(self, targets: TargetSelection) -> PreparedSample:
        r"""Return a copy that explains a subset of the answer's tokens.

        Args:
            targets: ``None`` (all answer tokens), an index, a ``slice`` (a token span), a list of
                indices, or a word of the answer (its first occurrence; all tokens spelling it).
        """
        return replace(self, target_indices=select_targets(self, targets))

    def word_spans(self) -> list[tuple[str, list[int]]]:
        """Group the answer's tokens into words: ``[(word, token indices)]`` in answer order."""
        ends = list(itertools.accumulate(len(token) for token in self.answer_tokens))
        text = "".join(self.answer_tokens)
        spans = []
        for match in re.finditer(r"\w+", text):
            indices = [
                i
                for i, end in enumerate(ends)
                if end > match.start() and end - len(self.answer_tokens[i]) < match.end()
            ]
            spans.append((match.group(), indices))
        return spans


def select_targets(sample: PreparedSample, targets: TargetSelection) -> torch.Tensor:
    """Resolve a target selection (see :meth:`PreparedSample.with_targets`) to answer indices."""
    n_answer = int(sample.answer_ids.numel())
    if targets is None:
        return torch.arange(n_answer)
    if isinstance(targets, str):
        return _word_indices(sample, targets)
    if isinstance(targets, slice):
        indices = torch.arange(n_answer)[targets]
    elif isinstance(targets, int):
        indices = torch.tensor([targets])
    else:
        indices = torch.as_tensor(list(targets) if isinstance(targets, tuple) else targets)
        indices = indices.long().flatten()
    if indices.numel() == 0:
        raise ValueError(f"The target selection {targets!r} selects no token of the answer.")
    bad = [i for i in indices.tolist() if not -n_answer <= i < n_answer]
    if bad:
        raise IndexError(
            f"Target positions {bad} are out of range for an answer of {n_answer} tokens "
            f"({sample.answer_tokens})."
        )
    return torch.remainder(indices, n_answer).unique(sorted=True)


def _word_indices(sample: PreparedSample, word: str) -> torch.Tensor:
    wanted = word.strip().lower()
    if not wanted:
        raise ValueError("An empty word cannot be a target; pass a word of the answer.")
    spans = sample.word_spans()
    for text, indices in spans:
        if re.sub(r"[^\w]", "", text.lower()) == re.sub(r"[^\w]", "", wanted):
            return torch.tensor(indices)
    raise ValueError(
        f"The word {word!r} is not in the answer {sample.answer!r}; its words are "
        f"{[text for text, _ in spans]}. Pass token indices for a span instead."
    )


def to_image_tensor(image: ImageLike) -> torch.Tensor:
    r"""Validate an image and return it as a ``(1, 3, H, W)`` float tensor in ``[0, 1]``.

    Accepts a PIL image, an ``(H, W, 3)`` uint8 array (or float array in ``[0, 1]``), or a
    ``(3, H, W)`` / ``(1, 3, H, W)`` float tensor in ``[0, 1]``.
    """
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"))
        return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255.0
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"A numpy image must be (H, W, 3); got shape {image.shape}. "
                "Convert grayscale with np.stack([img] * 3, -1)."
            )
        if image.dtype == np.uint8:
            return torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
        if not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"A numpy image must be uint8 or float in [0, 1]; got {image.dtype}.")
        return to_image_tensor(torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1))
    if isinstance(image, torch.Tensor):
        tensor = image.detach()
        if tensor.ndim == 3:
            tensor = tensor[None]
        if tensor.ndim != 4 or tensor.shape[:2] != (1, 3):
            raise ValueError(
                f"A tensor image must be (3, H, W) or (1, 3, H, W); got shape {tuple(image.shape)}."
            )
        if not tensor.is_floating_point():
            raise ValueError(
                f"A tensor image must be float in [0, 1]; got {tensor.dtype}. Divide by 255."
            )
        if not torch.isfinite(tensor).all():
            raise ValueError("The image contains NaN or infinite values.")
        if tensor.min() < 0 or tensor.max() > 1:
            raise ValueError(
                f"A float image must lie in [0, 1]; got [{tensor.min():.3g}, {tensor.max():.3g}]. "
                "Undo the model normalisation: the wrapper normalises itself."
            )
        return tensor.float().cpu()
    raise TypeError(
        f"Unsupported image type {type(image).__name__}; pass a PIL image, an (H, W, 3) uint8 "
        "numpy array or a (3, H, W) float tensor in [0, 1]."
    )


def _check_prompt_ids(prompt_ids: torch.Tensor, batch: int, sample: PreparedSample) -> None:
    expected = (batch, sample.prompt_ids.shape[1])
    if not isinstance(prompt_ids, torch.Tensor) or tuple(prompt_ids.shape) != expected:
        raise ValueError(
            f"prompt_ids must be a {expected} tensor (one prompt per image, as long as "
            f"sample.prompt_ids); got {getattr(prompt_ids, 'shape', type(prompt_ids).__name__)}."
        )
    if prompt_ids.dtype != torch.long:
        raise TypeError(f"prompt_ids must be token ids (torch.long); got {prompt_ids.dtype}.")


def _to_pil(tensor: torch.Tensor) -> Image.Image:
    array = (tensor[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    return Image.fromarray(array)


class MLLMForwardWrapper(nn.Module):
    r"""Teacher-forced answer probabilities of an image-text-to-text model, as a forward function.

    ``wrapper(images, sample)`` maps images ``(B, 3, H, W)`` in ``[0, 1]`` to one score per image
    (the mean probability of the sample's target tokens, or their mean log-probability), so any
    Captum attribution method runs on it with ``additional_forward_args=(sample,)``.
    :meth:`token_probabilities` returns the per-token probabilities ``(B, T)``.

    Only the logits at the target positions are computed (``logits_to_keep``), token tensors are
    expanded rather than re-tokenised, and pixel normalisation / patchification happen in torch, so
    the score is differentiable with respect to the image.

    Args:
        model (PreTrainedModel): a supported Hugging Face model (see
            :func:`captum_eagle.families.list_families`).
        processor (ProcessorMixin): its processor (tokenizer, image processor, chat template).
        family (str, optional): force a family adapter by name instead of detecting it.
        batch_size (int): images per model forward; larger batches are split. Default: 16.
        score (str): ``"probability"`` (default) or ``"log_probability"``.

    Examples::

        >>> from captum_eagle import MLLMForwardWrapper
        >>> from captum_eagle.testing import tiny_model
        >>> from PIL import Image
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> sample = wrapper.prepare(Image.new("RGB", (32, 32)), "describe the image .", "a cat")
        >>> wrapper(sample.image, sample).shape
        torch.Size([1])
        >>> wrapper.token_probabilities(sample.image, sample).shape
        torch.Size([1, 2])
    """

    def __init__(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        *,
        family: str | None = None,
        batch_size: int = 16,
        score: Score = "probability",
    ) -> None:
        super().__init__()
        if score not in ("probability", "log_probability"):
            raise ValueError(f"score must be 'probability' or 'log_probability'; got {score!r}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        self.model = model.eval()
        self.processor = processor
        self.adapter: ModelFamily = family_for(model, family)(model, processor)
        self.batch_size = batch_size
        self.score = score

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str = "auto",
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> MLLMForwardWrapper:
        r"""Load a model and its processor by Hub id or local path (no remote code).

        Args:
            model_id_or_path: e.g. ``"llava-hf/llava-1.5-7b-hf"``,
                ``"Qwen/Qwen2.5-VL-7B-Instruct"``, ``"OpenGVLab/InternVL3_5-4B-HF"``, or a path.
            device: where to put the model (default: CUDA if available, else CPU).
            dtype: model dtype (``"auto"`` keeps the checkpoint's, usually bf16).
            local_files_only: never touch the network.
            **kwargs: passed to the wrapper (``batch_size``, ``score``, ``family``).
        """
        from transformers import AutoModelForImageTextToText

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            model = AutoModelForImageTextToText.from_pretrained(
                model_id_or_path,
                dtype=dtype,
                trust_remote_code=False,
                local_files_only=local_files_only,
            )
        except OSError as error:
            raise OSError(
                f"Could not load {model_id_or_path!r}: {error}\nThe weights are neither a local "
                "folder nor in the Hugging Face cache. On a machine with internet run "
                f"`huggingface-cli download {model_id_or_path}` (or pass a local path)."
            ) from error
        adapter = family_for(model, kwargs.get("family"))
        processor_class = _image_only_class(getattr(transformers, adapter.processor_class))
        processor = processor_class.from_pretrained(
            model_id_or_path, local_files_only=local_files_only
        )
        return cls(model.to(device), processor, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    # -- preparing a sample ------------------------------------------------------------------
    def prepare(
        self,
        image: ImageLike,
        prompt: str,
        target: str | None = None,
        *,
        targets: TargetSelection = None,
        max_new_tokens: int = 32,
        apply_chat_template: bool = True,
    ) -> PreparedSample:
        r"""Resize the image to the model's input grid, tokenise, and fix the answer to explain.

        Args:
            image: PIL image, ``(H, W, 3)`` uint8 array or ``(3, H, W)`` float tensor in [0, 1].
            prompt (str): the question or instruction (without the image placeholder).
            target (str, optional): the answer to explain. Default: the model's own greedy answer.
            targets: which answer tokens to explain (see :meth:`PreparedSample.with_targets`).
                Default: all answer tokens (end-of-sequence excluded).
            max_new_tokens (int): generation length when no target is given. Default: 32.
            apply_chat_template (bool): format ``prompt`` with the processor's chat template
                (default). If ``False``, ``prompt`` is used verbatim and must hold the image token.

        Returns:
            PreparedSample
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("The prompt is empty; pass the question or instruction to explain.")
        tensor = to_image_tensor(image)
        height, width = self.adapter.input_size(tensor.shape[-2], tensor.shape[-1])
        pil = self.adapter.resize(_to_pil(tensor))
        if tensor.shape[-2:] != (height, width) or not isinstance(image, torch.Tensor):
            tensor = to_image_tensor(pil)
        prompt_text = self._format_prompt(prompt, apply_chat_template)
        encoded = self.adapter.processor_inputs(pil, prompt_text)
        prompt_ids = encoded["input_ids"]
        token_inputs = {
            key: value
            for key, value in encoded.items()
            if key not in ("input_ids", "attention_mask")
            and isinstance(value, torch.Tensor)
            and value.shape == prompt_ids.shape
        }
        sample = PreparedSample(
            image=tensor,
            prompt=prompt,
            prompt_text=prompt_text,
            prompt_ids=prompt_ids,
            answer="",
            answer_ids=torch.zeros(0, dtype=torch.long),
            answer_tokens=[],
            target_indices=torch.zeros(0, dtype=torch.long),
            token_inputs=token_inputs,
            family=self.adapter.name,
        )
        if target is None:
            answer_ids = self.generate_ids(tensor, sample, max_new_tokens=max_new_tokens)[0]
            if answer_ids.numel() == 0:
                raise ValueError(
                    "The model generated an empty answer; pass target=... to explain a given text."
                )
        else:
            answer_ids = self._tokenize_target(target)
        sample = replace(
            sample,
            answer=self.decode(answer_ids),
            answer_ids=answer_ids,
            answer_tokens=self._token_pieces(answer_ids),
        )
        return sample.with_targets(targets)

    def resize_labels(self, labels: np.ndarray | torch.Tensor) -> torch.Tensor:
        r"""Map an ``(H, W)`` integer label map of the original image to the model's input grid.

        Uses the same resize/crop geometry as :meth:`prepare` with nearest-neighbour sampling, so a
        user mask drawn on the original image lines up with ``sample.image``.
        """
        array = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        if array.ndim != 2:
            raise ValueError(f"A label map must be (H, W); got shape {array.shape}.")
        pil = Image.fromarray(array.astype(np.int32), mode="I")
        return torch.from_numpy(
            np.asarray(self.adapter.resize(pil, Image.Resampling.NEAREST)).astype(np.int64)
        )

    def _format_prompt(self, prompt: str, apply_chat_template: bool) -> str:
        image_token = getattr(self.processor, "image_token", None)
        if apply_chat_template:
            if getattr(self.processor, "chat_template", None) is None:
                raise ValueError(
                    "The processor has no chat template. Set processor.chat_template, or pass "
                    "apply_chat_template=False with a prompt that contains the image token "
                    f"{image_token!r}."
                )
            messages = [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
            ]
            text = self.processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        else:
            text = prompt
        if image_token and image_token not in text:
            raise ValueError(
                f"The formatted prompt has no image slot ({image_token!r}): {text!r}. Use a chat "
                "template that renders {'type': 'image'} content, or put the image token in the "
                "prompt with apply_chat_template=False."
            )
        return text

    def _tokenize_target(self, target: str) -> torch.Tensor:
        if not isinstance(target, str) or not target.strip():
            raise ValueError("The target text is empty; pass the answer to explain or None.")
        ids = self.tokenizer(target, add_special_tokens=False)["input_ids"]
        unk = self.tokenizer.unk_token_id
        if not ids or (unk is not None and unk in ids):
            raise ValueError(
                f"The target {target!r} cannot be tokenised by this model's tokenizer "
                f"(tokens: {self.tokenizer.convert_ids_to_tokens(ids)}); rephrase it with words "
                "the model knows."
            )
        return torch.tensor(ids, dtype=torch.long)

    def _token_pieces(self, ids: torch.Tensor) -> list[str]:
        """Split the decoded answer into one text piece per token (pieces join to the answer)."""
        prefixes = [self.decode(ids[:i]) for i in range(ids.numel() + 1)]
        return [prefixes[i + 1][len(prefixes[i]) :] for i in range(ids.numel())]

    def decode(self, ids: torch.Tensor) -> str:
        """Decode token ids to text without rewriting spaces around punctuation."""
        return self.tokenizer.decode(
            ids.tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    # -- scoring -----------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, sample: PreparedSample) -> torch.Tensor:
        r"""Score each image: mean target-token probability (or log-probability), shape ``(B,)``."""
        log_probs = self.token_log_probabilities(images, sample)
        if self.score == "log_probability":
            return log_probs.mean(dim=1)
        return log_probs.exp().mean(dim=1)

    def token_probabilities(
        self,
        images: torch.Tensor,
        sample: PreparedSample,
        *,
        prompt_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Probabilities of the target tokens under teacher forcing, shape ``(B, T)``.

        ``prompt_ids`` (optional, ``(B, L)``): one prompt per image, of the length of
        ``sample.prompt_ids`` (e.g. with some prompt words replaced by a baseline token).
        """
        return self.token_log_probabilities(images, sample, prompt_ids=prompt_ids).exp()

    def token_log_probabilities(
        self,
        images: torch.Tensor,
        sample: PreparedSample,
        *,
        prompt_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Log-probabilities of the target tokens under teacher forcing, shape ``(B, T)``.

        ``prompt_ids`` (optional, ``(B, L)``): per-image prompt token ids, see
        :meth:`token_probabilities`. Default: ``sample.prompt_ids`` for every image.
        """
        self._check_images(images, sample)
        if sample.n_targets == 0:
            raise ValueError("The sample has no target tokens; use sample.with_targets(...).")
        if prompt_ids is None:
            prompt_ids = sample.prompt_ids.expand(images.shape[0], -1)
        _check_prompt_ids(prompt_ids, images.shape[0], sample)
        chunks = [
            self._score_chunk(
                images[start : start + self.batch_size],
                sample,
                prompt_ids[start : start + self.batch_size],
            )
            for start in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(chunks, dim=0).to(images.device)

    def _check_images(self, images: torch.Tensor, sample: PreparedSample) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError(
                "images must be a (B, 3, H, W) tensor; got "
                f"{getattr(images, 'shape', type(images).__name__)}."
            )
        if images.shape[1:] != sample.image.shape[1:]:
            raise ValueError(
                f"images have shape {tuple(images.shape[1:])} per image but the sample was "
                f"prepared at {tuple(sample.image.shape[1:])}; perturb sample.image."
            )

    def _score_chunk(
        self, images: torch.Tensor, sample: PreparedSample, prompt_ids: torch.Tensor
    ) -> torch.Tensor:
        batch = images.shape[0]
        n_prompt = sample.prompt_ids.shape[1]
        last = int(sample.target_indices.max())
        device = self.device
        answer = sample.answer_ids[:last].to(device).expand(batch, -1)
        input_ids = torch.cat([prompt_ids.to(device), answer], dim=1)
        inputs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
        }
        for key, value in sample.token_inputs.items():
            extended = torch.cat([value[0], value.new_zeros(last)])
            inputs[key] = extended.to(device).expand(batch, -1)
        inputs.update(self.adapter.pixel_inputs(images.to(device)))
        positions = (n_prompt + sample.target_indices - 1).to(device)
        logits = self.model(**inputs, logits_to_keep=positions, use_cache=False).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        target_ids = sample.target_ids.to(device).expand(batch, -1)
        return log_probs.gather(-1, target_ids[..., None])[..., 0]

    # -- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def generate_ids(
        self, images: torch.Tensor, sample: PreparedSample, *, max_new_tokens: int = 32
    ) -> list[torch.Tensor]:
        r"""Greedy answers for a batch of images under the sample's prompt (EOS stripped)."""
        self._check_images(images, sample)
        answers: list[torch.Tensor] = []
        eos = self._eos_ids()
        device = self.device
        for start in range(0, images.shape[0], self.batch_size):
            chunk = images[start : start + self.batch_size].to(device)
            batch = chunk.shape[0]
            inputs: dict[str, Any] = {
                "input_ids": sample.prompt_ids.to(device).expand(batch, -1),
                "attention_mask": torch.ones_like(sample.prompt_ids, device=device).expand(
                    batch, -1
                ),
            }
            for key, value in sample.token_inputs.items():
                inputs[key] = value.to(device).expand(batch, -1)
            inputs.update(self.adapter.pixel_inputs(chunk))
            output = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=self._pad_id(eos),
            )
            for row in output[:, sample.prompt_ids.shape[1] :].cpu():
                stop = [i for i, token in enumerate(row.tolist()) if token in eos]
                answers.append(row[: stop[0]] if stop else row)
        return answers

    def generate(
        self, images: torch.Tensor, sample: PreparedSample, *, max_new_tokens: int = 32
    ) -> list[str]:
        r"""Greedy answers (text) for a batch of images under the sample's prompt."""
        ids = self.generate_ids(images, sample, max_new_tokens=max_new_tokens)
        return [self.decode(row) for row in ids]

    def _pad_id(self, eos: set[int]) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else min(eos, default=0)

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids
