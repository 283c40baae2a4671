"""What every piece of emulated hardware shares: one daemon thread, start / stop / with."""

from __future__ import annotations

import threading


class EmulatedDevice:
    """Subclasses implement :meth:`_run`, which returns soon after ``self._stop`` is set."""

    thread_name = "emulated-device"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _after_stop(self) -> None:
        """Release ports and pins once the thread has ended."""

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self._after_stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
