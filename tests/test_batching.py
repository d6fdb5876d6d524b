"""AutoBatchSize settings: types and ranges are refused at construction (issue 20)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from captum_eagle.batching import AutoBatchSize


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"max_batch_size": 1.5}, TypeError, "max_batch_size must be an int"),
        ({"max_batch_size": True}, TypeError, "max_batch_size must be an int"),
        ({"max_batch_size": "8"}, TypeError, "max_batch_size must be an int"),
        ({"max_batch_size": None}, TypeError, "max_batch_size must be an int"),
        ({"max_batch_size": math.inf}, TypeError, "max_batch_size must be an int"),
        ({"probe_size": 2.5}, TypeError, "probe_size must be an int"),
        ({"memory_budget": "1G"}, TypeError, "memory_budget must be a number"),
        ({"memory_budget": math.nan}, ValueError, "memory_budget must be a finite number"),
        ({"memory_budget": -1}, ValueError, "memory_budget must be a positive number of bytes"),
        ({"min_speedup": math.nan}, ValueError, "min_speedup must be a finite number"),
        ({"min_speedup": math.inf}, ValueError, "min_speedup must be a finite number"),
        ({"min_speedup": "1.1"}, TypeError, "min_speedup must be a number"),
    ],
)
def test_auto_batch_size_refuses_settings_of_the_wrong_type_or_range(
    options, error, message
) -> None:
    with pytest.raises(error, match=message):
        AutoBatchSize(**options)


def test_auto_batch_size_accepts_numpy_and_float_budgets() -> None:
    sizer = AutoBatchSize(max_batch_size=np.int64(8), memory_budget=2e9, min_speedup=1)
    assert sizer.size == 1
    sizer.measure(1, seconds=0.1, peak_bytes=None)
    assert sizer.size == 2
