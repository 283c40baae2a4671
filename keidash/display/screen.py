"""The cluster while there is a display; without one the dash runs on and keeps trying.

A Pi in a truck can lose its picture: the display's cable works loose, the panel fails, or
the image has no ``/dev/dri`` (kmsdrm not available). The screen is one output among
several: the sources, the estimator, the trip log, the shift lights, the buzzer and the
watchdog's pings do not need it, so a display that cannot be opened is not a crash (which
under ``Restart=always`` would restart the whole dash every 2 s until systemd gave up, with
everything else dying with the screen). :class:`Screen` renders to the cluster when it has
one; without it, it says so in one sentence (:attr:`Screen.problem`: the log, and the dash's
``systemctl status`` line) and tries to open the display again every ``retry_s`` seconds,
so a re-seated cable brings the picture back without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..dashstate import DashState
from ..errors import KeidashError

logger = logging.getLogger(__name__)

#: seconds between two tries to open a display that was not there
RETRY_S = 5.0


def _reason(exc: BaseException) -> str:
    return str(exc).strip().rstrip(".") or type(exc).__name__


class Screen:
    """Renders each frame on the cluster ``open_cluster()`` returns, while it can.

    ``open_cluster``: makes a :class:`~keidash.display.cluster.Cluster` (or raises: pygame.error,
    OSError ...). It is called now, and again every ``retry_s`` seconds (on ``clock``, monotonic
    seconds) at a frame while there is no cluster. A cluster whose ``render`` raises is dropped
    and the display retried the same way. ``problem``: "" with a display, else the sentence why not.
    A :class:`~keidash.errors.KeidashError` from ``open_cluster`` (the owner's mistake, such as a
    layout typed for another screen) is not a missing display: it is raised, as before.
    """

    def __init__(self, open_cluster: Callable[[], Any], *, retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.monotonic):
        self._open_cluster = open_cluster
        self.retry_s = retry_s
        self._clock = clock
        self.cluster: Any | None = None
        self.problem = ""
        self.tries = 0
        self._next_try = 0.0
        self._try()

    def _try(self) -> None:
        self.tries += 1
        try:
            cluster = self._open_cluster()
        except KeidashError:  # the owner's mistake (a layout that does not fit), not a missing display
            raise
        except Exception as exc:  # noqa: BLE001 - whatever SDL says, the dash runs on without it
            self._without(exc)
            return
        if self.problem:
            logger.warning("the display is back (after %d tries): drawing the cluster again", self.tries)
        self.cluster = cluster
        self.problem = ""

    def _without(self, exc: BaseException) -> None:
        problem = (f"no display ({_reason(exc)}): running on without a screen, "
                   f"trying again every {self.retry_s:g} s")
        if problem != self.problem:  # once per reason, not every retry
            logger.warning("%s", problem)
        self.problem = problem
        self._next_try = self._clock() + self.retry_s

    @property
    def shown(self) -> bool:
        """True while frames reach a display."""
        return self.cluster is not None

    def render(self, state: DashState) -> None:
        if self.cluster is None:
            if self._clock() < self._next_try:
                return
            self._try()
            if self.cluster is None:
                return
        try:
            self.cluster.render(state)
        except Exception as exc:  # noqa: BLE001 - the display went away under the dash
            cluster, self.cluster = self.cluster, None
            self._close(cluster)
            self._without(exc)

    def poll_quit(self) -> bool:
        return self.cluster.poll_quit() if self.cluster is not None else False

    def save(self, path) -> None:
        """Write the last frame as a PNG; without a display there is none."""
        if self.cluster is None:
            raise KeidashError(f"no frame to save: {self.problem}")
        self.cluster.save(path)

    def close(self) -> None:
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            self._close(cluster)

    @staticmethod
    def _close(cluster) -> None:
        try:
            cluster.close()
        except Exception:  # noqa: BLE001 - closing a display that is gone
            logger.debug("closing the cluster failed", exc_info=True)
