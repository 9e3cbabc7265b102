"""The test kit: strategies, a store conformance suite and a stateful model of the service.

- :mod:`importstate.testing.strategies`: Hypothesis strategies for steps,
  states, operations, wire documents, users and service calls
  (:class:`ServiceCall`).
- :class:`StoreTests`: subclass it, provide a ``make_store`` fixture, and
  pytest runs the conformance suite every store must pass.
- :class:`BatchClaimsTests`: the same for a store with the optional
  :class:`~importstate.stores.BatchClaims` (parallel workers).
- :class:`ImportServiceMachine`: ``ImportServiceMachine.with_factory(f).TestCase``
  checks a service against a reference model of the spec.
- :class:`RecordingImporter`, :class:`FailingImporter` (which raises
  :class:`ImportFailed`): importers for tests, also given by the pytest
  plugin's fixtures.

Names are imported on first use, so the pytest plugin (loaded by every
pytest run) stays cheap and works without Hypothesis installed. The
strategies, the suites and the stateful model need the ``testing`` extra
(Hypothesis and pytest); without it, they raise
:class:`~importstate.MissingExtra`. The importers need nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from importstate.testing import strategies
    from importstate.testing._batch_claims_tests import BatchClaimsTests
    from importstate.testing._calls import ServiceCall
    from importstate.testing._importers import FailingImporter, ImportFailed, RecordingImporter
    from importstate.testing._machine import ImportServiceMachine, InjectedFailure
    from importstate.testing._store_tests import StoreTests

__all__ = [
    "BatchClaimsTests",
    "FailingImporter",
    "ImportFailed",
    "ImportServiceMachine",
    "InjectedFailure",
    "RecordingImporter",
    "ServiceCall",
    "StoreTests",
    "strategies",
]

_HOMES: Final = {
    "BatchClaimsTests": "importstate.testing._batch_claims_tests",
    "FailingImporter": "importstate.testing._importers",
    "ImportFailed": "importstate.testing._importers",
    "ImportServiceMachine": "importstate.testing._machine",
    "InjectedFailure": "importstate.testing._machine",
    "RecordingImporter": "importstate.testing._importers",
    "ServiceCall": "importstate.testing._calls",
    "StoreTests": "importstate.testing._store_tests",
}


def __getattr__(name: str) -> object:
    if name == "strategies":
        return importlib.import_module("importstate.testing.strategies")
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    msg = f"module 'importstate.testing' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
