# Clinical Synthesis Studio, built without network access: every Python package comes from a
# wheelhouse made beforehand on a machine with PyPI (deploy/make-wheelhouse.sh), installed with
# `pip install --no-index --find-links`. The base image is a build argument:
#   python:3.11-slim (the default) where an image registry is reachable, or
#   localhost/css-base:bookworm made by deploy/make-base.sh (debootstrap) where none is.
#
#   deploy/make-wheelhouse.sh
#   podman build --format docker [--build-arg BASE_IMAGE=localhost/css-base:bookworm] \
#       -t clinical-synthesis-studio .
#   podman run -d -p 8501:8501 -v css-state:/var/lib/clinical-synthesis-studio \
#       clinical-synthesis-studio
#
# docs/deployment.md has the whole procedure (compose with PostgreSQL, sign-in, backups).
ARG BASE_IMAGE=docker.io/library/python:3.11-slim
FROM ${BASE_IMAGE}
ARG CSS_UID=10001

# State (model store, SQLite ledger, signing key) lives on a volume at CSS_STATE_DIR. Streamlit
# reads its settings from STREAMLIT_* variables and the sign-in settings from the secrets file
# (mounted read-only; absent means sign-in is off, with a banner on every page).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CSS_STATE_DIR=/var/lib/clinical-synthesis-studio \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_FILE_WATCHER_TYPE=none \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SECRETS_FILES=/run/secrets/css-auth.toml

RUN useradd --create-home --uid "${CSS_UID}" --user-group app \
    && mkdir -p /var/lib/clinical-synthesis-studio \
    && chown app:app /var/lib/clinical-synthesis-studio \
    && chmod 700 /var/lib/clinical-synthesis-studio

# The packages, from the wheelhouse bind-mounted for this step only (no wheel stays in a layer),
# into a virtual environment without pip; then what the app never runs: the packages' own test
# suites, PyTorch's C++ test programs and headers (the project compiles no extension).
COPY requirements.txt /app/requirements.txt
RUN --mount=type=bind,source=deploy/wheelhouse,target=/tmp/wheelhouse \
    python3 -m venv /opt/venv \
    && PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 /opt/venv/bin/pip install -q \
        --no-index --find-links /tmp/wheelhouse -r /app/requirements.txt \
    && /opt/venv/bin/pip uninstall -q -y pip \
    && cd /opt/venv/lib/python3.11/site-packages \
    && find . -depth -type d -name tests -prune -exec rm -rf {} + \
    && rm -rf torch/test torch/include torch/bin/test_* torch/bin/*Test

# The application and its shipped checkpoints, owned by root: the app's user can read them only.
WORKDIR /app
COPY pyproject.toml app.py ./
COPY .streamlit/config.toml .streamlit/config.toml
COPY core core
COPY ui ui
COPY pages pages
COPY assets assets
COPY checkpoints checkpoints
RUN python3 -m compileall -q core ui pages app.py >/dev/null

USER app
VOLUME ["/var/lib/clinical-synthesis-studio"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"]
CMD ["streamlit", "run", "app.py"]
