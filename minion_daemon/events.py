"""Minimal event emitter: Perl Minion's ``on``/``emit`` for Minion, Worker and Job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Listener = Callable[..., object]


class EventEmitter:
    """Listeners by event name, called in subscription order with the emitter first."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def on(self, event: str, listener: Listener) -> Listener:
        """Subscribe ``listener(emitter, *args)`` to ``event``; returns it, for ``unsubscribe``."""
        self._listeners.setdefault(event, []).append(listener)
        return listener

    def unsubscribe(self, event: str, listener: Listener) -> None:
        if listener in self._listeners.get(event, []):
            self._listeners[event].remove(listener)

    def emit(self, event: str, *args: Any) -> None:
        """Call every listener of ``event``; an exception in one propagates to the emitter."""
        for listener in list(self._listeners.get(event, [])):
            listener(self, *args)
