# One image for every Orchid process: the command picks server, worker or scheduler.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY . .
RUN pip install --no-cache-dir .
USER nobody
CMD ["python", "-m", "server"]
