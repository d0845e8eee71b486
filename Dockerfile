# The operator image: `docker build .` pulls python:3.11-slim-bookworm and fetches the dependencies
# from PyPI. Offline (as certsmith's own tests build it), pass a locally made base and fill wheels/
# first: `--build-arg BASE=... --build-arg PIP_NO_INDEX=1` (see devtools/certsmith_devtools/image.py).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_FIND_LINKS=/wheels
COPY wheels/ /wheels/
COPY pyproject.toml /src/
COPY operator /src/operator
# The operator's distribution only (the dev tooling is certsmith-devtools, not installed); no installers.
RUN python3 -m venv /opt/certsmith \
    && /opt/certsmith/bin/pip install /src \
    && /opt/certsmith/bin/pip uninstall --yes --quiet pip setuptools

FROM ${BASE}
COPY --from=build /opt/certsmith /opt/certsmith
# USER: kopf names itself after the user, and a numeric UID has no entry in /etc/passwd.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 USER=certsmith
USER 65532:65532
# `docker run IMAGE` runs the operator; `docker run IMAGE version` (or status, check, ...) another command.
ENTRYPOINT ["/opt/certsmith/bin/certsmith"]
CMD ["run"]
