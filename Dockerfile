# YET Dragon: the project's SageMaker container. SageMaker runs `docker run IMAGE train` for training
# jobs, `docker run IMAGE serve` for endpoints and batch transform, and the Model Monitor schedule runs the
# `monitor` entry point (its ContainerEntrypoint), the training workflow's Fargate task runs `transform` for
# a large history; the workflows' Lambda functions run the same image
# through the Lambda runtime interface client. See README, "Deploy on AWS", or `make image`.
#
# The base is Python 3.11, the version requirements.lock was resolved with (and the venv's): AWS's
# sagemaker-scikit-learn images are Python 3.12 (1.4-2) or older, and this image needs nothing from them,
# since `train` and `serve` are the project's own entry points. The registry is a build argument so that a
# team can pull through its own account and region (an ECR pull-through cache,
# <account>.dkr.ecr.<region>.amazonaws.com/<prefix>) instead of the public mirror.
ARG BASE_REGISTRY=public.ecr.aws/docker/library
ARG PYTHON_VERSION=3.11
FROM ${BASE_REGISTRY}/python:${PYTHON_VERSION}-slim-bookworm

ARG GIT_COMMIT=unknown
ARG GIT_REPOSITORY=unknown

LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.source="${GIT_REPOSITORY}"

# The run records this commit as mlflow.source.git.commit: the image has no .git to ask.
ENV DRAGON_GIT_COMMIT=${GIT_COMMIT} \
    DRAGON_GIT_REPOSITORY=${GIT_REPOSITORY} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MLFLOW_DISABLE_TELEMETRY=true

WORKDIR /opt/program

# Locked dependencies first, so that a code change does not reinstall them: the same requirements.lock as
# the venv and CI. Two pinned additions only the cloud needs: awslambdaric lets the stack's Lambda functions
# run this image (ImageConfig: python -m awslambdaric deploy.lambdas.<handler>; the scientific stack is far
# over a Lambda zip's 250 MB, not over an image's 10 GB), sagemaker-mlflow reaches the managed MLflow server.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock awslambdaric==4.2.2 sagemaker-mlflow==0.5.0

# Then the project itself, without touching the locked dependencies.
COPY pyproject.toml README.md ./
COPY dragon ./dragon
COPY training ./training
COPY optimizer ./optimizer
COPY inference ./inference
COPY deploy ./deploy
RUN pip install --no-cache-dir --no-deps . \
    && command -v train \
    && command -v serve \
    && command -v monitor \
    && command -v transform

EXPOSE 8080
# No ENTRYPOINT: SageMaker passes `train` or `serve` as the command (Model Monitor `monitor` as the entry
# point, the training workflow's Fargate task `transform`), all console scripts on PATH;
# Lambda sets its own entry point and handler from the function's ImageConfig.
CMD ["serve"]
