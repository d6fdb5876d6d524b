r"""Automatic batch size: the largest batch that pays off, found by measuring real forwards.

:class:`AutoBatchSize` is fed the timing (and on CUDA the peak memory) of the forwards the search
needs anyway, so finding the batch size costs no extra forward:

- **CUDA**: one forward of 1 image and one of ``probe`` images give the memory of the fixed part
  (weights excluded: only what the forward allocates) and the memory per image; the batch is the
  largest that fits the budget (default: 90 % of the memory the device has free, plus what
  PyTorch's allocator holds unused), capped at ``max_batch_size``.
- **CPU** (and any device without memory statistics): the batch doubles from 1 while the measured
  images per second improve by at least ``min_speedup``; it settles on the fastest size.

Either way, an out-of-memory error at batch ``b`` makes the batch ``b // 2`` and the chunk is
retried; at batch 1 the error is raised. Results never depend on the batch size: every image is
scored independently, and the search breaks ties by region id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from captum_eagle.checks import check_int, check_real

__all__ = ["AutoBatchSize", "batch_size_for_memory"]


def batch_size_for_memory(
    one: int, probe: int, probe_size: int, budget: int, max_batch_size: int
) -> int:
    r"""Largest batch whose forward fits ``budget`` bytes, from two measured peaks.

    The forward's extra memory is modelled as ``fixed + per_image · b``, fitted through the peak
    of a batch of 1 (``one`` bytes) and of a batch of ``probe_size`` (``probe`` bytes).

    Args:
        one (int): peak bytes allocated by a forward of 1 image (beyond what was allocated before).
        probe (int): the same for ``probe_size`` images.
        probe_size (int): the second measured batch, > 1.
        budget (int): bytes the forward may allocate.
        max_batch_size (int): upper bound of the answer.

    Returns:
        int: a batch size in ``[1, max_batch_size]``.

    Examples::

        >>> batch_size_for_memory(one=300, probe=900, probe_size=4, budget=2_100, max_batch_size=64)
        10
    """
    if probe_size < 2:
        raise ValueError(f"probe_size must be >= 2; got {probe_size}.")
    per_image = max((probe - one) / (probe_size - 1), 1.0)
    fixed = max(one - per_image, 0.0)
    fits = math.floor((budget - fixed) / per_image)
    return max(1, min(max_batch_size, fits))


@dataclass
class AutoBatchSize:
    r"""Chooses the batch size of :class:`~captum_eagle.objective.SubsetScorer` by measurement.

    Pass ``batch_size="auto"`` (these defaults) or an instance (your budget) to the scorer or to
    ``EagleAttribution.attribute``. The scorer asks :attr:`size` before each forward and reports
    what it measured with :meth:`measure`, or an out-of-memory error with :meth:`out_of_memory`.

    Args:
        max_batch_size (int): never use more images per forward. Default: 256.
        memory_budget (int, optional): bytes a forward may allocate on CUDA (beyond the weights and
            whatever is already allocated). Default: 90 % of the free device memory, measured when
            the batch size is chosen.
        probe_size (int): the second batch measured on CUDA. Default: 4.
        min_speedup (float): on CPU, a doubled batch is kept only if it is this much faster per
            image. Default: 1.1.

    Attributes:
        size (int): the batch size to use next.
        settled (bool): whether the measurement is over.
        history (list[tuple[int, float]]): ``(batch, images per second)`` of the measured forwards.

    Examples::

        >>> sizer = AutoBatchSize(max_batch_size=8)
        >>> sizer.size
        1
        >>> sizer.measure(1, seconds=0.10, peak_bytes=None)
        >>> sizer.measure(2, seconds=0.12, peak_bytes=None)  # 1.7x faster per image: keep growing
        >>> sizer.size
        4
        >>> sizer.out_of_memory(4)
        True
        >>> sizer.size, sizer.settled
        (2, True)
    """

    max_batch_size: int = 256
    memory_budget: int | None = None
    probe_size: int = 4
    min_speedup: float = 1.1
    size: int = field(init=False, default=1)
    settled: bool = field(init=False, default=False)
    history: list[tuple[int, float]] = field(init=False, default_factory=list)
    _peak_one: int | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        check_int("max_batch_size", self.max_batch_size, least=1)
        check_int("probe_size", self.probe_size, least=2)
        if self.memory_budget is not None:
            check_real("memory_budget", self.memory_budget)
            if self.memory_budget <= 0:
                raise ValueError(
                    f"memory_budget must be a positive number of bytes; got {self.memory_budget}."
                )
        check_real("min_speedup", self.min_speedup, low=1.0)

    def measure(
        self, batch: int, seconds: float, peak_bytes: int | None, free_bytes: int | None = None
    ) -> None:
        r"""Report one forward of ``batch`` images (only full batches of :attr:`size` count).

        Args:
            batch (int): images in the forward.
            seconds (float): its wall time.
            peak_bytes (int, optional): peak memory it allocated beyond what was allocated before
                (CUDA); ``None`` where the device has no memory statistics.
            free_bytes (int, optional): memory the device could still give before the forward
                (CUDA: free device memory plus what the allocator holds unused).
        """
        if self.settled or batch != self.size:
            return
        self.history.append((batch, batch / max(seconds, 1e-9)))
        if peak_bytes is not None:
            self._measure_memory(batch, peak_bytes, free_bytes)
        else:
            self._measure_speed()

    def _measure_memory(self, batch: int, peak_bytes: int, free_bytes: int | None) -> None:
        if batch == 1:
            self._peak_one = peak_bytes
            self.size = min(self.probe_size, self.max_batch_size)
            self.settled = self.size == 1
            return
        budget = self.memory_budget
        if budget is None:
            budget = int(0.9 * (free_bytes or 0))
        self.size = batch_size_for_memory(
            self._peak_one or 0, peak_bytes, batch, budget, self.max_batch_size
        )
        self.settled = True

    def _measure_speed(self) -> None:
        if len(self.history) >= 2:
            (previous, previous_rate), (_, rate) = self.history[-2:]
            if rate < self.min_speedup * previous_rate:
                self.size = previous
                self.settled = True
                return
        if self.size >= self.max_batch_size:
            self.settled = True
            return
        self.size = min(2 * self.size, self.max_batch_size)

    def out_of_memory(self, batch: int) -> bool:
        r"""Halve the batch after an out-of-memory error at ``batch`` images; settle there.

        Returns:
            bool: whether to retry (False at a batch of 1: nothing is left to halve).
        """
        if batch <= 1:
            return False
        self.size = max(1, batch // 2)
        self.max_batch_size = self.size
        self.settled = True
        return True
