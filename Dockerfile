# One image for web, worker and beat. The GPU worker (finetune extra) builds on it later.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY annotate annotate
COPY labeling labeling
COPY exports exports
COPY templates templates
COPY static static
COPY manage.py ./
RUN pip install --no-cache-dir . && useradd --create-home app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
CMD ["gunicorn", "annotate.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--threads", "2",
     "--worker-class", "gthread", "--keep-alive", "75"]
