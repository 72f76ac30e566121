# syntax=docker/dockerfile:1
# mlgate runtime image: `mlgate scan`, `mlgate controller`, `mlgate admission-server`.
#
# Two stages: the build stage installs mlgate and its runtime dependencies (mlflow-skinny, the MLflow
# client only; no test extras, no MLflow server) into a virtual environment; the runtime stage copies
# that environment onto a clean slim base and runs as an unprivileged numeric user. The image works
# with a read-only root filesystem: everything that writes (temp files, HOME, MLGATE_HOME) points to
# /tmp, which the Helm chart mounts as an emptyDir volume.
#
# Pin the base by digest in your build pipeline for reproducible images, e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest> .
# Any Debian-like base with python3 (3.10+) and its venv module works: nothing here depends on where the
# interpreter lives (/usr/local/bin in the official images, /usr/bin in Debian's; .ci/image-smoke builds
# on a debootstrapped Debian base).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VENV=/opt/mlgate
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv "${VENV}" \
 && "${VENV}/bin/pip" install --upgrade "pip>=24"
COPY pyproject.toml README.md ./
COPY analyzers ./analyzers
COPY controller ./controller
RUN "${VENV}/bin/pip" install . \
 && "${VENV}/bin/pip" check \
 && if "${VENV}/bin/pip" show mlflow >/dev/null 2>&1; then echo "the full mlflow server must not be installed" >&2; exit 1; fi
# The runtime installs nothing: the installer leaves the environment before it is copied.
RUN "${VENV}/bin/python" -m pip uninstall --yes --quiet pip

FROM ${PYTHON_IMAGE} AS runtime
ARG VENV=/opt/mlgate
LABEL org.opencontainers.image.title="mlgate" \
      org.opencontainers.image.description="Static scanner and admission gate for ML models (MLflow, S3, Kubernetes)" \
      org.opencontainers.image.licenses="Apache-2.0"
# No package installer in the image: remove pip and ensurepip (and the wheels it bootstraps from) from
# the base interpreter, wherever the base keeps it.
RUN groupadd --system --gid 10001 mlgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin mlgate \
 && base_python="$(command -v python3)" \
 && for dir in $("${base_python}" -c 'import site, sysconfig; print(*{sysconfig.get_path("stdlib"), *site.getsitepackages()})'); do \
      rm -rf "${dir}/pip" "${dir}"/pip-*.dist-info "${dir}/ensurepip"; \
    done \
 && rm -f "$(dirname "${base_python}")"/pip "$(dirname "${base_python}")"/pip3* \
 && rm -rf /usr/share/python-wheels
COPY --from=build "${VENV}" "${VENV}"
ENV PATH="${VENV}/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    HOME=/tmp \
    MLGATE_HOME=/tmp \
    MLFLOW_DISABLE_TELEMETRY=true \
    PROMETHEUS_DISABLE_CREATED_SERIES=True
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080 8443 9091
ENTRYPOINT ["mlgate"]
CMD ["--help"]
