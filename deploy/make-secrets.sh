#!/usr/bin/env bash
# The secret files deploy/compose.yaml mounts, made once in DIR (default deploy/secrets,
# git-ignored); a file already there is kept, so running it again changes nothing.
#
#   deploy/make-secrets.sh [DIR]
#
#   db-password    PostgreSQL's password (random), read by the database container
#   ledger-url     postgresql+psycopg://css:<password>@db:5432/css, read by the app
#                  (CSS_LEDGER_URL_FILE)
#   css-auth.toml  the sign-in settings (Streamlit's [auth] and [css_roles]); made empty, which
#                  leaves sign-in off: fill it in before anyone else uses the server
#
# Each file is readable by its owner only. The app runs as uid 10001 in its container, so the
# files it reads are given to that uid (as root: chown; rootless podman: podman unshare chown).
set -euo pipefail
dir=${1:-$(dirname "$0")/secrets}
app_uid=${CSS_UID:-10001}
umask 077
mkdir -p "$dir"

if [[ ! -s "$dir/db-password" ]]; then
  python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$dir/db-password"
fi
if [[ ! -s "$dir/ledger-url" ]]; then
  printf 'postgresql+psycopg://css:%s@db:5432/css\n' "$(cat "$dir/db-password")" >"$dir/ledger-url"
fi
if [[ ! -e "$dir/css-auth.toml" ]]; then
  cat >"$dir/css-auth.toml" <<'TOML'
# Sign-in (OpenID Connect) for Clinical Synthesis Studio; see docs/deployment.md. While this file
# holds no [auth] table, sign-in is off and every visitor is the one local user.
TOML
fi

for f in ledger-url css-auth.toml; do
  if [[ $(id -u) -eq 0 ]]; then
    chown "$app_uid:$app_uid" "$dir/$f"
  elif command -v podman >/dev/null; then
    podman unshare chown "$app_uid:$app_uid" "$dir/$f"
  else
    echo "make-secrets.sh: give $dir/$f to uid $app_uid as the container engine maps it" >&2
  fi
done
echo "secrets in $dir: db-password, ledger-url, css-auth.toml"
