r"""Deprecated: use :mod:`captum_eagle.run` (this alias goes in the next release).

``from captum_eagle.runner import run, RunConfig, ...`` and ``python -m captum_eagle.runner`` keep
working with a ``DeprecationWarning``.
"""

from __future__ import annotations

import sys
from typing import Any

from captum_eagle._deprecation import warn_deprecated


def __getattr__(name: str) -> Any:
    import captum_eagle.run as package

    if name in package.__all__:
        warn_deprecated(f"captum_eagle.runner.{name}", f"captum_eagle.run.{name}")
        return getattr(package, name)
    if name == "METHODS":
        from captum_eagle import baselines

        warn_deprecated(
            "captum_eagle.runner.METHODS", "captum_eagle.baselines.get_method / list_methods"
        )
        return {method: baselines.get_method(method) for method in baselines.list_methods()}
    raise AttributeError(f"module 'captum_eagle.runner' has no attribute {name!r}")


if __name__ == "__main__":
    from captum_eagle.run import main

    warn_deprecated("python -m captum_eagle.runner", "python -m captum_eagle.run", stacklevel=1)
    sys.exit(main())
