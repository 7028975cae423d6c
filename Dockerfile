# One image for web, worker and beat; the GPU worker builds it with EXTRAS=finetune, which
# installs torch first (from PyPI: the CUDA build) and then transformers, peft and trl.
FROM python:3.11-slim
ARG EXTRAS=""
ARG TORCH_SPEC="torch==2.13.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY annotate annotate
COPY labeling labeling
COPY curation curation
COPY exports exports
COPY finetune finetune
COPY templates templates
COPY static static
COPY manage.py ./
RUN if [ -n "$EXTRAS" ]; then \
      case ",$EXTRAS," in *,finetune,*) pip install --no-cache-dir "$TORCH_SPEC" ;; esac; \
      pip install --no-cache-dir ".[$EXTRAS]"; \
    else pip install --no-cache-dir .; fi \
    && useradd --create-home app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
CMD ["gunicorn", "annotate.wsgi", "--config", "python:annotate.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "4", "--threads", "2",
     "--worker-class", "gthread", "--keep-alive", "75"]
