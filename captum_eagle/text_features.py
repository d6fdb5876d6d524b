r"""Prompt features: the words (or user-given spans) of a prompt and their token positions.

A text feature is a piece of the user's prompt (``sample.prompt``) and the positions of its tokens
in ``sample.prompt_ids``. The chat template, the system prompt and the image placeholder are never
features: only characters of the user's prompt are, and tokens that are special tokens (the image
token and its expansion among them) are skipped. Positions are found by tokenising the templated
``sample.prompt_text`` with character offsets and aligning its token ids with ``sample.prompt_ids``
(in which the processor expanded the image token into many positions, so indices shift).

A removed feature is not deleted: its tokens are replaced by one baseline token, so every other
token keeps its position (the image tokens and the answer included), the batch keeps one length
and the model sees the same template.

Which baseline token: measured on the bundled shapes model (``captum_eagle.zoo``) with
``benchmarks/text_baseline.py`` (2026-12-03, CPU) over 24 yes/no questions
``"is there a <colour> <shape>?"`` about generated scenes (12 present objects, 12 absent), with the
model's own first answer token as target. One word is removed at a time; each cell is the mean
``|Δ p(answer)|`` over the removals. Uninformative words are ``is``, ``there``, ``a`` and ``?``
(96 removals); informative words are the asked colour and shape (48 removals):

==========================  ====================  ====================  =====
removed word becomes        uninformative words   asked colour / shape  ratio
==========================  ====================  ====================  =====
``"pad"`` (``<pad>``)       0.004                 0.245                 67
``"unk"`` (``<unk>``)       0.007                 0.245                 34
neutral word ``"the"``      0.151                 0.333                 2.2
deleted (positions shift)   0.001                 0.244                 195
==========================  ====================  ====================  =====

Deletion disturbs uninformative words least, but it changes the sequence length, so subsets of
one search step could no longer share a batch without padding and explicit position ids; among
the same-length choices the pad token is best (it moves ``p`` 60× more for the asked words than
for filler), ``<unk>`` is close, and a "neutral" word is not neutral (the model reads ``the`` as
content). The default is therefore ``"pad"``; ``text_baseline=`` takes ``"unk"``, a one-token word
or a token id. These numbers are for the shapes model only: on a real checkpoint whose pad token
is an untrained added token, measure again (the script needs only a wrapper and questions).

Examples::

    >>> from PIL import Image
    >>> from captum_eagle import MLLMForwardWrapper
    >>> from captum_eagle.testing import tiny_model
    >>> from captum_eagle.text_features import prompt_features
    >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
    >>> sample = wrapper.prepare(Image.new("RGB", (32, 32)), "is there a red circle?", "yes")
    >>> [(f.text, f.start, f.end) for f in prompt_features(wrapper.tokenizer, sample)][:3]
    [('is', 0, 2), ('there', 3, 8), ('a', 9, 10)]
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from captum_eagle.wrapper import PreparedSample

#: The default baseline token of a removed prompt feature (see the module docstring).
DEFAULT_TEXT_BASELINE = "pad"

#: What ``text_features`` accepts: ``"words"``, or a list of character ranges ``(start, end)`` of
#: ``sample.prompt`` and/or ``range`` objects of word indices (``range(2, 4)``: words 2 and 3).
TextFeatureSpec = str | Sequence[tuple[int, int] | range]

_WORD = re.compile(r"\w+|[^\w\s]+")


@dataclass(frozen=True)
class TextFeature:
    r"""One prompt feature.

    Attributes:
        text (str): the feature's text, ``sample.prompt[start:end]``.
        start (int): first character in ``sample.prompt``.
        end (int): one past the last character in ``sample.prompt``.
        positions (tuple[int, ...]): its token indices in ``sample.prompt_ids[0]``.
    """

    text: str
    start: int
    end: int
    positions: tuple[int, ...]


def prompt_words(prompt: str) -> list[tuple[int, int]]:
    r"""Character ranges of the words of ``prompt``: runs of word characters, and runs of
    punctuation, each its own word (``"is it red?"`` → ``is``, ``it``, ``red``, ``?``).

    Examples::

        >>> prompt_words("is it red?")
        [(0, 2), (3, 5), (6, 9), (9, 10)]
    """
    return [match.span() for match in _WORD.finditer(prompt)]


def prompt_features(
    tokenizer: Any, sample: PreparedSample, text_features: TextFeatureSpec = "words"
) -> list[TextFeature]:
    r"""Map the words (or given spans) of ``sample.prompt`` to their positions in ``prompt_ids``.

    Args:
        tokenizer: the model's fast tokenizer (``wrapper.tokenizer``); it must return character
            offsets (``return_offsets_mapping=True``).
        sample (PreparedSample): from :meth:`MLLMForwardWrapper.prepare`.
        text_features (str or list): ``"words"`` (default): every word of the prompt (words that
            share a token are merged into one feature; words inside special tokens such as an
            image placeholder are skipped). Or a list of non-overlapping character ranges
            ``(start, end)`` of ``sample.prompt`` and/or ``range`` objects of word indices
            (``range(0, 2)`` is the first two words), Captum-style.

    Returns:
        list[TextFeature]: in prompt order.

    Raises:
        TypeError: the tokenizer gives no character offsets (a slow tokenizer), or a span is not a
            pair of ints or a range.
        ValueError: the prompt is not found in the templated prompt (or more than once), nothing
            is left to attribute, or spans overlap, fall outside the prompt, cover a special token
            or share a token.
    """
    if not isinstance(sample, PreparedSample):
        raise TypeError(
            f"sample must be a PreparedSample from wrapper.prepare(...); got {type(sample)}."
        )
    offset = _locate_prompt(sample)
    words = prompt_words(sample.prompt)
    user_spans = not (isinstance(text_features, str) and text_features == "words")
    spans = _resolve_spans(text_features, sample.prompt, words) if user_spans else words
    tokens = _prompt_tokens(tokenizer, sample, offset)
    special = [(start, end) for start, end, position in tokens if position is None]
    features: list[TextFeature] = []
    for start, end in spans:
        if any(s < end and start < e for s, e in special):
            if user_spans:
                raise ValueError(
                    f"The span ({start}, {end}) {sample.prompt[start:end]!r} covers a special "
                    "token (e.g. the image placeholder); give spans of plain prompt text."
                )
            continue
        positions = tuple(p for s, e, p in tokens if p is not None and s < end and start < e)
        if not positions:
            raise ValueError(
                f"The span ({start}, {end}) {sample.prompt[start:end]!r} holds no token of the "
                "prompt; give spans that cover text."
            )
        features.append(TextFeature(sample.prompt[start:end], start, end, positions))
    if not features:
        raise ValueError(
            f"The prompt {sample.prompt!r} has no word left to attribute once the chat template "
            "and special tokens are excluded; ask a question in words."
        )
    return _merge_shared_tokens(features, sample.prompt, user_spans)


def parse_text_features(text: str) -> TextFeatureSpec:
    r"""A ``text_features`` value from its command-line / manifest form.

    ``"words"`` stays ``"words"``; ``"0:5,10:14"`` becomes the character spans
    ``[(0, 5), (10, 14)]`` of the prompt (checked against the prompt later, by
    :func:`prompt_features`).

    Raises:
        ValueError: anything else, with the accepted forms.

    Examples::

        >>> parse_text_features("words"), parse_text_features("0:5, 10:14")
        ('words', [(0, 5), (10, 14)])
    """
    if not isinstance(text, str):
        raise TypeError(
            f"text_features must be a string such as 'words' or '0:5,10:14'; got {text!r}."
        )
    if text.strip() == "words":
        return "words"
    spans = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", part)
        if match is None:
            raise ValueError(
                f"text features {text!r}: expected 'words' or character spans of the prompt "
                "'start:end,start:end' (e.g. '0:5,10:14')."
            )
        spans.append((int(match[1]), int(match[2])))
    return spans


def text_baseline_id(tokenizer: Any, text_baseline: str | int = DEFAULT_TEXT_BASELINE) -> int:
    r"""The token id that replaces a removed prompt feature.

    Args:
        tokenizer: the model's tokenizer.
        text_baseline (str or int): ``"pad"`` (default), ``"unk"``, any text that is exactly one
            token of the vocabulary (e.g. ``"the"``), or a token id.

    Examples::

        >>> from captum_eagle.testing import tiny_model
        >>> tokenizer = tiny_model("llava")[1].tokenizer
        >>> text_baseline_id(tokenizer, "pad"), text_baseline_id(tokenizer, "unk")
        (0, 1)
    """
    if isinstance(text_baseline, bool) or not isinstance(text_baseline, str | int):
        raise TypeError(
            f"text_baseline must be 'unk', 'pad', a one-token string or a token id; got "
            f"{type(text_baseline).__name__}."
        )
    if isinstance(text_baseline, int):
        if not 0 <= text_baseline < len(tokenizer):
            raise ValueError(
                f"text_baseline id {text_baseline} is outside the vocabulary "
                f"(0..{len(tokenizer) - 1})."
            )
        return text_baseline
    if text_baseline in ("pad", "unk"):
        token_id = getattr(tokenizer, f"{text_baseline}_token_id")
        if token_id is None:
            raise ValueError(
                f"The tokenizer has no {text_baseline} token; pass text_baseline='unk' / 'pad' "
                "(whichever it has), a one-token word or a token id."
            )
        return int(token_id)
    ids = tokenizer(text_baseline, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ValueError(
            f"text_baseline {text_baseline!r} is {len(ids)} tokens "
            f"({tokenizer.convert_ids_to_tokens(ids)}); pass a word that is one known token."
        )
    return int(ids[0])


def feature_positions(features: Sequence[TextFeature], length: int) -> torch.Tensor:
    r"""``(N_txt, L)`` bool: which prompt positions each feature covers."""
    matrix = torch.zeros(len(features), length, dtype=torch.bool)
    for index, feature in enumerate(features):
        matrix[index, list(feature.positions)] = True
    return matrix


def masked_prompt_ids(
    prompt_ids: torch.Tensor, positions: torch.Tensor, present: torch.Tensor, baseline_id: int
) -> torch.Tensor:
    r"""Prompt ids ``(K, L)`` in which the absent features' tokens are the baseline token.

    Args:
        prompt_ids (Tensor): ``(1, L)`` the sample's prompt ids.
        positions (Tensor): ``(N_txt, L)`` bool from :func:`feature_positions`.
        present (Tensor): ``(K, N_txt)`` bool, the features each row keeps.
        baseline_id (int): from :func:`text_baseline_id`.

    Examples::

        >>> import torch
        >>> positions = torch.tensor([[False, True, False], [False, False, True]])
        >>> present = torch.tensor([[True, False]])
        >>> masked_prompt_ids(torch.tensor([[7, 8, 9]]), positions, present, baseline_id=0)
        tensor([[7, 8, 0]])
    """
    removed = ((~present).to(torch.float32) @ positions.to(torch.float32)) > 0
    return torch.where(removed, torch.full_like(removed, baseline_id, dtype=torch.long), prompt_ids)


def _locate_prompt(sample: PreparedSample) -> int:
    found = [m.start() for m in re.finditer(re.escape(sample.prompt), sample.prompt_text)]
    if len(found) != 1:
        where = "is not in" if not found else f"occurs {len(found)} times in"
        raise ValueError(
            f"The prompt {sample.prompt!r} {where} the templated prompt {sample.prompt_text!r}, "
            "so its words cannot be told from the template's; prepare the sample with a prompt "
            "the chat template keeps verbatim and that is not part of the template."
        )
    return found[0]


def _prompt_tokens(
    tokenizer: Any, sample: PreparedSample, offset: int
) -> list[tuple[int, int, int | None]]:
    """Tokens overlapping the prompt: ``(start, end, position)`` in prompt characters and
    ``prompt_ids`` positions; ``position`` is ``None`` for special tokens."""
    no_offsets = TypeError(
        f"{type(tokenizer).__name__} cannot map words to tokens (it returns no character "
        "offsets: return_offsets_mapping is unsupported, as in slow tokenizers); load the fast "
        "tokenizer (AutoProcessor.from_pretrained(..., use_fast=True)) or pass a "
        "PreTrainedTokenizerFast."
    )
    try:
        encoded = tokenizer(
            sample.prompt_text, add_special_tokens=False, return_offsets_mapping=True
        )
    except (NotImplementedError, ValueError) as error:
        raise no_offsets from error
    if "offset_mapping" not in encoded:
        raise no_offsets
    text_ids = list(encoded["input_ids"])
    prompt_ids = sample.prompt_ids[0].tolist()
    aligned: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, text_ids, prompt_ids, autojunk=False)
    for block in matcher.get_matching_blocks():
        aligned.update({block.a + k: block.b + k for k in range(block.size)})
    special = set(tokenizer.all_special_ids)
    tokens: list[tuple[int, int, int | None]] = []
    end_of_prompt = offset + len(sample.prompt)
    for index, (start, end) in enumerate(encoded["offset_mapping"]):
        if end <= offset or start >= end_of_prompt or start == end:
            continue
        if text_ids[index] in special:
            tokens.append((start - offset, end - offset, None))
            continue
        if index not in aligned:
            raise ValueError(
                f"Token {index} {sample.prompt_text[start:end]!r} of the prompt is not in "
                "sample.prompt_ids (the processor tokenised the prompt differently from the "
                "tokenizer); pass spans of the prompt that tokenise the same way."
            )
        tokens.append((start - offset, end - offset, aligned[index]))
    return tokens


def _resolve_spans(
    text_features: Any, prompt: str, words: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    if isinstance(text_features, str) or not isinstance(text_features, Sequence):
        raise TypeError(
            "text_features must be 'words' or a list of (start, end) character ranges and/or "
            f"ranges of word indices; got {text_features!r}."
        )
    if not text_features:
        raise ValueError("text_features is an empty list; pass 'words' or at least one span.")
    spans = []
    for item in text_features:
        if isinstance(item, range):
            if len(item) == 0 or item.step != 1 or item.start < 0 or item.stop > len(words):
                raise ValueError(
                    f"The word range {item} must be a non-empty, step-1 range inside the "
                    f"prompt's {len(words)} words {[prompt[s:e] for s, e in words]}."
                )
            spans.append((words[item.start][0], words[item.stop - 1][1]))
            continue
        if (
            not isinstance(item, tuple | list)
            or len(item) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            raise TypeError(
                f"A text feature span must be a (start, end) pair of ints or a range of word "
                f"indices; got {item!r}."
            )
        start, end = item
        if not 0 <= start < end <= len(prompt):
            raise ValueError(
                f"The span ({start}, {end}) falls outside the prompt {prompt!r} "
                f"(need 0 <= start < end <= {len(prompt)})."
            )
        spans.append((start, end))
    ordered = sorted(spans)
    for (s1, e1), (s2, e2) in itertools.pairwise(ordered):
        if s2 < e1:
            raise ValueError(
                f"The spans ({s1}, {e1}) {prompt[s1:e1]!r} and ({s2}, {e2}) {prompt[s2:e2]!r} "
                "overlap; give each character to one feature at most."
            )
    return ordered


def _merge_shared_tokens(
    features: list[TextFeature], prompt: str, user_spans: bool
) -> list[TextFeature]:
    merged: list[TextFeature] = []
    for feature in features:
        previous = merged[-1] if merged else None
        if previous is None or not set(previous.positions) & set(feature.positions):
            merged.append(feature)
            continue
        if user_spans:
            raise ValueError(
                f"The spans {previous.text!r} and {feature.text!r} share a token, so one cannot "
                "be removed without the other; join them or split at token boundaries."
            )
        merged[-1] = TextFeature(
            prompt[previous.start : feature.end],
            previous.start,
            feature.end,
            tuple(sorted(set(previous.positions) | set(feature.positions))),
        )
    return merged
