"""The SageMaker-compatible HTTP app: /ping, /execution-parameters, /invocations.

Each worker process builds the app with `create_app()` (uvicorn factory): the
bundle is loaded and verified in the lifespan, before the worker accepts a
connection, so /ping answers 200 only from a worker that can recommend.
Bad input is answered 4xx or as per-record errors; only a genuine bug reaches
the catch-all handler, which logs it and answers 500 without a traceback.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dragon.bundle import Bundle, load_bundle
from inference import payloads
from inference.answering import Answerer
from inference.capture import CaptureCounts, CaptureWriter, capture_event
from inference.config import ServeConfig
from inference.payloads import RequestRejected
from inference.schemas import (
    CaptureCounters,
    ErrorResponse,
    ExecutionParameters,
    InstancesRequest,
    Ping,
    Predictions,
    RecordError,
    StateRequest,
)
from optimizer.recommendation import Recommendation

log = logging.getLogger("dragon.serve")

VERSION_HEADER = "X-Model-Version"
# Names the CSV columns that are not tags of the plant, which the answer ignored (dragon.data.table_columns).
IGNORED_HEADER = "X-Ignored-Columns"
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
# Recommendations run in threads so /ping stays responsive under load; a few per worker
# are enough to overlap I/O, more only contend for the GIL.
RECOMMEND_THREADS = 4


@dataclass
class Worker:
    config: ServeConfig
    bundle: Bundle
    answerer: Answerer
    capture: CaptureWriter | None
    limiter: anyio.CapacityLimiter
    ignored_columns: set[str] = field(default_factory=set)  # logged once each

    def note_ignored(self, columns: list[str]) -> None:
        new = [column for column in columns if column not in self.ignored_columns]
        if new:
            self.ignored_columns.update(new)
            log.info("ignoring CSV column(s) that are not tags of the plant: %s", ", ".join(new))

    @property
    def model_version(self) -> str:
        return self.answerer.model_version


def load_answerer(config: ServeConfig) -> Answerer:
    """Load and verify the bundle and compile its recommender; raises BundleError if it does not verify."""
    bundle = load_bundle(config.bundle)
    return Answerer.load(bundle, config.model_version or bundle.fingerprint)


def _start_worker(config: ServeConfig, answerer: Answerer | None) -> Worker:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # workers, not BLAS threads, use the cores
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    answerer = answerer or load_answerer(config)
    bundle = answerer.bundle
    capture = (
        CaptureWriter(config.capture_dir, max_bytes=config.capture_max_bytes) if config.capture_dir else None
    )
    log.info(
        "worker %d ready: plant %s, model version %s, bundle %s, capture %s",
        os.getpid(),
        bundle.spec.name,
        answerer.model_version,
        config.bundle,
        config.capture_dir or "off",
    )
    return Worker(config, bundle, answerer, capture, anyio.CapacityLimiter(RECOMMEND_THREADS))


_STATE_SCHEMAS = {"anyOf": [StateRequest.model_json_schema(), InstancesRequest.model_json_schema()]}
_TEXT_SCHEMA = {"schema": {"type": "string"}}
_ERROR_STATUSES = {
    400: "Unreadable body or bad plant state (names the record and tag)",
    406: "Accept names no type the server can answer in",
    413: "Body larger than SAGEMAKER_MAX_PAYLOAD_IN_MB",
    415: "Unsupported Content-Type",
}


def create_app(config: ServeConfig | None = None, answerer: Answerer | None = None) -> FastAPI:
    """The app of one worker; `answerer`: the bundle already loaded in this process (single worker)."""
    config = config or ServeConfig.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.worker = _start_worker(config, answerer)
        yield
        if app.state.worker.capture:
            app.state.worker.capture.close()

    app = FastAPI(
        title="YET Dragon recommendation endpoint",
        version="1",
        description="SageMaker-compatible hosting contract: setpoint recommendations for one plant.",
        lifespan=lifespan,
    )

    def answer(worker: Worker, body: bytes, status: int, media: str) -> Response:
        return Response(
            body, status_code=status, media_type=media, headers={VERSION_HEADER: worker.model_version}
        )

    def refuse(worker: Worker, status: int, error: str, details: list[str]) -> Response:
        body = ErrorResponse(error=error, details=details).model_dump_json().encode()
        return answer(worker, body, status, payloads.JSON)

    @app.exception_handler(Exception)
    async def genuine_bug(request: Request, error: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": "internal error (logged on the server)", "details": []}, status_code=500
        )

    @app.get("/ping", response_model=Ping)
    async def ping(request: Request) -> Response:
        worker: Worker = request.app.state.worker
        counts = worker.capture.counts if worker.capture else CaptureCounts()
        body = Ping(
            status="ok",
            model_version=worker.model_version,
            plant=worker.bundle.spec.name,
            worker_pid=os.getpid(),
            capture=CaptureCounters(enabled=worker.capture is not None, **asdict(counts)),
        )
        return answer(worker, body.model_dump_json().encode(), 200, payloads.JSON)

    @app.get("/execution-parameters", response_model=ExecutionParameters)
    async def execution_parameters() -> ExecutionParameters:
        return ExecutionParameters(
            MaxConcurrentTransforms=config.workers,
            BatchStrategy="MULTI_RECORD",
            MaxPayloadInMB=config.max_payload_mb,
        )

    @app.post(
        "/invocations",
        response_class=JSONResponse,
        response_model=Recommendation | Predictions,
        responses={
            200: {
                "description": 'A recommendation for a {"state"} body; otherwise one entry per record, in '
                'order (JSON: {"predictions": [...]}, JSON Lines: one line each, CSV: one row each). '
                f"CSV columns that are not tags of the plant are ignored and named in {IGNORED_HEADER}.",
                "headers": {
                    IGNORED_HEADER: {
                        "description": "CSV columns ignored as not tags of the plant",
                        "schema": {"type": "string"},
                    }
                },
                "content": {payloads.JSONLINES: _TEXT_SCHEMA, payloads.CSV: _TEXT_SCHEMA},
            },
            **{
                status: {"model": ErrorResponse, "description": text}
                for status, text in _ERROR_STATUSES.items()
            },
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    payloads.JSON: {"schema": _STATE_SCHEMAS},
                    payloads.JSONLINES: _TEXT_SCHEMA,
                    payloads.CSV: _TEXT_SCHEMA,
                },
            }
        },
    )
    async def invocations(request: Request) -> Response:
        """Recommend setpoints for each plant state in the body (JSON, JSON Lines or CSV)."""
        worker: Worker = request.app.state.worker
        try:
            content_type = payloads.request_type(request.headers.get("content-type"))
            answer_type = payloads.answer_type(request.headers.get("accept"))
            body = await _read_body(request, config.max_payload_bytes)
        except RequestRejected as rejected:
            return refuse(worker, rejected.status_code, rejected.message, rejected.details)
        try:
            payload = payloads.decode(body, content_type, worker.bundle.spec)
            results = await anyio.to_thread.run_sync(
                worker.answerer.answer, payload.records, limiter=worker.limiter
            )
        except RequestRejected as rejected:
            response = refuse(worker, rejected.status_code, rejected.message, rejected.details)
        else:
            if payload.single and isinstance(results[0], RecordError):
                response = refuse(worker, 400, "state: the plant state cannot be used", results[0].errors)
            else:
                encoded = payloads.encode(
                    results, single=payload.single, answer=answer_type, model_version=worker.model_version
                )
                response = answer(worker, encoded, 200, answer_type)
                if payload.ignored_columns:
                    response.headers[IGNORED_HEADER] = ", ".join(payload.ignored_columns)
                    worker.note_ignored(payload.ignored_columns)
        if worker.capture:
            worker.capture.submit(
                capture_event(
                    content_type,
                    body,
                    response.media_type,
                    response.body,
                    request.headers.get(INFERENCE_ID_HEADER),
                )
            )
        return response

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = RequestRejected(
        413,
        f"body larger than the {limit // payloads.MEGABYTE} MB payload limit",
        ["split the records over several requests (SAGEMAKER_MAX_PAYLOAD_IN_MB sets the limit)"],
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
