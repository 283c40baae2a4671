"""On the Pi: what keidash needs of the machine it runs on.

- :mod:`.notify`: systemd's READY=1, STATUS and watchdog pings from the frame loop.
- :mod:`.ignition`: ``keidash ignition``, power off after the key has been off a while.
- :mod:`.probe`: ``keidash probe URL``, one source's update rate and errors: the first thing
  to run on a new truck.
- :mod:`.doctor`: ``keidash doctor``, checks a Pi before the first drive.
"""
