# One image for both roles: `sightline serve --redis-url ...` (API) and `sightline worker`.
FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 SIGHTLINE_HOME=/data/home
# torch first and pinned to the CPU build, so nothing pulls the CUDA wheels.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY requirements.lock.txt requirements.nodeps.txt ./
RUN pip install -r requirements.lock.txt && pip install --no-deps -r requirements.nodeps.txt
COPY . .
RUN pip install --no-deps --no-build-isolation -e .
EXPOSE 6699
CMD ["sightline", "serve", "--host", "0.0.0.0"]
