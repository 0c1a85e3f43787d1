# One image for every Orchid process: the command picks server, worker or scheduler.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY pyproject.toml README.md ./
COPY settings settings
COPY engine engine
COPY store store
COPY server server
COPY worker worker
COPY scheduler scheduler
COPY devstack devstack
COPY mockapi mockapi
COPY gen gen
RUN pip install --no-cache-dir .
USER nobody
CMD ["python", "-m", "server"]
