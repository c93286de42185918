"""The Review page's Streamlit helpers, one module per concern: ``reference`` (the real cohort
compared against), ``setup`` (adding and choosing sets, the settings), ``cache`` (reviews shared
by the server's sessions, and what a review is bound to), ``sections`` (the page's renderer of
each of core's report sections, in their one order), ``gate`` (thresholds and verdicts),
``release`` (signing and recording a release), ``detection`` and ``exposure`` (panels)."""
