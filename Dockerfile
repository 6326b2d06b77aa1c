# YET Dragon: the custom SageMaker scikit-learn container. SageMaker runs `docker run IMAGE train`
# for training jobs and `docker run IMAGE serve` for endpoints and batch transform; the workflows'
# Lambda functions run the same image through the Lambda runtime interface client.
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) \
#     --build-arg GIT_REPOSITORY=$(git remote get-url origin) -t yet-dragon:$(git rev-parse --short HEAD) .
ARG REGION=us-east-1
ARG SKLEARN_IMAGE_ACCOUNT=683313688378
FROM ${SKLEARN_IMAGE_ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3

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
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MLFLOW_DISABLE_TELEMETRY=true

WORKDIR /opt/program

# Locked dependencies first, so that a code change does not reinstall them. awslambdaric lets the
# stack's Lambda functions run this same image (ImageConfig: python -m awslambdaric deploy.lambdas.<handler>):
# the scientific stack is far over a Lambda zip's 250 MB, not over an image's 10 GB.
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
    && command -v serve

EXPOSE 8080
# No ENTRYPOINT: SageMaker passes `train` or `serve` as the command, both console scripts on PATH;
# Lambda sets its own entry point and handler from the function's ImageConfig.
CMD ["serve"]
