r"""Which token should replace a removed prompt word? (numbers in ``captum_eagle/text_features.py``)

On the bundled shapes model, for yes/no questions ``"is there a <colour> <shape>?"`` about
generated scenes (half present, half absent objects), remove one prompt word at a time and measure
how far the probability of the model's own answer (its first token) moves, ``|Δ p|``, under each
removal: the word's token replaced by ``<pad>``, by ``<unk>``, by the neutral word ``"the"``, or
deleted (later positions shift by one). A good baseline moves ``p`` little for the uninformative
words (``is``, ``there``, ``a``, ``?``) and a lot for the asked colour and shape.

    python benchmarks/text_baseline.py --questions 24
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from captum_eagle import MLLMForwardWrapper
from captum_eagle.text_features import prompt_features, text_baseline_id
from captum_eagle.zoo import generate_scene, load_default_model

BASELINES = ("pad", "unk", "the")


def questions(n: int) -> list[tuple[object, object]]:
    """``n`` (scene, question) pairs, alternating present and absent objects."""
    found: dict[str, list] = {"yes": [], "no": []}
    seed = 0
    while min(len(found["yes"]), len(found["no"])) < n // 2:
        scene = generate_scene(seed, kind="plain")
        for answer in found:
            match = [q for q in scene.questions if q.answer == answer]
            if match and len(found[answer]) < n // 2:
                found[answer].append((scene, match[0]))
        seed += 1
    return [pair for pairs in zip(found["yes"], found["no"], strict=True) for pair in pairs]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=24)
    args = parser.parse_args()
    wrapper = MLLMForwardWrapper(*load_default_model())
    deltas: dict[str, dict[bool, list[float]]] = {
        name: {True: [], False: []} for name in (*BASELINES, "delete")
    }
    for scene, question in questions(args.questions):
        sample = wrapper.prepare(scene.pil(), question.text, max_new_tokens=1)
        full = float(wrapper.token_probabilities(sample.image, sample)[0, 0])
        for feature in prompt_features(wrapper.tokenizer, sample):
            informative = feature.text in (question.colour, question.shape)
            for name in BASELINES:
                ids = sample.prompt_ids.clone()
                ids[0, list(feature.positions)] = text_baseline_id(wrapper.tokenizer, name)
                p = float(wrapper.token_probabilities(sample.image, sample, prompt_ids=ids)[0, 0])
                deltas[name][informative].append(abs(p - full))
            keep = [i for i in range(sample.prompt_ids.shape[1]) if i not in feature.positions]
            shorter = replace(sample, prompt_ids=sample.prompt_ids[:, keep])
            p = float(wrapper.token_probabilities(sample.image, shorter)[0, 0])
            deltas["delete"][informative].append(abs(p - full))
    print("| baseline | uninformative words | asked colour / shape | ratio |")
    print("|---|---|---|---|")
    for name, cells in deltas.items():
        low = sum(cells[False]) / len(cells[False])
        high = sum(cells[True]) / len(cells[True])
        print(
            f"| {name} | {low:.3f} (n={len(cells[False])}) | {high:.3f} (n={len(cells[True])}) "
            f"| {high / low:.1f} |"
        )


if __name__ == "__main__":
    main()
