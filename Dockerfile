# The Glimpse proxy and the page it serves at /. Build: docker build -t glimpse/proxy:0.1.0 .
# The base images by digest (the tag is kept for people; the digest is what is pulled): README, Reproducible builds.
ARG NODE_IMAGE=node:20.19.5-bookworm-slim@sha256:9e70124bd00f47dd023e349cd587132ae61892acc0e47ed641416c3e18f401c3
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5
FROM ${NODE_IMAGE} AS page
WORKDIR /page
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/glimpse
# The versions CI tested, each file checked against its hash (requirements/proxy.lock, `make lock`), build backend
# included; then Glimpse alone.
COPY requirements/proxy.lock ./requirements/
RUN /opt/glimpse/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements/proxy.lock
COPY pyproject.toml README.md ./
COPY service ./service
COPY operator ./operator
RUN /opt/glimpse/bin/pip install --no-deps --no-build-isolation .

FROM ${PYTHON_IMAGE}
# UID 10001 in group 0, and group 0 may write what the proxy writes: OpenShift runs the image as an arbitrary UID
# that is in group 0, Kubernetes elsewhere as 10001.
RUN useradd --uid 10001 --gid 0 --no-create-home --shell /usr/sbin/nologin glimpse \
    && mkdir -p /data/images && chgrp -R 0 /data && chmod -R g=u /data
COPY --from=build /opt/glimpse /opt/glimpse
COPY --from=page /page/dist /opt/glimpse/page
ENV PATH=/opt/glimpse/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GLIMPSE_HOST=0.0.0.0 \
    GLIMPSE_STATIC_DIR=/opt/glimpse/page \
    GLIMPSE_STORAGE_URL=file:///data/images
WORKDIR /data
USER 10001:0
EXPOSE 8080 9090
ENTRYPOINT ["glimpse"]
CMD ["serve"]
