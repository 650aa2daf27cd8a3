"""What separate Lambda execution environments keep apart and one process running them all would share.

Lambda runs each environment in a process of its own. Here the local runtime runs every environment of every
function as a thread of one process, and Powertools Metrics keeps its metric, dimension and metadata sets in
class attributes that every `Metrics()` shares. So one invocation's `log_metrics` published (and cleared)
another's metrics, and when it cleared them between the other's emptiness check and its serialization, that
invocation failed with "Must contain at least one metric." (an API request answered 502). `metrics_per_thread`
gives each thread, that is each environment's invocation, sets of its own, as separate processes would have.

Powertools' event handler does the same with the request: every resolver's `resolve` stores the event and context on
the class `BaseRouter`, and a route reads `app.current_event` from there. Two API requests served at once on two
threads each read the one stored last: one saga's start request was handled with another's body, answered 202, and
its saga never existed. `router_event_per_thread` keeps them per thread.
"""

from __future__ import annotations

import gc
import threading
from abc import ABCMeta
from collections import UserDict, UserList
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

# Metrics' class attributes shared by every instance, and the instance attributes that alias them.
_CLASS_SETS = ("_metrics", "_dimensions", "_metadata")
_INSTANCE_SETS = {"metric_set": "_metrics", "dimension_set": "_dimensions", "metadata_set": "_metadata"}


class PerThreadDict(UserDict):
    """A dict whose contents belong to the thread that reads or writes it."""

    def __init__(self) -> None:
        self._local = threading.local()  # before UserDict.__init__, which assigns `data`

    @property  # type: ignore[override]
    def data(self) -> dict[Any, Any]:
        if not hasattr(self._local, "data"):
            self._local.data = {}
        return self._local.data

    @data.setter
    def data(self, value: dict[Any, Any]) -> None:
        self._local.data = value


class PerThreadList(UserList):
    """A list whose contents belong to the thread that reads or writes it."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property  # type: ignore[override]
    def data(self) -> list[Any]:
        if not hasattr(self._local, "data"):
            self._local.data = []
        return self._local.data

    @data.setter
    def data(self, value: list[Any]) -> None:
        self._local.data = value


@contextmanager
def metrics_per_thread() -> Iterator[None]:
    """Per-thread Powertools metric sets, for the instances that exist now and those created inside the block."""
    saved_class = {name: getattr(Metrics, name) for name in _CLASS_SETS}
    per_thread = {name: PerThreadDict() for name in _CLASS_SETS}
    for name, replacement in per_thread.items():
        setattr(Metrics, name, replacement)
    # Instances created before (observability modules imported at first use) hold the shared dicts themselves.
    patched: list[tuple[Any, str, Any]] = []
    for instance in [o for o in gc.get_objects() if isinstance(o, (Metrics, AmazonCloudWatchEMFProvider))]:
        for attribute, class_set in _INSTANCE_SETS.items():
            current = getattr(instance, attribute, None)
            if current is saved_class[class_set]:
                patched.append((instance, attribute, current))
                setattr(instance, attribute, per_thread[class_set])
        if isinstance(instance, AmazonCloudWatchEMFProvider) and not isinstance(instance.dimension_sets, PerThreadList):
            patched.append((instance, "dimension_sets", instance.dimension_sets))
            instance.dimension_sets = PerThreadList()
    try:
        yield
    finally:
        for instance, attribute, original in patched:
            setattr(instance, attribute, original)
        for name, original in saved_class.items():
            setattr(Metrics, name, original)


class PerThreadValue:
    """A data descriptor whose value belongs to the thread that set it (AttributeError in a thread that has not)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._local = threading.local()

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        try:
            return self._local.value
        except AttributeError:
            raise AttributeError(self.name) from None

    def __set__(self, instance: Any, value: Any) -> None:
        self._local.value = value


_ROUTER_STATE = ("current_event", "lambda_context")  # what `resolve` assigns on BaseRouter itself
_router_lock = threading.Lock()


@contextmanager
def router_event_per_thread() -> Iterator[None]:
    """Per-thread `BaseRouter.current_event` and `lambda_context` inside the block (the outermost block installs).

    Powertools assigns them on the class (`BaseRouter.current_event = ...`), which only the class's metaclass can
    intercept, and reads them from instances (`app.current_event`), which the class's own attributes serve: one
    per-thread descriptor sits in both places, BaseRouter's metaclass swapped for a subclass that holds it."""
    with _router_lock:
        installed = not isinstance(type(BaseRouter), _PerThreadRouterMeta)
        if installed:
            saved = {name: BaseRouter.__dict__[name] for name in _ROUTER_STATE if name in BaseRouter.__dict__}
            for name in _ROUTER_STATE:
                setattr(BaseRouter, name, _PerThreadRouterMeta.__dict__[name])
            BaseRouter.__class__ = _PerThreadRouterMeta
    try:
        yield
    finally:
        if installed:
            with _router_lock:
                BaseRouter.__class__ = ABCMeta
                for name in _ROUTER_STATE:
                    delattr(BaseRouter, name)
                    if name in saved:
                        setattr(BaseRouter, name, saved[name])


class _PerThreadRouterMeta(ABCMeta):
    current_event = PerThreadValue("current_event")
    lambda_context = PerThreadValue("lambda_context")
