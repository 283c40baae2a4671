"""The body a kei truck is assumed to have where no source gives a figure.

Mass, drag and rolling resistance are not in any sourced kei-truck table; the
virtual truck (:mod:`keidash.sim.physics`) drives with these assumptions and the
speed-only estimator (:mod:`keidash.estimate.speedonly`) uses the same ones to
bound the acceleration each gear can deliver. One module, so the dash and the
simulator never disagree about the truck, and the dash never loads the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

G = 9.81  # m/s^2
AIR_DENSITY = 1.2  # kg/m^3


@dataclass(frozen=True)
class Body:
    """A kei truck's assumed body: no source gives these figures for any kei truck."""

    mass_kg: float = 850.0  # ~770 kg curb (Carry DA16T, sourced) + driver, empty bed
    drag_area_m2: float = 1.2  # Cd x A: a 1.475 m wide, ~1.8 m tall box, Cd ~0.5
    rolling_coefficient: float = 0.015  # light-truck tyres on tarmac
    driveline_efficiency: float = 0.90
    engine_inertia_kgm2: float = 0.08  # crank, flywheel, clutch
    clutch_capacity_nm: float = 110.0  # torque the clutch holds fully engaged
