# The Glimpse proxy. Build: docker build -t glimpse/proxy:0.1.0 .
# (When frontend/ exists, its production build is served at / via GLIMPSE_STATIC_DIR.)
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/glimpse
COPY pyproject.toml README.md ./
COPY service ./service
COPY operator ./operator
RUN /opt/glimpse/bin/pip install '.[otlp]'

FROM python:3.11.11-slim-bookworm
RUN groupadd --gid 10001 glimpse \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin glimpse
COPY --from=build /opt/glimpse /opt/glimpse
ENV PATH=/opt/glimpse/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GLIMPSE_HOST=0.0.0.0 \
    GLIMPSE_STORAGE_URL=file:///data/images
WORKDIR /data
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["glimpse"]
CMD ["serve"]
