"""keidash: an instrument cluster for Japanese kei mini-trucks.

Data flows one way::

    sources -> Reading -> estimator (pure) -> DashState -> outputs

Only light modules are imported here: the cluster must show its first frame
fast, so python-obd (pint), pygame and gpiozero are imported where they are used.
"""

__version__ = "0.1.0"
