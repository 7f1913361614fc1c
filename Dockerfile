# syntax=docker/dockerfile:1
# One image for every modelfleet Python service, plus the model-builder target.
#
#   docker build -t modelfleet:dev .                          # services (default target)
#   docker build --target model-builder -t modelfleet-model-builder:dev .
#
# The service is chosen by the pod's command/args, e.g.
#   uvicorn --factory services.ride_duration.app:create_app --host 0.0.0.0 --port 8000
# The model builder writes the Triton model repository onto a volume, and runs the jobs that
# need the training extra (a pod's `command:` replaces its ENTRYPOINT):
#   python -m models.ride_duration --repo /models
#   modelfleet train classifier ...       modelfleet ingest ...
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz.
#
# Dependencies come from the hashed lock files in requirements/ (requirements/lock writes them
# from pyproject.toml), installed before any source is copied: a code change rebuilds only the
# wheel and the last two layers of each image. pip's downloads stay in a BuildKit cache mount.
# Behind a TLS-inspecting proxy, pass pip's settings as the optional secret `pipconf` and the
# proxy's CA bundle as a read-only build volume, never as a COPY:
#   buildah bud --secret id=pipconf,src=/etc/pip.conf -v /etc/ssl/certs:/etc/ssl/certs:ro ...
# (tests/kube/images.py does so; a -v mount of a file the image lacks would leave an empty
# /etc/pip.conf in the layer, a secret mount leaves nothing).

# python:3.11-slim (Debian bookworm), pinned by digest; bump tag and digest together.
# Any Debian-like image with python 3.11 and its venv module works (tests/kube/images.py builds
# on a debootstrap bookworm root: python at /usr/bin/python3 instead of /usr/local/bin).
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---------------------------------------------------------------------------------------------
# runtime-base: what both images share under the venv: a numeric non-root user.
FROM ${PYTHON_IMAGE} AS runtime-base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 modelfleet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin modelfleet
WORKDIR /app

# venv: the serving dependencies from the lock, nothing of modelfleet yet. The images build on
# this stage rather than copying the venv out of it: a COPY --from of ~1 GB is hashed on every
# build, even a cached one. pip downloads into a cache mount (pip's HTTP cache stores nothing
# behind a proxy that drops Cache-Control) and installs from there without the index.
FROM runtime-base AS venv
# requirements-nodeps.txt: the embedding tokenizer's package, without its torch dependency.
COPY requirements/service.lock requirements-nodeps.txt /opt/modelfleet/requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pipconf,target=/etc/pip.conf \
    python3 -m venv /opt/venv \
    && pip download --quiet --no-deps --require-hashes --dest /root/.cache/pip/wheels \
        -r /opt/modelfleet/requirements/service.lock \
        -r /opt/modelfleet/requirements/requirements-nodeps.txt \
    && pip install --no-index --find-links /root/.cache/pip/wheels --no-compile --no-deps \
        --require-hashes -r /opt/modelfleet/requirements/service.lock \
        -r /opt/modelfleet/requirements/requirements-nodeps.txt

# venv-train: the same venv plus the training extra (scikit-learn, skl2onnx, pandas ...).
FROM venv AS venv-train
COPY requirements/train.lock /opt/modelfleet/requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pipconf,target=/etc/pip.conf \
    pip download --quiet --no-deps --require-hashes --dest /root/.cache/pip/wheels \
        -r /opt/modelfleet/requirements/train.lock \
    && pip install --no-index --find-links /root/.cache/pip/wheels --no-compile --no-deps \
        --require-hashes -r /opt/modelfleet/requirements/train.lock

# ---------------------------------------------------------------------------------------------
# wheel: modelfleet itself as a wheel, built with the locked build tools in a venv of its own
# (no bench/: the benchmarks are a development command and stay out of the images).
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY requirements/build.lock /requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pipconf,target=/etc/pip.conf \
    python3 -m venv /opt/build \
    && /opt/build/bin/pip download --quiet --no-deps --require-hashes \
        --dest /root/.cache/pip/wheels -r /requirements/build.lock \
    && /opt/build/bin/pip install --no-index --find-links /root/.cache/pip/wheels \
        --no-compile --no-deps --require-hashes -r /requirements/build.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY models ./models
COPY services ./services
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
# The wheel is copied rather than bind-mounted (RUN --mount=type=bind,from=wheel): buildah 1.28
# finds no files in a stage that came wholly from its layer cache.
#
# model-builder: trains and exports the models into a Triton model repository (init container),
# and runs the retraining and ingest jobs.
FROM venv-train AS model-builder
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-compile --no-deps /tmp/wheels/modelfleet-*.whl \
    && rm -r /tmp/wheels
USER 10001:10001
ENTRYPOINT ["python", "-m", "models.ride_duration"]
CMD ["--repo", "/models"]

# ---------------------------------------------------------------------------------------------
# service (default target): every FastAPI service; the command picks which one.
FROM venv AS service
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-compile --no-deps /tmp/wheels/modelfleet-*.whl \
    && rm -r /tmp/wheels
USER 10001:10001
EXPOSE 8000
CMD ["uvicorn", "--factory", "services.ride_duration.app:create_app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
