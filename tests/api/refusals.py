"""What the API's unit tests assert about a refusal: the `ApiError` a call raises, by status and problem code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from api.problems import ApiError


def refused(call: Callable[[], Any], status: int, code: str) -> ApiError:
    """Call `call`, which must raise an `ApiError` of `status` and `code`; return it for further checks."""
    with pytest.raises(ApiError) as info:
        call()
    assert (info.value.status, info.value.code) == (status, code), info.value.detail
    return info.value
