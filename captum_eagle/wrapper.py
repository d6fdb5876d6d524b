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
from PIL import Image
from torch import nn
from transformers import PreTrainedModel, ProcessorMixin

from captum_eagle._deprecation import renamed_keywords, warn_deprecated
from captum_eagle.checks import check_int
from captum_eagle.families import ModelFamily, RegionSubsets, family_for
from captum_eagle.families.base import check_processor_matches, processor_class_for
from captum_eagle.images import ImageLike, check_pixels, to_image_tensor, to_pil

TargetSelection = None | int | slice | str | list[int] | tuple[int, ...] | torch.Tensor
ScoreType = Literal["probability", "log_probability"]


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

    def with_target_tokens(self, target_tokens: TargetSelection) -> PreparedSample:
        r"""Return a copy that explains a subset of the answer's tokens.

        Args:
            target_tokens: ``None`` (all answer tokens), an index, a ``slice`` (a token span), a
                list of indices, or a word of the answer (its first occurrence; all tokens
                spelling it).

        Returns:
            PreparedSample: the same prompt, image and answer with the new target tokens.

        Examples::

            >>> import torch
            >>> from captum_eagle import MLLMForwardWrapper, testing
            >>> llava = MLLMForwardWrapper(*testing.tiny_model("llava"))
            >>> sample = llava.prepare(torch.zeros(3, 8, 8), "describe", "a red cat")
            >>> sample.with_target_tokens("cat").target_tokens, sample.n_targets
            ([' cat'], 3)
        """
        return replace(self, target_indices=select_targets(self, target_tokens))

    def with_targets(self, targets: TargetSelection) -> PreparedSample:
        """Deprecated name of :meth:`with_target_tokens`."""
        warn_deprecated("PreparedSample.with_targets", "PreparedSample.with_target_tokens")
        return self.with_target_tokens(targets)

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
    """Resolve a selection (see :meth:`PreparedSample.with_target_tokens`) to answer indices."""
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
    positions: torch.Tensor = torch.remainder(indices, n_answer).unique(sorted=True)
    return positions


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


def _check_prompt_ids(prompt_ids: torch.Tensor, batch: int, sample: PreparedSample) -> None:
    expected = (batch, sample.prompt_ids.shape[1])
    if not isinstance(prompt_ids, torch.Tensor) or tuple(prompt_ids.shape) != expected:
        raise ValueError(
            f"prompt_ids must be a {expected} tensor (one prompt per image, as long as "
            f"sample.prompt_ids); got {getattr(prompt_ids, 'shape', type(prompt_ids).__name__)}."
        )
    if prompt_ids.dtype != torch.long:
        raise TypeError(f"prompt_ids must be token ids (torch.long); got {prompt_ids.dtype}.")


