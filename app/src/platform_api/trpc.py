"""tRPC v11's HTTP wire format, so a TypeScript tRPC client can call Flask.

- GET  /trpc/<path>?input=<json>            a query; answers {"result":{"data":...}}
- POST /trpc/<path>  (application/json)     a mutation; the body is the input
- GET  /trpc/a,b?batch=1&input={"0":..,"1":..}   a batch; answers a list, HTTP 207
  when the calls' statuses differ
- errors: {"error":{"message","code","data":{"code","httpStatus","path"}}} with
  the JSON-RPC code and HTTP status tRPC uses for that error code.

No transformer (superjson) is used, as in the original server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, request

from . import metrics

log = logging.getLogger("platform_api.trpc")

# tRPC v11: error code -> (JSON-RPC code, HTTP status)
ERROR_CODES: dict[str, tuple[int, int]] = {
    "PARSE_ERROR": (-32700, 400),
    "BAD_REQUEST": (-32600, 400),
    "INTERNAL_SERVER_ERROR": (-32603, 500),
    "NOT_IMPLEMENTED": (-32603, 501),
    "BAD_GATEWAY": (-32603, 502),
    "SERVICE_UNAVAILABLE": (-32603, 503),
    "GATEWAY_TIMEOUT": (-32603, 504),
    "UNAUTHORIZED": (-32001, 401),
    "FORBIDDEN": (-32003, 403),
    "NOT_FOUND": (-32004, 404),
    "METHOD_NOT_SUPPORTED": (-32005, 405),
    "TIMEOUT": (-32008, 408),
    "CONFLICT": (-32009, 409),
    "PRECONDITION_FAILED": (-32012, 412),
    "PAYLOAD_TOO_LARGE": (-32013, 413),
    "UNSUPPORTED_MEDIA_TYPE": (-32015, 415),
    "UNPROCESSABLE_CONTENT": (-32022, 422),
    "TOO_MANY_REQUESTS": (-32029, 429),
    "CLIENT_CLOSED_REQUEST": (-32099, 499),
}
_STATUS_TO_CODE = {status: code for code, (_, status) in reversed(list(ERROR_CODES.items()))}

_NO_INPUT = object()

# Deepest JSON nesting an input may have (objects and arrays). Python's json
# module would otherwise recurse until RecursionError (a 500) on a few
# thousand levels.
MAX_INPUT_DEPTH = 32


class TRPCError(Exception):
    """An error a procedure (or the transport) answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        if code not in ERROR_CODES:
            raise ValueError(f"unknown tRPC error code {code}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return ERROR_CODES[self.code][1]


def code_for_status(status: int) -> str:
    return _STATUS_TO_CODE.get(status, "INTERNAL_SERVER_ERROR" if status >= 500 else "BAD_REQUEST")


def error_envelope(code: str, message: str, path: str | None) -> dict[str, Any]:
    rpc_code, status = ERROR_CODES[code]
    data: dict[str, Any] = {"code": code, "httpStatus": status}
    if path is not None:
        data["path"] = path
    return {"error": {"message": message, "code": rpc_code, "data": data}}


# A procedure gets the parsed input (or None) and returns data, or (data, http_status).
Handler = Callable[[Any], Any]


@dataclass(frozen=True)
class Procedure:
    path: str
    kind: str  # "query" | "mutation"
    handler: Handler
    takes_input: bool = False


def input_depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (iterative: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_INPUT_DEPTH:
            break
        stack.extend((child, depth) for child in children)
    return deepest


class RawJSON:
    """JSON text as PostgreSQL sent it (a json or jsonb value): encode() inserts it as is,
    without parsing it into Python objects and serializing them again."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


def _raw(value: Any) -> Any:
    if isinstance(value, RawJSON):
        return orjson.Fragment(value.text)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _raw_parsed(value: Any) -> Any:
    if isinstance(value, RawJSON):
        return json.loads(value.text)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode(body: Any) -> bytes:
    """A response body as compact UTF-8 JSON (orjson). What orjson refuses and json takes (an
    integer beyond 64 bits, from a JSON column read as one row) goes through json instead."""
    try:
        return orjson.dumps(body, default=_raw)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=_raw_parsed).encode()


def parse_json(raw: str | bytes, code: str, message: str) -> Any:
    """json.loads with a nesting bound; any failure is a TRPCError(code, message)."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise TRPCError("BAD_REQUEST", f"Input is nested deeper than {MAX_INPUT_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise TRPCError(code, message) from None
    if input_depth(data) > MAX_INPUT_DEPTH:
        raise TRPCError("BAD_REQUEST", f"Input is nested deeper than {MAX_INPUT_DEPTH} levels")
    return data


class Router:
    """Procedures by dotted path, served under /trpc.

    max_batch bounds how many calls one request may batch: every call can cost
    a database round trip and its share of the answer, so a batch is a
    multiplier an attacker controls. A path may appear once per batch.
    """

    def __init__(self, max_batch: int = 10) -> None:
        self.procedures: dict[str, Procedure] = {}
        self.max_batch = max_batch

    def route_label(self, name: str) -> str:
        """A metric label from a closed set: a registered procedure or `unknown`."""
        return name if name in self.procedures else "unknown"

    def query(self, path: str, *, takes_input: bool = False) -> Callable[[Handler], Handler]:
        return self._register(path, "query", takes_input)

    def mutation(self, path: str, *, takes_input: bool = True) -> Callable[[Handler], Handler]:
        return self._register(path, "mutation", takes_input)

    def _register(self, path: str, kind: str, takes_input: bool) -> Callable[[Handler], Handler]:
        def decorator(fn: Handler) -> Handler:
            if path in self.procedures:
                raise ValueError(f"procedure {path} registered twice")
            self.procedures[path] = Procedure(path, kind, fn, takes_input)
            return fn

        return decorator

    def blueprint(self) -> Blueprint:
        bp = Blueprint("trpc", __name__)
        bp.add_url_rule("/trpc/<path:paths>", "call", self._view, methods=["GET", "POST"])
        return bp

    # -- transport -------------------------------------------------------

    def _view(self, paths: str) -> Response:
        is_batch = request.args.get("batch") in ("1", "true")
        names = paths.split(",") if is_batch else [paths]
        g.trpc_route = "batch" if is_batch else self.route_label(names[0])
        try:
            if is_batch and len(names) > self.max_batch:
                raise TRPCError("BAD_REQUEST", f"A batch may hold at most {self.max_batch} calls")
            if is_batch and len(set(names)) != len(names):
                raise TRPCError("BAD_REQUEST", "A batch may call each procedure once")
            inputs = self._read_inputs(len(names), is_batch)
        except TRPCError as exc:
            # The request as a whole is unreadable: one error, not a batch.
            path = None if is_batch else names[0]
            return self._respond([(error_envelope(exc.code, exc.message, path), exc.http_status)], is_batch=False)
        results = [self._call(name, inputs[i]) for i, name in enumerate(names)]
        return self._respond(results, is_batch)

    def _read_inputs(self, count: int, is_batch: bool) -> list[Any]:
        if request.method == "POST":
            media = (request.mimetype or "").lower()
            params = {k.lower(): v.lower() for k, v in request.mimetype_params.items()}
            if media != "application/json" or any(k != "charset" or v != "utf-8" for k, v in params.items()):
                raise TRPCError("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
            raw = self._read_body()
            if not raw:
                data: Any = _NO_INPUT
            else:
                data = parse_json(raw, "UNSUPPORTED_MEDIA_TYPE", "Request body is not valid JSON")
        else:
            raw_input = request.args.get("input")
            if raw_input is None:
                data = _NO_INPUT
            else:
                data = parse_json(raw_input, "BAD_REQUEST", 'Failed to parse "input" as JSON')
        if not is_batch:
            return [data]
        if data is _NO_INPUT:
            return [_NO_INPUT] * count
        if not isinstance(data, dict):
            raise TRPCError("BAD_REQUEST", 'Batch "input" must be an object keyed by call index')
        return [data.get(str(i), _NO_INPUT) for i in range(count)]

    @staticmethod
    def _read_body() -> bytes:
        """The body, at most MAX_CONTENT_LENGTH bytes, with or without Content-Length (chunked)."""
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None or not request.environ.get("wsgi.input_terminated"):
            return request.get_data(cache=False)  # Werkzeug refused a Content-Length over the limit
        # Chunked: Werkzeug's stream stops quietly at the limit (a truncated
        # body); read the server's stream one byte past the limit to tell.
        raw = request.environ["wsgi.input"].read(limit + 1)
        if len(raw) > limit:
            raise TRPCError("PAYLOAD_TOO_LARGE", f"Request body is larger than {limit} bytes")
        return raw

    def _call(self, name: str, raw_input: Any) -> tuple[dict[str, Any], int]:
        proc = self.procedures.get(name)
        # HEAD is a GET without the body: a query, never a mutation.
        method_kind = "query" if request.method in ("GET", "HEAD") else "mutation"
        if proc is None:
            return error_envelope("NOT_FOUND", f'No procedure found on path "{name}"', name), 404
        if proc.kind != method_kind:
            verb = "GET" if proc.kind == "query" else "POST"
            return error_envelope("METHOD_NOT_SUPPORTED", f"Use {verb} for a {proc.kind} procedure", name), 405
        if not proc.takes_input and raw_input is not _NO_INPUT and raw_input is not None:
            return error_envelope("BAD_REQUEST", f'Procedure "{name}" takes no input', name), 400
        try:
            outcome = proc.handler(None if raw_input is _NO_INPUT else raw_input)
        except TRPCError as exc:
            return error_envelope(exc.code, exc.message, name), exc.http_status
        except Exception:
            log.exception("procedure %s failed", name)
            metrics.ERRORS.labels(type="procedure").inc()
            return error_envelope("INTERNAL_SERVER_ERROR", "Internal server error", name), 500
        data, status = outcome if isinstance(outcome, tuple) else (outcome, 200)
        return {"result": {"data": data}}, status

    @staticmethod
    def _respond(results: list[tuple[dict[str, Any], int]], is_batch: bool) -> Response:
        if is_batch:
            statuses = {status for _, status in results}
            status = statuses.pop() if len(statuses) == 1 else 207
            body: Any = [envelope for envelope, _ in results]
        else:
            body, status = results[0]
        return current_app.response_class(encode(body), status=status, mimetype="application/json")
