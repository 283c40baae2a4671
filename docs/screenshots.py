"""Make the cluster screenshots in docs/ by running the real pipeline on the virtual truck.

    .venv/bin/python docs/screenshots.py [OUTDIR]

Each picture is the first frame in which its situation holds, so they are the same
situations every time (the exact numbers vary a little with thread timing).
"""

from __future__ import annotations

import os
import sys
import threading

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from keidash.app import run_dash  # noqa: E402
from keidash.dashstate import FAILED, LIVE, UP  # noqa: E402
from keidash.display.cluster import Cluster  # noqa: E402
from keidash.cab import Cab  # noqa: E402
from keidash.estimate.estimator import config_for  # noqa: E402
from keidash.profiles import load_profile  # noqa: E402
from keidash.rig import open_rig  # noqa: E402

HIJET = load_profile("hijet-s500p")


def capture(path: str, url: str, wanted, *, after=None, seconds: float = 60.0) -> bool:
    """Run ``url`` until ``wanted(dash)`` holds, then save that frame. ``after(rig, t)`` may act."""
    rig = open_rig({"sim": url}, HIJET)
    config = config_for(HIJET, {}, rig.priority())  # as keidash demo: economy cues
    cluster = Cluster(headless=True)
    stop = threading.Event()
    found = []

    def on_frame(dash):
        if after is not None:
            after(rig, dash.t)
        if wanted(dash):
            cluster.save(path)
            found.append(path)
            stop.set()
    try:
        rig.start()
        run_dash(rig, config, [cluster], fps=30, seconds=seconds, stop=stop, on_frame=on_frame, cab=Cab())
    finally:
        rig.stop()
        cluster.close()
    print(f"{path}: {'saved' if found else 'situation not reached'}")
    return bool(found)


def unplug_obd_after(seconds: float):
    state = {"start": None, "done": False}

    def act(rig, t):
        state["start"] = state["start"] or t
        if not state["done"] and t - state["start"] > seconds:
            rig.devices["obd"].unplug()
            state["done"] = True
    return act


def main(outdir: str) -> int:
    os.makedirs(outdir, exist_ok=True)
    ok = [
        # mid-drive, all sources live, the upshift light on (the driver follows keidash's cues)
        capture(os.path.join(outdir, "cluster-mid-drive.png"), "sim://hijet-s500p?obey=1&skip=245",
                lambda d: d.cue == UP and d.gear == 2 and d.rpm_source == "pulses"
                and all(v.state == LIVE for v in d.sources)),
        # a truck with only a GPS: gear and rpm estimated from road speed
        capture(os.path.join(outdir, "cluster-speed-only.png"), "sim://hijet-s500p?hardware=gps&obey=1&skip=300",
                lambda d: d.rpm_estimated and d.gear == 5 and d.speed_kmh and d.speed_kmh > 80),
        # the ELM327 pulled out mid-drive: OBD shows failed (red), speed and rpm carry on from GPS alone
        capture(os.path.join(outdir, "cluster-adapter-unplugged.png"),
                "sim://hijet-s500p?hardware=obd,gps&skip=300", after=unplug_obd_after(4.0),
                wanted=lambda d: any(v.name == "obd" and v.state == FAILED for v in d.sources)
                and d.rpm_estimated),
    ]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))))
