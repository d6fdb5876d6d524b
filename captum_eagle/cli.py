r"""The ``captum-eagle`` command.

``captum-eagle explain [IMAGE] --out out.png [--json out.json]`` explains which image regions made
a multimodal LLM write each word of its answer, and draws the summary figure
(:func:`captum_eagle.viz.plot_explanation`). Without ``IMAGE`` it explains a generated scene
(seeded) with the bundled shapes model, offline (about 30 s on a two-core CPU). With
``--text-features words`` (or prompt character spans ``0:5,10:14``) the prompt's words are
ordered together with the regions and the figure is :func:`captum_eagle.viz.plot_joint`.

``captum-eagle run MANIFEST --out DIR ...`` runs a whole data set (see :mod:`captum_eagle.run`;
also ``python -m captum_eagle.run``).

The command only parses arguments and calls the package; every bad input (an unknown name, a
setting out of range, a missing file) ends with one line on stderr and exit code 2, no traceback.

Examples::

    captum-eagle explain --out demo.png --json demo.json
    captum-eagle explain photo.jpg --prompt "Describe the image." \
        --model llava-hf/llava-1.5-7b-hf --regions 64 --out photo.png
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from captum_eagle.joint import JointResult
from captum_eagle.registry import UnknownNameError
from captum_eagle.run import RunConfig, RunnerError, list_methods, merge, run
from captum_eagle.run.config import POINTING
from captum_eagle.run.shards import loading_progress
from captum_eagle.run.store import eagle_record
from captum_eagle.search import get_search, list_searches
from captum_eagle.text_features import TextFeatureSpec, parse_text_features

__all__ = [
    "DEFAULT_MODEL_BATCH_SIZE",
    "DEFAULT_MODEL_THREADS",
    "DEFAULT_REGIONS",
    "CommandError",
    "explain",
    "main",
    "run_command",
]

#: Default number of SLICO regions of ``captum-eagle explain``, the paper's 64. The exact search
#: costs about ``N (N + 1)`` forwards; with the bundled model (batch 128, one thread) the whole
#: demo command took about 30 s on a shared two-core CPU.
DEFAULT_REGIONS = 64

#: Batch size of the bundled model's forwards (one exact-search step at 64 regions is 128 images).
#: Measured on the shared two-core CPU: with one thread, batches of 16 to 128 cost the same
#: (3.0-3.3 ms of CPU per image); with two threads, 128 cost 10.8 ms per image against 24.5 at 16.
DEFAULT_MODEL_BATCH_SIZE = 128

#: CPU threads for the bundled model. Measured on the shared two-core CPU: the default demo took
#: 29-32 s with one torch thread against 120-130 s with two (its matrices are too small to split,
#: and two threads spin-wait for each other on a busy machine).
DEFAULT_MODEL_THREADS = 1

_PROG = "captum-eagle"


class CommandError(Exception):
    """A user error the command reports in one line (exit code 2), without a traceback."""


USER_ERRORS: tuple[type[Exception], ...] = (
    CommandError,
    RunnerError,
    ValueError,
    TypeError,
    OSError,
)
"""Errors the command reports in one line (``UnknownNameError`` is a ``ValueError``,
``FileNotFoundError`` an ``OSError``)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``prog: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _report(command: str, error: Exception) -> int:
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    print(f"{_PROG} {command}: error: {message}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_PROG,
        description="Eagle attribution for multimodal LLMs: which image regions made the model "
        "write each word of its answer.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explain_parser = commands.add_parser(
        "explain",
        help="explain one image and write a PNG summary (and optionally JSON)",
        description="Explain one image: greedy Eagle search over SLICO regions, then a PNG with "
        "the image, the attribution overlay, the insertion/deletion curves and the per-token "
        "influence bars. Without IMAGE, a generated scene is explained with the bundled model.",
    )
    explain_parser.add_argument(
        "image",
        nargs="?",
        metavar="IMAGE",
        help="image file (default: a generated scene, see --seed and --scene)",
    )
    explain_parser.add_argument(
        "--prompt",
        help="question or instruction (default with --model default: the caption prompt)",
    )
    explain_parser.add_argument(
        "--target",
        help="answer text to explain (default: the model's own greedy answer)",
    )
    explain_parser.add_argument(
        "--model",
        default="default",
        help="'default' (the bundled shapes model), a Hugging Face id already in the local "
        "cache, or a local folder (default: %(default)s)",
    )
    explain_parser.add_argument(
        "--regions",
        type=int,
        default=DEFAULT_REGIONS,
        help="number of SLICO regions requested (default: %(default)s)",
    )
    explain_parser.add_argument(
        "--search",
        default="exact",
        choices=list_searches(),
        help="search strategy (default: %(default)s)",
    )
    explain_parser.add_argument(
        "--batch-size",
        type=_batch_size,
        help="images per model forward, or 'auto' (measured while searching). Default: "
        f"{DEFAULT_MODEL_BATCH_SIZE} with the bundled model, 'auto' with any other",
    )
    explain_parser.add_argument(
        "--threads",
        type=int,
        help=f"CPU threads of torch. Default: {DEFAULT_MODEL_THREADS} with the bundled model, "
        "torch's default with any other",
    )
    explain_parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the generated scene and of randomised searches (default: %(default)s)",
    )
    explain_parser.add_argument(
        "--scene",
        default="plain",
        help="kind of generated scene without IMAGE: plain, redundant, partial_match, crowded "
        "(default: %(default)s)",
    )
    explain_parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=32,
        help="answer length when no --target is given (default: %(default)s)",
    )
    explain_parser.add_argument(
        "--text-features",
        help="also attribute to the prompt: 'words' (every word) or character spans of the "
        "prompt '0:5,10:14'; the PNG then shows the image heatmap, the prompt words shaded by "
        "score and the image / prompt reliance of each answer token",
    )
    explain_parser.add_argument("--out", required=True, help="PNG file to write")
    explain_parser.add_argument("--json", help="JSON file to write (order, gains, tokens, ...)")
    explain_parser.add_argument("--dpi", type=int, default=90, help="PNG resolution (default: 90)")
    explain_parser.add_argument(
        "--no-progress", action="store_true", help="do not show the progress bar"
    )
    commands.add_parser(
        "run",
        add_help=False,
        help="explain every sample of a JSONL manifest (see `captum-eagle run --help`)",
    )
    return parser


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from error


