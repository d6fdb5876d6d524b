"""The README's commands and its Quickstart snippet are what CI and users actually run."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command() -> None:
    test_command = next(b.strip() for b in _blocks("bash") if "pytest" in b)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines
    assert test_command.startswith("python -m pip install -q torch==2.13.0 &&")


def test_demo_command_installs_then_runs_the_cli() -> None:
    demo = next(b.strip() for b in _blocks("bash") if "captum-eagle explain" in b)
    assert demo.startswith("python -m pip install -q torch==2.13.0 &&")
    assert "--out demo.png" in demo


def test_quickstart_snippet_runs(capsys) -> None:
    snippet = _blocks("python")[0]
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    result, sample = namespace["result"], namespace["sample"]
    assert sorted(result.order.tolist()) == list(range(namespace["mask"].n_regions))
    assert namespace["saliency"].shape == sample.image.shape
    assert "True" in capsys.readouterr().out
