"""Offline privacy audits of a trained model (issue #30): the shadow-model attack and the canary
audit. Both retrain the model's family with its own settings several times, which takes minutes to
hours, so they run as a command (``python -m core.audit``), resumable, with progress, and record
their results in the model's manifest, where the Models page and the Review show them. No page
ever recomputes them.
"""

from core.audit.recipes import RECIPES, Recipe, recipe_for
from core.audit.run import AuditWork, run_canary_audit, run_shadow_audit

__all__ = [
    "RECIPES",
    "AuditWork",
    "Recipe",
    "recipe_for",
    "run_canary_audit",
    "run_shadow_audit",
]