class MLLMForwardWrapper(nn.Module):
    r"""Teacher-forced answer probabilities of an image-text-to-text model, as a forward function.

    ``wrapper(images, sample)`` maps images ``(B, 3, H, W)`` in ``[0, 1]`` to one score per image
    (the mean probability of the sample's target tokens, or their mean log-probability), so any
    Captum attribution method runs on it with ``additional_forward_args=(sample,)``.
    :meth:`token_probabilities` returns the per-token probabilities ``(B, T)``.

    Only the logits at the target positions are computed (``logits_to_keep``), token tensors are
    expanded rather than re-tokenised, and pixel normalisation / patchification happen in torch, so
    the score is differentiable with respect to the image.

    Pixel range: :meth:`prepare` takes the image to explain strictly in ``[0, 1]`` (or as a PIL
    image / integer array, see :mod:`captum_eagle.images`). The images that reach :meth:`forward`,
    :meth:`token_probabilities` and :meth:`generate` are perturbations of ``sample.image`` built
    by an attribution method; they must be floating point, finite, of the sample's size and within
    ``[-0.5, 1.5]`` (:func:`captum_eagle.images.check_pixels`). That tolerance lets noise-based
    methods (``NoiseTunnel``, SmoothGrad) through unchanged, values are not clamped; it refuses a
    0-255 image (``uint8`` or float) and a model-normalised one, which would give a meaningless
    score. Keep a noise ``stdevs`` well below 0.15 so that noisy pixels stay in range.

    Args:
        model (PreTrainedModel): a supported Hugging Face model (see
            :func:`captum_eagle.families.list_families`).
        processor (ProcessorMixin): its processor (tokenizer, image processor, chat template), from
            the same checkpoint (checked: a processor of another model is a ``ValueError``).
        family (str, optional): force a family adapter by name instead of detecting it.
            A model class without an adapter takes ``"generic"``: the model's own processor on
            every image (exactly what the model would receive; no gradients), and for Eagle the
            processor's region basis (see :mod:`captum_eagle.families.generic` for its tolerance).
        batch_size (int): images per model forward; larger batches are split. Default: 16.
        score_type (str): what ``wrapper(images, sample)`` returns per image: ``"probability"``
            (default, the mean target-token probability) or ``"log_probability"`` (their mean
            log-probability). ``score=`` is its deprecated name.

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

    @renamed_keywords(score="score_type")
    def __init__(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        *,
        family: str | None = None,
        batch_size: int = 16,
        score_type: ScoreType = "probability",
    ) -> None:
        super().__init__()
        if score_type not in ("probability", "log_probability"):
            raise ValueError(
                f"score_type must be 'probability' or 'log_probability'; got {score_type!r}."
            )
        check_int("batch_size", batch_size, least=1)
        adapter_class = family_for(model, family)
        adapter = adapter_class(model, processor)  # refuses a processor without images first
        check_processor_matches(model, processor, adapter_class)
        self.model = model.eval()
        self.processor = processor
        self.adapter: ModelFamily = adapter
        self.batch_size = int(batch_size)
        self.score_type = score_type

    @property
    def score(self) -> str:
        """Deprecated name of :attr:`score_type`."""
        warn_deprecated("MLLMForwardWrapper.score", "MLLMForwardWrapper.score_type")
        return self.score_type

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
            **kwargs: passed to the wrapper (``batch_size``, ``score_type``, ``family``).
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
        processor_class = processor_class_for(model, family_for(model, kwargs.get("family")))
        processor = processor_class.from_pretrained(
            model_id_or_path, local_files_only=local_files_only
        )
        # transformers wraps PreTrainedModel.to with functools.wraps: mypy sees no bound method.
        return cls(model.to(device), processor, **kwargs)  # type: ignore[arg-type]

    @property
    def device(self) -> torch.device:
        device: torch.device = next(self.model.parameters()).device
        return device

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    # -- preparing a sample ------------------------------------------------------------------
    @renamed_keywords(target="answer", targets="target_tokens")
    def prepare(
        self,
        image: ImageLike,
        prompt: str,
        answer: str | None = None,
        *,
        target_tokens: TargetSelection = None,
        max_new_tokens: int = 32,
        apply_chat_template: bool = True,
    ) -> PreparedSample:
        r"""Resize the image to the model's input grid, tokenise, and fix the answer to explain.

        Args:
            image: PIL image, ``(H, W, 3)`` uint8 / uint16 array or ``(3, H, W)`` float tensor in
                ``[0, 1]`` (conversion rules: :mod:`captum_eagle.images`).
            prompt (str): the question or instruction. With ``apply_chat_template=True`` it must
                not contain the image placeholder or other special tokens (the template adds
                them); a prompt copied from a model card (``"USER: <image>\n... ASSISTANT:"``)
                is refused with a ``ValueError`` that says so: pass it with
                ``apply_chat_template=False`` to use it verbatim.
            answer (str, optional): the answer text to explain. Default: the model's own greedy
                answer. It must not contain special tokens (``</s>``, ``<image>``, ...).
            target_tokens: which answer tokens to explain (see
                :meth:`PreparedSample.with_target_tokens`). Default: all answer tokens
                (end-of-sequence excluded).
            max_new_tokens (int): generation length when no answer is given. Default: 32.
            apply_chat_template (bool): format ``prompt`` with the processor's chat template
                (default). If ``False``, ``prompt`` is used verbatim and must hold the image token
                exactly once.

        ``target=`` (now ``answer=``) and ``targets=`` (now ``target_tokens=``) still work for one
        release and warn.

        Returns:
            PreparedSample

        Raises:
            ValueError: an empty prompt or answer, a special token in the answer (or in a prompt
                that goes through the chat template), or a prompt and answer longer than the
                model's context.

        Examples::

            >>> from captum_eagle import MLLMForwardWrapper
            >>> from captum_eagle.testing import tiny_model
            >>> from PIL import Image
            >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
            >>> image = Image.new("RGB", (48, 40))
            >>> sample = wrapper.prepare(image, "describe", "a red cat", target_tokens="cat")
            >>> sample.image.shape, sample.answer_tokens, sample.target_tokens
            (torch.Size([1, 3, 32, 32]), ['a', ' red', ' cat'], [' cat'])
        """
        check_int("max_new_tokens", max_new_tokens, least=1)
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("The prompt is empty; pass the question or instruction to explain.")
        tensor = to_image_tensor(image)
        height, width = self.adapter.input_size(tensor.shape[-2], tensor.shape[-1])
        pil = self.adapter.resize(to_pil(tensor))
        if tensor.shape[-2:] != (height, width) or not isinstance(image, torch.Tensor):
            tensor = to_image_tensor(pil)
        prompt_text = self._format_prompt(prompt, apply_chat_template)
        answer_ids = None if answer is None else self._tokenize_answer(answer)
        encoded = self.adapter.processor_inputs(pil, prompt_text)
        prompt_ids = encoded["input_ids"]
        self._check_length(prompt_ids.shape[1], 0 if answer_ids is None else answer_ids.numel())
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
        if answer_ids is None:
            answer_ids = self.generate_ids(tensor, sample, max_new_tokens=max_new_tokens)[0]
            if answer_ids.numel() == 0:
                raise ValueError(
                    "The model generated an empty answer; pass answer=... to explain a given text."
                )
        sample = replace(
            sample,
            answer=self.decode(answer_ids),
            answer_ids=answer_ids,
            answer_tokens=self._token_pieces(answer_ids),
        )
        return sample.with_target_tokens(target_tokens)

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
            specials = self._special_tokens_in(prompt)
            if specials:
                raise ValueError(
                    f"The prompt already contains special tokens {specials} (a prompt copied from "
                    "a model card?), and the chat template adds its own image placeholder. Pass "
                    "the question alone, e.g. 'describe the image .', or keep your prompt and pass "
                    "apply_chat_template=False to use it verbatim."
                )
            messages: list[dict[str, Any]] = [
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
        if image_token and text.count(image_token) > 1:
            raise ValueError(
                f"The prompt holds the image token {image_token!r} {text.count(image_token)} times "
                "but one image is explained; keep exactly one."
            )
        return text

    def _tokenize_answer(self, answer: str) -> torch.Tensor:
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError("The answer text is empty; pass the answer to explain or None.")
        ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        unk = self.tokenizer.unk_token_id
        if not ids or (unk is not None and unk in ids):
            raise ValueError(
                f"The answer {answer!r} cannot be tokenised by this model's tokenizer "
                f"(tokens: {self.tokenizer.convert_ids_to_tokens(ids)}); rephrase it with words "
                "the model knows."
            )
        specials = self._special_tokens_in(ids)
        if specials:
            raise ValueError(
                f"The answer {answer!r} contains the special tokens {specials}; the explained "
                "answer must be plain text. Remove them (the end of sequence is never explained)."
            )
        return torch.tensor(ids, dtype=torch.long)

    def _special_tokens_in(self, text_or_ids: str | list[int]) -> list[str]:
        """The special tokens (``</s>``, image tokens, ...) in a text or in token ids.

        The unknown token is not one: it stands for words outside the vocabulary, not for a
        control token the user typed.
        """
        ids = text_or_ids
        if isinstance(text_or_ids, str):
            ids = self.tokenizer(text_or_ids, add_special_tokens=False)["input_ids"]
        added = self.tokenizer.added_tokens_decoder
        special = set(self.tokenizer.all_special_ids) | {i for i, t in added.items() if t.special}
        special.discard(self.tokenizer.unk_token_id)
        tokens: list[str] = self.tokenizer.convert_ids_to_tokens([i for i in ids if i in special])
        return tokens

    def _check_length(self, n_prompt: int, n_answer: int) -> None:
        config = self.model.config.get_text_config()
        names = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
        limit = next((getattr(config, n) for n in names if getattr(config, n, None)), None)
        if limit is not None and n_prompt + max(n_answer, 1) > limit:
            raise ValueError(
                f"The prompt ({n_prompt} tokens with the image tokens) and the answer "
                f"({n_answer} tokens) exceed the model's context of {limit} positions; shorten "
                "the prompt or the answer."
            )

    def _token_pieces(self, ids: torch.Tensor) -> list[str]:
        """Split the decoded answer into one text piece per token (pieces join to the answer)."""
        prefixes = [self.decode(ids[:i]) for i in range(ids.numel() + 1)]
        return [prefixes[i + 1][len(prefixes[i]) :] for i in range(ids.numel())]

    def decode(self, ids: torch.Tensor) -> str:
        """Decode token ids to text without rewriting spaces around punctuation."""
        text: str = self.tokenizer.decode(
            ids.tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text

    # -- scoring -----------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, sample: PreparedSample) -> torch.Tensor:
        r"""Score each image: mean target-token probability (or log-probability), shape ``(B,)``."""
        log_probs = self.token_log_probabilities(images, sample)
        if self.score_type == "log_probability":
            return log_probs.mean(dim=1)
        return log_probs.exp().mean(dim=1)

    def token_probabilities(
        self,
        images: torch.Tensor,
        sample: PreparedSample,
        *,
        batch_size: int | None = None,
        prompt_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Probabilities of the target tokens under teacher forcing, shape ``(B, T)``.

        Args:
            images (Tensor): ``(B, 3, H, W)`` in ``[0, 1]``.
            sample (PreparedSample): prompt, answer and target tokens.
            batch_size (int, optional): images per model forward. Default: the wrapper's.
            prompt_ids (Tensor, optional): ``(B, L)`` one prompt per image, of the length of
                ``sample.prompt_ids`` (e.g. with some prompt words replaced by a baseline token).
                Default: ``sample.prompt_ids`` for every image.
        """
        return self.token_log_probabilities(
            images, sample, batch_size=batch_size, prompt_ids=prompt_ids
        ).exp()

    def token_log_probabilities(
        self,
        images: torch.Tensor,
        sample: PreparedSample,
        *,
        batch_size: int | None = None,
        prompt_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Log-probabilities of the target tokens, ``(B, T)``; see :meth:`token_probabilities`."""
        self._check_images(images, sample)
        if sample.n_targets == 0:
            raise ValueError("The sample has no target tokens; use sample.with_target_tokens(...).")
        if prompt_ids is None:
            prompt_ids = sample.prompt_ids.expand(images.shape[0], -1)
        _check_prompt_ids(prompt_ids, images.shape[0], sample)
        size = batch_size or self.batch_size
        chunks = [
            self._score_chunk(
                images[start : start + size], sample, prompt_ids[start : start + size]
            )
            for start in range(0, images.shape[0], size)
        ]
        return torch.cat(chunks, dim=0).to(images.device)

    def _check_images(self, images: torch.Tensor, sample: PreparedSample) -> None:
        if not isinstance(images, torch.Tensor | RegionSubsets) or images.ndim != 4:
            raise ValueError(
                "images must be a (B, 3, H, W) tensor; got "
                f"{getattr(images, 'shape', type(images).__name__)}."
            )
        if images.shape[1:] != sample.image.shape[1:]:
            raise ValueError(
                f"images have shape {tuple(images.shape[1:])} per image but the sample was "
                f"prepared at {tuple(sample.image.shape[1:])}; perturb sample.image."
            )
        if isinstance(images, torch.Tensor):  # RegionSubsets are built from a checked image
            check_pixels(images)

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
        answer_inputs = self.adapter.answer_token_inputs(sample.token_inputs, last)
        for key, value in sample.token_inputs.items():
            extended = torch.cat([value[0], answer_inputs[key]])
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
        check_int("max_new_tokens", max_new_tokens, least=1)
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
                max_new_tokens=int(max_new_tokens),
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
