"""Named fault points for the crash tests: ``point("store.replace.after_first_rename")`` kills
this process (SIGKILL, no clean-up, as a power cut or an OOM kill would) when the environment
variable ``CSS_FAULT_POINT`` names that point, and does nothing otherwise.

Writers call it between the steps a crash could separate, so tests/core/test_faults.py can prove
that a kill at any of them loses nothing. Off by default; one dictionary look-up per call.
"""

from __future__ import annotations

import os
import signal

ENV = "CSS_FAULT_POINT"


def point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
