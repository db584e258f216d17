# The production image: the broker and its locked dependencies (requirements.lock, with hashes),
# OpenTelemetry included (inactive unless OTEL_EXPORTER_OTLP_ENDPOINT is set), no embedded
# PostgreSQL. Runs as a numeric non-root user on a read-only root filesystem.
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/jobbroker \
    && /opt/jobbroker/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
RUN /opt/jobbroker/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/jobbroker/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    JOBBROKER_HOST=0.0.0.0 \
    JOBBROKER_PORT=8080
COPY --from=build /opt/jobbroker /opt/jobbroker
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s CMD ["jobbroker", "healthcheck"]
ENTRYPOINT ["jobbroker"]
CMD ["serve"]
