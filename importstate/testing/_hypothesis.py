"""The ``hypothesis`` entry point: ``st.from_type`` for importstate's types.

Hypothesis calls :func:`_hypothesis_setup_hook` when it is imported, so
``st.from_type(Operation)`` works without importing
:mod:`importstate.testing` first. The strategies module itself is only
imported when a strategy is first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from importstate.model import Operation
from importstate.steps import ProgressStep, State


def _lazy(name: str) -> Callable[[type[Any]], st.SearchStrategy[Any]]:
    def resolve(_type: type[Any]) -> st.SearchStrategy[Any]:
        strategies = importlib.import_module("importstate.testing.strategies")
        made: st.SearchStrategy[Any] = getattr(strategies, name)()
        return made

    return resolve


def _hypothesis_setup_hook() -> None:
    """Register the strategies of :mod:`importstate.testing.strategies` for their types."""
    st.register_type_strategy(Operation, _lazy("operations"))
    st.register_type_strategy(ProgressStep, _lazy("progress_steps"))
    st.register_type_strategy(State, _lazy("states"))
