"""Test-wide settings.

Hypothesis: no per-example deadline, because CI machines are shared and noisy and speed is
measured by bench/, never by tests. ``KEIDASH_HYPOTHESIS=thorough`` runs ten times the examples
to shake out rare cases before a change lands.
"""

import os

from hypothesis import settings

settings.register_profile("keidash", deadline=None, print_blob=True)
settings.register_profile("thorough", settings.get_profile("keidash"), max_examples=1000)
settings.load_profile("thorough" if os.environ.get("KEIDASH_HYPOTHESIS") == "thorough" else "keidash")
