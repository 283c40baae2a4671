"""Tyre size codes to rolling circumference.

Sources (see ../shared/data/kei-vehicles.md section 1, copied into docs/sources.md):
- outside diameter D = rim_in x 25.4 + 2 x width_mm x aspect / 100;
- a radial size with no aspect ratio is an 80-series tyre under the ETRTO
  convention (kei trucks' 145R12 is nearer 82-series, but it is measured, below);
- measured diameters, which win over the formula: 145R12 542 mm, 145/80R12 536 mm,
  5.00-12 (bias) 566 mm (Dunlop catalogue and mitsuchi.xsrv.jp);
- loaded rolling radius ~ 0.96 x free radius, so C_roll ~ 0.96 x pi x D.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import ConfigError

#: loaded rolling radius / free radius (rule of thumb, mechguru.com)
ROLLING_FACTOR = 0.96
#: aspect ratio of a radial size written without one (ETRTO convention)
DEFAULT_RADIAL_ASPECT = 80
#: aspect ratio assumed for a bias size like 5.00-12 when not measured
DEFAULT_BIAS_ASPECT = 100

#: measured outside diameters, mm, keyed by normalised size
MEASURED_DIAMETER_MM = {
    "145R12": 542.0,
    "145/80R12": 536.0,
    "5.00-12": 566.0,
}

_METRIC = re.compile(r"^\s*(?P<width>\d{3})\s*(?:/\s*(?P<aspect>\d{2,3}))?\s*[A-Z]?R\s*(?P<rim>\d{2})\b", re.I)
_BIAS = re.compile(r"^\s*(?P<width>\d{1,2}\.\d{1,2})\s*[-x]\s*(?P<rim>\d{2})\b", re.I)


@dataclass(frozen=True)
class Tyre:
    size: str  # normalised size code, e.g. "145/80R12"
    diameter_m: float  # outside (free) diameter, m
    measured: bool  # True when the diameter is a measured figure, not the formula

    @property
    def rolling_circumference_m(self) -> float:
        """Distance travelled per wheel turn under load, m."""
        return ROLLING_FACTOR * math.pi * self.diameter_m


def parse_tyre(code: str) -> Tyre:
    """Parse a size code such as ``145R12 6PR LT``, ``145/80R12 80/78N LT`` or ``5.00-12``.

    Raises :class:`ConfigError` with a plain sentence for anything else.
    """
    m = _METRIC.match(code)
    if m:
        width, rim = int(m["width"]), int(m["rim"])
        aspect = int(m["aspect"]) if m["aspect"] else None
        size = f"{width}/{aspect}R{rim}" if aspect else f"{width}R{rim}"
        formula = rim * 25.4 + 2 * width * (aspect or DEFAULT_RADIAL_ASPECT) / 100
    else:
        m = _BIAS.match(code)
        if not m:
            raise ConfigError(
                f"tyre size {code!r} is not understood: write it like 145R12, 145/80R12 or 5.00-12")
        width_in, rim = float(m["width"]), int(m["rim"])
        size = f"{width_in:.2f}-{rim}"
        formula = (rim + 2 * width_in * DEFAULT_BIAS_ASPECT / 100) * 25.4
    if size in MEASURED_DIAMETER_MM:
        return Tyre(size, MEASURED_DIAMETER_MM[size] / 1000, True)
    return Tyre(size, formula / 1000, False)


def rolling_circumference_m(code: str) -> float:
    """Shorthand: rolling circumference in metres of a tyre size code."""
    return parse_tyre(code).rolling_circumference_m
