"""Sign-in and roles: Streamlit's OpenID Connect sign-in (``st.login``) when ``[auth]`` is set
in ``.streamlit/secrets.toml``; off otherwise, for one local user, with a banner saying so.

Roles come from a claim of the ID token (``[css_roles] claim``, default ``roles``; a list or a
space- or comma-separated string). Only a steward (``[css_roles] steward``, default ``steward``)
may override the gate, release a set, download synthetic data or open the ledger.
"""

from __future__ import annotations

import re

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from core.release.ledger import Actor
from core.release.publish import STEWARD

LOCAL = Actor("local user", "Local user (sign-in off)", (STEWARD,))


def _secrets() -> dict:
    try:
        return st.secrets.to_dict()
    except (FileNotFoundError, StreamlitSecretNotFoundError):
        return {}


def sign_in_configured() -> bool:
    return "auth" in _secrets()


def _role_settings() -> tuple[str, str]:
    roles = _secrets().get("css_roles", {})
    return roles.get("claim", "roles"), roles.get("steward", STEWARD)


def roles_from_claims(claims: dict, claim: str, steward: str) -> tuple[str, ...]:
    """The user's roles from the ID token's ``claim`` (a list, or a space- or comma-separated
    string); the configured ``steward`` role becomes the core's steward role, and a claim that
    merely says "steward" does not, when another name is configured."""
    raw = claims.get(claim) or []
    roles = raw if isinstance(raw, list | tuple) else re.split(r"[\s,]+", str(raw))
    names = [str(r) for r in roles if r and (str(r) != STEWARD or steward == STEWARD)]
    return tuple(dict.fromkeys(STEWARD if r == steward else r for r in names))


def current_actor() -> Actor | None:
    """Who is using the app: the signed-in subject with their roles, the local user when sign-in
    is off, None when sign-in is on and nobody has signed in."""
    if not sign_in_configured():
        return LOCAL
    if not st.user.is_logged_in:
        return None
    claims = st.user.to_dict()
    roles = roles_from_claims(claims, *_role_settings())
    name = str(claims.get("name") or claims.get("email") or claims.get("sub"))
    return Actor(str(claims.get("sub")), name, roles)


def is_steward() -> bool:
    actor = current_actor()
    return actor is not None and STEWARD in actor.roles


def require_sign_in() -> Actor:
    """Before any page: the sign-in screen when sign-in is on and nobody is signed in; the
    signed-in user (or the sign-in-off banner) in the sidebar."""
    actor = current_actor()
    if not sign_in_configured():
        st.sidebar.warning(
            "**Sign-in is off.** One local user with every right, recorded in the ledger as "
            "'local user'. Configure `[auth]` in `.streamlit/secrets.toml` for a shared server.",
            icon=":material/lock_open:",
        )
        return LOCAL
    if actor is None:
        st.title("Clinical Synthesis Studio")
        st.info(
            "This server holds patient data: sign in with your organisation's account to continue.",
            icon=":material/lock:",
        )
        st.button("Sign in", type="primary", on_click=st.login, key="auth_sign_in")
        st.stop()
    roles = ", ".join(actor.roles) or "no role"
    st.sidebar.markdown(f":material/account_circle: **{actor.display_name}** ({roles})")
    st.sidebar.button("Sign out", on_click=st.logout, key="auth_sign_out")
    return actor


def steward_only(what: str) -> bool:
    """True for a steward; otherwise a note that ``what`` needs the steward role."""
    if is_steward():
        return True
    actor = current_actor()
    who = actor.display_name if actor else "You"
    st.info(
        f"{what} needs the data steward role; {who} does not have it.",
        icon=":material/shield_person:",
    )
    return False
