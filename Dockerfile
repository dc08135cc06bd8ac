# syntax=docker/dockerfile:1
# Build the wheels in a full image, install them into a slim one without a compiler.
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY controller ./controller
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels gitjob-webhook \
    && rm -rf /wheels
USER 65532:65532
EXPOSE 8080 8443
ENTRYPOINT ["gitjob-webhook"]
CMD ["serve", "receiver"]