def _run_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"{_PROG} run",
        description=(
            "Explain every sample of a JSONL manifest (resumable; shard it with torchrun "
            "--nproc_per_node N -m captum_eagle.run ...), then merge the metrics into tables."
        ),
    )
    parser.add_argument("manifest", nargs="?", help="JSONL manifest (see captum_eagle.datasets)")
    parser.add_argument("--out", help="output folder (a rerun resumes it)")
    parser.add_argument(
        "--merge", nargs="+", metavar="DIR", help="only merge these run folders into a table"
    )
    parser.add_argument(
        "--model", default="default", help="'default' (shapes model) or a HF id / local path"
    )
    defaults = RunConfig()
    parser.add_argument("--method", default=defaults.method, choices=list_methods())
    parser.add_argument("--regions", type=int, default=defaults.regions, help="SLICO regions")
    parser.add_argument("--search", default=defaults.search, choices=list_searches())
    parser.add_argument("--batch-size", type=_batch_size, help="images per forward, or 'auto'")
    parser.add_argument("--steps", type=int, help="insertion/deletion steps (default: regions)")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--n-samples", type=int, help="Lime/KernelShap/Shapley sample budget")
    parser.add_argument("--ig-steps", type=int, default=defaults.ig_steps)
    parser.add_argument("--pointing", choices=POINTING, default=defaults.pointing)
    parser.add_argument("--baseline", type=float, default=defaults.baseline)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--text-features", help="joint mode (Eagle): 'words' or prompt spans '0:5,10:14'"
    )
    parser.add_argument(
        "--max-samples", type=int, help="stop after this many samples per process (resume later)"
    )
    parser.add_argument(
        "--retry-errors", action="store_true", help="explain again samples recorded as errors"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_command(argv: list[str] | None = None) -> int:
    r"""The ``captum-eagle run`` command (also ``python -m captum_eagle.run``).

    Every setting is checked (:class:`~captum_eagle.run.RunConfig`) before the model loads.

    Args:
        argv (list of str, optional): the arguments after ``run``. Default: ``sys.argv[1:]``.

    Returns:
        int: 0 when the run finished (per-sample errors are recorded, not fatal); 2 when it
        cannot start (one line on stderr).
    """
    parser = _run_parser()
    args = parser.parse_args(argv)
    if not args.merge and (not args.manifest or not args.out):
        parser.error("give MANIFEST and --out DIR (or --merge DIR ...)")
    try:
        if args.merge:
            print(merge(args.merge, write_to=args.out)["markdown"], end="")
            return 0
        config = RunConfig(**{name: getattr(args, name) for name in RunConfig.__dataclass_fields__})
        summary = run(
            args.manifest,
            args.out,
            model=args.model,
            config=config,
            max_samples=args.max_samples,
            retry_errors=args.retry_errors,
            show_progress=not args.no_progress,
        )
    except USER_ERRORS as error:
        return _report("run", error)
    print(
        f"[rank {summary.rank}/{summary.world_size}] {summary.finished} explained, "
        f"{summary.errors} errors, {summary.skipped} already done, {summary.remaining} left",
        file=sys.stderr,
    )
    if summary.tables is not None:
        print(summary.tables["markdown"], end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    r"""Entry point of the ``captum-eagle`` command.

    Args:
        argv (list of str, optional): the arguments after the program name. Default:
            ``sys.argv[1:]``.

    Returns:
        int: 0 on success, 2 on a user error (one line on stderr, no traceback).

    Examples::

        >>> from captum_eagle.cli import main
        >>> main(["explain", "--regions", "8", "--out", "demo.png"])  # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        return run_command(argv[1:])
    args = _parser().parse_args(argv)
    try:
        summary = explain(
            image=args.image,
            prompt=args.prompt,
            target=args.target,
            model=args.model,
            regions=args.regions,
            search=args.search,
            batch_size=args.batch_size,
            threads=args.threads,
            seed=args.seed,
            scene=args.scene,
            max_new_tokens=args.max_new_tokens,
            out=args.out,
            json_out=args.json,
            dpi=args.dpi,
            show_progress=not args.no_progress,
            text_features=args.text_features,
        )
    except USER_ERRORS as error:
        return _report("explain", error)
    result = summary["result"]
    joint = summary.get("joint")
    top = "features" if joint else "regions"
    print(
        f"answer: {result['answer']!r}\n"
        f"top {top}: {result['order'][:5]} of {len(result['order'])}; "
        f"{result['forwards']} forwards in {result['seconds']:.1f} s\n"
        + (f"image reliance per token: {joint['reliance']}\n" if joint else "")
        + f"wrote {args.out}"
        + (f" and {args.json}" if args.json else "")
    )
    return 0


def explain(
    image: str | Path | None = None,
    prompt: str | None = None,
    target: str | None = None,
    model: str = "default",
    regions: int = DEFAULT_REGIONS,
    search: str = "exact",
    batch_size: int | str | None = None,
    threads: int | None = None,
    seed: int = 0,
    scene: str = "plain",
    max_new_tokens: int = 32,
    out: str | Path = "explanation.png",
    json_out: str | Path | None = None,
    dpi: int = 90,
    show_progress: bool = True,
    text_features: str | None = None,
) -> dict[str, Any]:
    r"""What ``captum-eagle explain`` does, callable from Python.

    Args:
        image (str or Path, optional): image file; ``None`` explains a generated scene.
        prompt (str, optional): the prompt; required unless ``model="default"``.
        target (str, optional): answer text to explain; default: the model's greedy answer.
        model (str): ``"default"``, a cached Hugging Face id, or a local folder.
        regions (int): SLICO regions requested (at least 2).
        search (str): search strategy name.
        batch_size (int or str, optional): images per forward, or ``"auto"`` (measured while
            searching). Default: :data:`DEFAULT_MODEL_BATCH_SIZE` with the bundled model,
            ``"auto"`` with any other.
        threads (int, optional): torch CPU threads while explaining (restored afterwards).
            Default: :data:`DEFAULT_MODEL_THREADS` with the bundled model, unchanged otherwise.
        seed (int): scene seed (and seed of randomised searches).
        scene (str): kind of generated scene.
        max_new_tokens (int): answer length when no target is given.
        out (str or Path): the PNG to write.
        json_out (str or Path, optional): the JSON to write.
        dpi (int): PNG resolution.
        show_progress (bool): tqdm progress bar on stderr.
        text_features (str, optional): ``"words"`` or prompt character spans ``"0:5,10:14"``:
            order the image regions and these prompt features together
            (:func:`captum_eagle.joint.explain_joint`) and draw
            :func:`captum_eagle.viz.plot_joint`. Default: image regions only.

    Returns:
        dict: the JSON content: ``image``, ``model``, ``prompt``, ``requested_regions`` and
        ``result``, the :class:`~captum_eagle.EagleResult` as :meth:`EagleResult.to_dict` writes
        it (``answer``, ``target_tokens``, ``order``, ``gains``, ``influence``, ``forwards``, ...).
        With ``text_features``, ``result`` is the joint search's (feature ids: regions, then
        prompt features) and ``joint`` holds the :class:`~captum_eagle.joint.JointResult`
        without it (``feature_kinds``, ``text_features``, ``reliance``).

    Raises:
        CommandError: for a missing or unreadable image, a model not available offline,
            ``regions < 2`` and other bad input, with a message naming the fix.
        UnknownNameError: an unknown ``search``.
    """
    if regions < 2:
        raise CommandError(f"--regions must be at least 2 (got {regions}).")
    spec = None if text_features is None else parse_text_features(text_features)
    for option, value in (("--dpi", dpi), ("--max-new-tokens", max_new_tokens)):
        if value < 1:
            raise CommandError(f"{option} must be at least 1 (got {value}).")
    if search not in list_searches():
        raise UnknownNameError("search strategy", search, list_searches())
    if batch_size is None:
        batch_size = DEFAULT_MODEL_BATCH_SIZE if model == "default" else "auto"
    if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
        raise CommandError(f"--batch-size must be at least 1 (got {batch_size}).")
    for path in (out, json_out):
        if path is not None and not Path(path).parent.is_dir():
            raise CommandError(f"cannot write {path}: folder {Path(path).parent} does not exist.")
    if threads is None and model == "default":
        threads = DEFAULT_MODEL_THREADS
    if threads is not None and threads < 1:
        raise CommandError(f"--threads must be at least 1 (got {threads}).")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _explain(
            image=image,
            prompt=prompt,
            target=target,
            model=model,
            regions=regions,
            search=search,
            batch_size=batch_size,
            seed=seed,
            scene=scene,
            max_new_tokens=max_new_tokens,
            out=out,
            json_out=json_out,
            dpi=dpi,
            show_progress=show_progress,
            text_features=spec,
        )
    finally:
        torch.set_num_threads(previous_threads)


def _explain(
    *,
    image: str | Path | None,
    prompt: str | None,
    target: str | None,
    model: str,
    regions: int,
    search: str,
    batch_size: int | str,
    seed: int,
    scene: str,
    max_new_tokens: int,
    out: str | Path,
    json_out: str | Path | None,
    dpi: int,
    show_progress: bool,
    text_features: TextFeatureSpec | None,
) -> dict[str, Any]:
    from captum_eagle.attribution import EagleAttribution, EagleResult
    from captum_eagle.masks import FeatureMask

    picture, source = _load_image(image, seed, scene)
    with loading_progress(show_progress):
        wrapper, prompt = _load_model(model, prompt, batch_size)
    strategy = _strategy(search, seed)
    try:
        sample = wrapper.prepare(picture, prompt, target, max_new_tokens=max_new_tokens)
    except ValueError as error:
        raise CommandError(str(error).splitlines()[0]) from error
    mask = FeatureMask.slico(sample.image, n_segments=regions)
    if mask.n_regions < 2:
        raise CommandError(
            f"SLICO found a single region in this {tuple(sample.image.shape[-2:])} image; "
            "ask for more --regions."
        )
    eagle = EagleAttribution(wrapper)
    arguments: dict[str, Any] = {
        "additional_forward_args": (sample,),
        "feature_mask": mask,
        "search": strategy,
        "batch_size": batch_size,
        "show_progress": show_progress,
    }
    summary: dict[str, Any] = {
        "image": source,
        "model": model,
        "prompt": prompt,
        "requested_regions": regions,
    }
    result: EagleResult | JointResult
    if text_features is None:
        result = eagle.explain(sample.image, **arguments)
        summary["result"] = eagle_record(result)
    else:
        result = eagle.explain_joint(sample.image, text_features, **arguments)
        joint = result.to_dict()
        summary["result"], summary["joint"] = joint.pop("eagle"), joint
    _write_png(result, sample, out, dpi)
    if json_out is not None:
        _write(json_out, lambda path: path.write_text(json.dumps(summary, indent=1)))
    return summary


def _load_image(image: str | Path | None, seed: int, scene: str) -> tuple[Any, str]:
    if image is None:
        from captum_eagle.zoo import SCENE_KINDS, generate_scene

        if scene not in SCENE_KINDS:
            raise CommandError(f"unknown --scene {scene!r}; choose one of {list(SCENE_KINDS)}.")
        return generate_scene(seed, kind=scene).image, f"generated {scene} scene, seed {seed}"
    from PIL import Image, UnidentifiedImageError

    path = Path(image)
    if not path.is_file():
        raise CommandError(f"image file not found: {path} (check the path, or omit IMAGE).")
    try:
        with Image.open(path) as opened:
            picture = np.asarray(opened.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise CommandError(
            f"cannot read image {path}: not an image Pillow can decode "
            f"({type(error).__name__}); pass a PNG, JPEG or other image file."
        ) from error
    return picture, str(path)


def _load_model(model: str, prompt: str | None, batch_size: int | str) -> tuple[Any, str]:
    from captum_eagle.wrapper import MLLMForwardWrapper

    options: dict[str, Any] = {} if batch_size == "auto" else {"batch_size": batch_size}
    if model == "default":
        from captum_eagle.zoo import DEFAULT_CAPTION_PROMPT, load_default_model

        try:
            network, processor = load_default_model()
        except FileNotFoundError as error:
            raise CommandError(str(error).splitlines()[0]) from error
        return MLLMForwardWrapper(network, processor, **options), prompt or DEFAULT_CAPTION_PROMPT
    if not prompt:
        raise CommandError(f"--prompt is required with --model {model}.")
    try:
        wrapper = MLLMForwardWrapper.from_pretrained(model, local_files_only=True, **options)
    except OSError as error:
        if Path(model).is_dir():
            raise CommandError(
                f"cannot load the model in folder {model}: {str(error).splitlines()[0]}"
            ) from error
        raise CommandError(
            f"model {model!r} is not available offline (not a local folder, not in the Hugging "
            f"Face cache); on a machine with internet run `huggingface-cli download {model}`, "
            "or pass a local folder."
        ) from error
    except ValueError as error:
        raise CommandError(f"cannot use model {model!r}: {str(error).splitlines()[0]}") from error
    return wrapper, prompt


def _strategy(search: str, seed: int) -> Any:
    strategy = get_search(search)
    if "seed" in inspect.signature(type(strategy)).parameters:
        strategy = get_search(search, seed=seed)
    return strategy


def _write_png(result: Any, sample: Any, out: str | Path, dpi: int) -> None:
    from captum_eagle.viz import plot_explanation

    fig, _ = (
        result.show(sample) if isinstance(result, JointResult) else plot_explanation(result, sample)
    )
    _write(out, lambda path: fig.savefig(path, dpi=dpi))


def _write(target: str | Path, write: Any) -> None:
    path = Path(target)
    try:
        write(path)
    except OSError as error:
        raise CommandError(f"cannot write {path}: {error.strerror or error}.") from error


if __name__ == "__main__":
    sys.exit(main())
