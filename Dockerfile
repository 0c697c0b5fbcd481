# betascope: one image for the API and the workers.
#   docker build -t betascope .                                   # CPU torch
#   docker build -t betascope:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
# torch first and on its own layer: it is by far the largest dependency, and the
# index decides between the CPU and the CUDA build
RUN pip install --index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY workers ./workers
COPY experiments ./experiments
COPY web ./web
COPY migrations ./migrations
RUN pip install . && useradd --create-home --uid 10001 betascope
USER betascope

EXPOSE 8000
# the API upgrades the schema before it serves; override the command for a worker
CMD ["betascope", "serve", "--host", "0.0.0.0", "--port", "8000"]
