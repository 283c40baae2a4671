"""The cluster on screen (pygame-ce): :class:`~.cluster.Cluster` renders each DashState.

pygame is imported only when a cluster is built; :mod:`.layout`, :mod:`.theme` and
:mod:`.texts` are pure and tested without a display.
"""
