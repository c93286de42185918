"""The last line of defence on every page: an unexpected exception becomes a short message with
an error id; its details go to the server log only (never a traceback, SQL or manifest on screen).

Typed core errors are shown as they are (their messages are written for users); Streamlit's own
control flow (``st.stop``, ``st.rerun``) passes through untouched.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.errors import CoreError

log = logging.getLogger("css.pages")


@contextmanager
def guard(where: str) -> Iterator[None]:
    """Run a page's work; what escapes it is shown as a short message, never raw, and the run
    stops there (so nothing after it, a sign-in check included, is skipped past)."""
    try:
        yield
    except CoreError as exc:
        st.error(f"**{where} failed.** {exc}", icon=":material/error:")
        st.stop()
    except Exception as exc:  # the catch-all is the point: nothing raw reaches the browser
        error_id = uuid.uuid4().hex[:8]
        # the stack locates the fault; the message is withheld: pandas or SQL messages can
        # quote cells or a manifest, which the log must not hold
        withheld = RuntimeError(f"{type(exc).__name__} (message withheld from the log)")
        log.error(
            "error %s on %s", error_id, where, exc_info=(RuntimeError, withheld, exc.__traceback__)
        )
        st.error(
            f"**{where} hit an unexpected problem** and stopped; your session is kept. If it "
            f"happens again, give the administrator this error id: `{error_id}`.",
            icon=":material/error:",
        )
        st.stop()
