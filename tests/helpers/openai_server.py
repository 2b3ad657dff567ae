"""A scripted OpenAI-compatible HTTP server on loopback, for tests and benchmarks.

It answers `POST /v1/chat/completions` and `GET /v1/models` like OpenAI/vLLM do, so the real `openai`
SDK talks to it over real HTTP. Replies come from a FIFO of scripted replies (`queue`) and, when that
is empty, from a `responder(request_json) -> str | Reply` function. Every request body is recorded.

    with OpenAIStandIn(responder=lambda req: '["claim one"]', latency_s=0.1) as server:
        settings = LLMSettings(base_url=server.url, model="stand-in")
        server.queue(Reply(status=429, headers={"Retry-After": "0"}))   # next request: rate limited
        ...
        assert server.request_count == 2

A scripted `Reply(raw_body=..., content_type="text/html")` answers with any body at all: an HTML page or a
cut-off JSON object with HTTP 200, as a proxy error page or a captive portal does.

`reasoning_model=True` makes it refuse what OpenAI's reasoning models (o-series, gpt-5, gpt-5-mini)
refuse in Chat Completions, one parameter per request and with OpenAI's exact error bodies
(`REASONING_REFUSALS`): `max_tokens` (use `max_completion_tokens`), a `temperature` other than 1, and
`seed`. Refused requests are recorded too (`requests`), and count in `refused_count`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    content: str | None = None        # the assistant message content
    status: int = 200
    delay_s: float = 0.0              # extra wait before answering (simulate timeouts)
    headers: dict = field(default_factory=dict)
    raw_body: str | None = None       # send this body verbatim instead of a completion object
    content_type: str = "application/json"   # e.g. "text/html" for a proxy's or captive portal's page
    usage: tuple[int, int] | None = (0, 0)  # (prompt_tokens, completion_tokens); None omits `usage`


Responder = Callable[[dict], "str | Reply"]

# (parameter, refused when the request has it and ..., OpenAI's error object), checked in this order.
REASONING_REFUSALS: tuple[tuple[str, Callable[[object], bool], dict], ...] = (
    ("max_tokens", lambda value: True, {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                   "'max_completion_tokens' instead.",
        "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}),
    ("temperature", lambda value: value != 1, {
        "message": "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) "
                   "value is supported.",
        "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}),
    ("seed", lambda value: True, {
        "message": "Unsupported parameter: 'seed' is not supported with this model.",
        "type": "invalid_request_error", "param": "seed", "code": "unsupported_parameter"}),
)


def reasoning_refusal(request: dict) -> Reply | None:
    """The 400 an OpenAI reasoning model sends for the first parameter of `request` it does not support."""
    for param, refused, error in REASONING_REFUSALS:
        if param in request and refused(request[param]):
            if param == "temperature":
                error = {**error, "message": error["message"].replace("support 0", f"support {request[param]:g}")}
            return Reply(status=400, raw_body=json.dumps({"error": error}))
    return None


class OpenAIStandIn:
    def __init__(self, responder: Responder | None = None, latency_s: float = 0.0,
                 reject_json_schema: bool = False, reject_json_object: bool = False,
                 model: str = "stand-in", reasoning_model: bool = False) -> None:
        self.responder = responder
        self.latency_s = latency_s
        self.reject_json_schema = reject_json_schema      # answer 400, as servers without structured output
        self.reject_json_object = reject_json_object
        self.model = model
        self.reasoning_model = reasoning_model             # refuse temperature/seed/max_tokens as OpenAI does
        self.refused_count = 0
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0                            # the most requests served at once
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def queue(self, *replies: Reply | str) -> None:
        with self._lock:
            self._queue.extend(r if isinstance(r, Reply) else Reply(content=r) for r in replies)

    def start(self) -> "OpenAIStandIn":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "OpenAIStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- request handling ---------------------------------------------------------------------
    def _next_reply(self, request: dict) -> Reply:
        refusal = reasoning_refusal(request) if self.reasoning_model else None
        with self._lock:
            self.requests.append(request)
            if refusal is not None:
                self.refused_count += 1
                return refusal
            scripted = self._queue.pop(0) if self._queue else None
        if scripted is not None:
            return scripted
        fmt = (request.get("response_format") or {}).get("type")
        if (fmt == "json_schema" and self.reject_json_schema) or (fmt == "json_object" and self.reject_json_object):
            return Reply(status=400, raw_body=json.dumps({"error": {
                "message": f"response_format {fmt} is not supported", "type": "invalid_request_error"}}))
        if self.responder is None:
            return Reply(status=500, raw_body=json.dumps({"error": {"message": "no scripted reply"}}))
        answer = self.responder(request)
        return answer if isinstance(answer, Reply) else Reply(content=answer)

    def _completion(self, reply: Reply) -> dict:
        body = {"id": "chatcmpl-standin", "object": "chat.completion", "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply.content}}]}
        if reply.usage is not None:
            body["usage"] = {"prompt_tokens": reply.usage[0], "completion_tokens": reply.usage[1],
                             "total_tokens": sum(reply.usage)}
        return body

    def _handler_class(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else every reply waits ~40 ms for a delayed ACK

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: str, headers: dict | None = None,
                      content_type: str = "application/json") -> None:
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": stand_in.model, "object": "model", "owned_by": "tests"}]}))
                else:
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode("utf-8")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                    return
                request = json.loads(raw)
                request["_authorization"] = self.headers.get("Authorization", "")
                reply = stand_in._next_reply(request)
                with stand_in._lock:
                    stand_in.in_flight += 1
                    stand_in.max_in_flight = max(stand_in.max_in_flight, stand_in.in_flight)
                try:
                    if stand_in.latency_s or reply.delay_s:
                        time.sleep(stand_in.latency_s + reply.delay_s)
                finally:
                    with stand_in._lock:
                        stand_in.in_flight -= 1
                if reply.raw_body is not None:
                    body = reply.raw_body
                elif reply.status >= 400:
                    body = json.dumps({"error": {"message": f"scripted HTTP {reply.status}",
                                                 "type": "server_error"}})
                else:
                    body = json.dumps(stand_in._completion(reply))
                self._send(reply.status, body, reply.headers, reply.content_type)

        return Handler
