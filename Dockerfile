# syntax=docker/dockerfile:1
# gitjob-webhook: one image for both Deployments (`serve receiver`, `serve admission ...`).
#
# The builder turns the project and its dependencies into wheels and installs them into a
# virtualenv; the final image copies only that virtualenv onto a clean slim base: no wheels, no
# build tools, no compiler, no source tree. tests/deploy/test_dockerfile.py replays these steps.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY controller ./controller
# Every dependency as a wheel (binary wheels exist for all of them on linux; none is compiled here),
# then a virtualenv without pip (nothing to install at run time) filled from those wheels alone.
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/gitjob-webhook \
    && pip --python /opt/gitjob-webhook/bin/python install --no-cache-dir --no-index --find-links /wheels \
        /wheels/gitjob_webhook-*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="gitjob-webhook" \
      org.opencontainers.image.description="Git push webhooks and admission control for Rancher Fleet GitRepos" \
      org.opencontainers.image.licenses="Apache-2.0"
# Bytecode was compiled at install time; nothing is written at run time (read-only root filesystem).
ENV PATH=/opt/gitjob-webhook/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/gitjob-webhook /opt/gitjob-webhook
# A numeric user and group (no passwd entry needed), so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080 8443
ENTRYPOINT ["gitjob-webhook"]
CMD ["serve", "receiver"]
