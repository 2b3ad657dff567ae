"""The one LLM client against a real OpenAI-compatible HTTP server on loopback, through the real SDK."""

import json

import pytest

from llm.client import LLMClient, LLMSettings
from llm.types import LLMFailure, LLMResult, Prompt, decode_json_reply
from llm.errors import LLMConfigError, LLMError, ReplyError
from tests.helpers.openai_server import OpenAIStandIn, Reply


def _parse_claims(obj):
    claims = obj.get("claims") if isinstance(obj, dict) else obj
    if not isinstance(claims, list) or not all(isinstance(c, str) and c.strip() for c in claims):
        raise ReplyError("expected a JSON array of non-empty claim strings")
    return claims


CLAIMS = Prompt(name="test.claims", version="2026-11-29.1", system="Split the text into claims.",
                schema={"type": "object", "properties": {"claims": {"type": "array", "items": {"type": "string"}}},
                        "required": ["claims"], "additionalProperties": False},
                parse=_parse_claims, max_output_tokens=64)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-value")
    return "sk-secret-value"


@pytest.fixture
def server():
    with OpenAIStandIn(responder=lambda req: json.dumps({"claims": ["a", "b"]})) as stand_in:
        yield stand_in


def make_client(server, tmp_path=None, **overrides):
    settings = dict(base_url=server.url, model="stand-in", api_key_env="TEST_LLM_KEY", backoff_initial_s=0.01,
                    backoff_max_s=0.05, seed=7)
    if tmp_path is not None:
        settings["cache_path"] = str(tmp_path / "cache.sqlite")
    settings.update(overrides)
    return LLMClient(LLMSettings(**settings))


def test_happy_path_sends_structured_output_temperature_seed_and_key(server, key):
    client = make_client(server)
    result = client.complete(CLAIMS, "The tumour is grade 2. Margins are clear.")
    assert isinstance(result, LLMResult) and result.value == ["a", "b"] and not result.cached
    [request] = server.requests
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["schema"] == CLAIMS.schema
    assert (request["temperature"], request["seed"], request["model"]) == (0.0, 7, "stand-in")
    assert request["_authorization"] == f"Bearer {key}"
    assert key not in json.dumps(client.settings.public_dict()) + json.dumps(client.stats.to_dict())


def test_servers_without_structured_output_fall_back_once(key):
    with OpenAIStandIn(responder=lambda req: '```json\n["only claim"]\n```', reject_json_schema=True,
                       reject_json_object=True) as server:
        client = make_client(server)
        assert client.complete(CLAIMS, "x").value == ["only claim"]
        assert [r.get("response_format", {}).get("type") for r in server.requests] == \
            ["json_schema", "json_object", None]
        assert "JSON schema" in server.requests[-1]["messages"][0]["content"]
        client.complete(CLAIMS, "y")                    # the fallback is remembered: one request
        assert server.request_count == 4


def test_malformed_json_is_retried(server, key):
    server.queue("this is not json", json.dumps({"claims": ["fixed"]}))
    client = make_client(server)
    result = client.complete(CLAIMS, "x")
    assert result.value == ["fixed"] and result.attempts == 2
    assert client.stats.invalid_replies == 1 and client.stats.retries == 1


def test_wrong_schema_every_time_becomes_a_recorded_failure_not_cached(server, key, tmp_path):
    server.responder = lambda req: json.dumps({"claims": [1, 2]})
    client = make_client(server, tmp_path, max_attempts=3)
    outcome = client.try_complete(CLAIMS, "x")
    assert isinstance(outcome, LLMFailure) and outcome.attempts == 3
    assert "invalid reply" in outcome.error and outcome.raw == '{"claims": [1, 2]}'
    assert len(client.cache) == 0 and client.stats.failures == 1
    with pytest.raises(LLMError, match="after 3 attempt"):
        client.complete(CLAIMS, "x")


def test_429_then_success_honours_retry_after(server, key):
    server.queue(Reply(status=429, headers={"Retry-After": "0"}))
    client = make_client(server)
    assert client.complete(CLAIMS, "x").value == ["a", "b"]
    assert server.request_count == 2 and client.stats.retries == 1


def test_5xx_until_attempts_run_out(server, key):
    server.responder = lambda req: Reply(status=503)
    outcome = make_client(server, max_attempts=2).try_complete(CLAIMS, "x")
    assert isinstance(outcome, LLMFailure) and "503" in outcome.error and server.request_count == 2


def test_timeout_is_retried(server, key):
    server.queue(Reply(content='["late"]', delay_s=1.5))
    result = make_client(server, timeout_s=0.3).complete(CLAIMS, "x")
    assert result.value == ["a", "b"] and result.attempts == 2


def test_cache_makes_a_rerun_send_zero_requests(server, key, tmp_path):
    texts = [f"report {i}" for i in range(5)]
    first = make_client(server, tmp_path).map(CLAIMS, texts)
    assert server.request_count == 5 and all(not r.cached for r in first)
    rerun = make_client(server, tmp_path)                # a new process would open the same file
    second = rerun.map(CLAIMS, texts)
    assert server.request_count == 5 and all(r.cached for r in second)
    assert [r.value for r in second] == [r.value for r in first] and rerun.stats.cache_hits == 5
    other_version = Prompt(**{**CLAIMS.__dict__, "version": "2026-11-30.1"})
    rerun.complete(other_version, "report 0")            # a new prompt version is a new cache key
    assert server.request_count == 6


def test_missing_key_is_a_config_error_naming_the_variable_but_dry_run_works(server, monkeypatch, tmp_path):
    monkeypatch.delenv("TEST_LLM_KEY", raising=False)
    client = make_client(server, tmp_path, price_input_per_1m_usd=1.0, price_output_per_1m_usd=2.0)
    estimate = client.estimate(CLAIMS, ["x" * 400, "y" * 400])
    assert estimate.n_requests == 2 and estimate.output_tokens == 128 and estimate.cost_usd > 0
    assert server.request_count == 0
    with pytest.raises(LLMConfigError, match="TEST_LLM_KEY is not set"):
        client.complete(CLAIMS, "x")


def test_rejected_key_and_unknown_model_are_config_errors(server, key):
    server.queue(Reply(status=401))
    with pytest.raises(LLMConfigError, match="rejected the API key"):
        make_client(server).complete(CLAIMS, "x")
    server.queue(Reply(status=404))
    with pytest.raises(LLMConfigError, match="no model 'stand-in'"):
        make_client(server).complete(CLAIMS, "x")


def test_concurrency_limit_is_respected(key):
    with OpenAIStandIn(responder=lambda req: '["c"]', latency_s=0.2) as server:
        client = make_client(server, concurrency=3)
        outcomes = dict(client.imap_unordered(CLAIMS, [f"t{i}" for i in range(9)]))
        assert sorted(outcomes) == list(range(9)) and server.max_in_flight == 3


def test_usage_and_cost_are_counted(server, key):
    server.queue(Reply(content='["a"]', usage=(1000, 200)), Reply(content='["b"]', usage=None))
    client = make_client(server, price_input_per_1m_usd=2.5, price_output_per_1m_usd=10.0)
    client.complete(CLAIMS, "x")
    second = client.complete(CLAIMS, "y")
    assert second.usage.estimated
    assert client.stats.input_tokens >= 1000 and client.cost_usd() == pytest.approx(
        client.stats.input_tokens * 2.5e-6 + client.stats.output_tokens * 1e-5)


@pytest.mark.parametrize("text, value", [
    ('["a", "b"]', ["a", "b"]),
    ('```json\n{"claims": []}\n```', {"claims": []}),
    ('Sure! Here are the claims: ["x"] Hope this helps.', ["x"]),
])
def test_decode_json_reply(text, value):
    assert decode_json_reply(text) == value


@pytest.mark.parametrize("text", ["", "   ", "no json here", "[unclosed"])
def test_decode_json_reply_rejects(text):
    with pytest.raises(ReplyError):
        decode_json_reply(text)


def test_settings_are_validated():
    with pytest.raises(LLMConfigError, match="base_url"):
        LLMSettings(base_url="localhost:8000")
    with pytest.raises(LLMConfigError, match="structured_output"):
        LLMSettings(structured_output="xml")
    with pytest.raises(LLMConfigError, match="both"):
        LLMSettings(price_input_per_1m_usd=1.0)


def test_a_cached_reply_that_no_longer_validates_is_requested_again(server, key, tmp_path):
    make_client(server, tmp_path).complete(CLAIMS, "x")                 # caches ["a", "b"]
    def only_one(obj):
        claims = _parse_claims(obj)
        if len(claims) != 1:
            raise ReplyError("expected exactly one claim")
        return claims
    strict = Prompt(**{**CLAIMS.__dict__, "parse": only_one})
    server.responder = lambda req: '["single"]'
    result = make_client(server, tmp_path).complete(strict, "x")
    assert result.value == ["single"] and not result.cached and server.request_count == 2


def _echo_key_body(key: str) -> str:
    return json.dumps({"error": {"message": f"Incorrect API key provided: {key}. Check it.",
                                 "type": "invalid_request_error"}})


def test_the_key_never_appears_in_errors_even_when_the_server_echoes_it(server, key, caplog):
    """Proxies and self-hosted servers echo the key they received; the message that reaches the user, the
    logs and summary.json (failure reasons) must carry a placeholder instead."""
    server.queue(Reply(status=401, raw_body=_echo_key_body(key)))
    with pytest.raises(LLMConfigError) as rejected:
        make_client(server).complete(CLAIMS, "x")
    assert key not in str(rejected.value) and "rejected the API key" in str(rejected.value)
    server.queue(Reply(status=403, raw_body=_echo_key_body(key)))
    outcome = make_client(server).try_complete(CLAIMS, "x")
    assert isinstance(outcome, LLMFailure) and key not in outcome.error and "403" in outcome.error
    server.queue(*[Reply(status=503, raw_body=_echo_key_body(key))] * 2)
    with caplog.at_level("DEBUG"):
        outcome = make_client(server, max_attempts=2).try_complete(CLAIMS, "x")
    assert isinstance(outcome, LLMFailure) and key not in outcome.error
    assert key not in caplog.text


def test_one_refused_request_does_not_downgrade_structured_output_for_the_run(key):
    """A 400 that is about the request (too long, bad parameter) is not proof that the server lacks
    json_schema: later requests keep structured output."""
    def responder(request):
        if "too long" in request["messages"][-1]["content"]:
            return Reply(status=400, raw_body=json.dumps({"error": {"message": "context length exceeded"}}))
        return '["ok"]'

    with OpenAIStandIn(responder=responder) as server:
        client = make_client(server)
        assert isinstance(client.try_complete(CLAIMS, "too long " * 10), LLMFailure)
        assert client.complete(CLAIMS, "short").value == ["ok"]
        assert server.requests[-1]["response_format"]["type"] == "json_schema"


def test_a_reasoning_model_refusing_parameters_is_adapted_to_once_per_run(key, caplog):
    """OpenAI reasoning models (gpt-5-mini: the official WSI-Metric judge) answer 400 to max_tokens, to a
    temperature other than 1 and to seed, one parameter at a time. The client drops what is refused
    (max_tokens becomes max_completion_tokens), remembers it for the run and says so once in the log."""
    from llm.params import REASONING_TOKENS_ALLOWANCE

    with OpenAIStandIn(responder=lambda req: '["a"]', reasoning_model=True, model="gpt-5-mini") as server:
        client = make_client(server, model="gpt-5-mini")
        with caplog.at_level("WARNING", logger="llm.client"):
            assert client.complete(CLAIMS, "x").value == ["a"]
            assert client.complete(CLAIMS, "y").value == ["a"]
        assert server.refused_count == 3 and server.request_count == 5        # 3 refusals, then 1 per call
        first, accepted, later = server.requests[0], server.requests[3], server.requests[4]
        assert (first["max_tokens"], first["temperature"], first["seed"]) == (64, 0.0, 7)
        for request in (accepted, later):
            assert not {"max_tokens", "temperature", "seed"} & set(request)
            assert request["max_completion_tokens"] == 64 + REASONING_TOKENS_ALLOWANCE
        warnings = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(warnings) == 3 and all("for the rest of this run" in w for w in warnings)
        assert any("'max_tokens'" in w and "max_completion_tokens instead" in w for w in warnings)
        assert client.request_adjustments() == {"max_tokens": "sent as max_completion_tokens",
                                                "seed": "omitted (the model refused it)",
                                                "temperature": "omitted (the model refused it)"}
        assert client.stats.failures == 0 and client.stats.retries == 0


def test_the_refusal_is_read_from_the_openai_error_body_exactly(key):
    """The stand-in's 400 bodies are OpenAI's; a 400 about another parameter is not adapted to."""
    from tests.helpers.openai_server import reasoning_refusal

    body = json.loads(reasoning_refusal({"max_tokens": 5}).raw_body)
    assert body == {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                         "Use 'max_completion_tokens' instead.",
                              "type": "invalid_request_error", "param": "max_tokens",
                              "code": "unsupported_parameter"}}
    body = json.loads(reasoning_refusal({"temperature": 0.0}).raw_body)["error"]
    assert body["code"] == "unsupported_value" and body["message"] == (
        "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is "
        "supported.")
    assert reasoning_refusal({"temperature": 1}) is None
    other = Reply(status=400, raw_body=json.dumps({"error": {"message": "Unsupported parameter: 'top_k'",
                                                             "param": "top_k", "code": "unsupported_parameter"}}))
    with OpenAIStandIn(responder=lambda req: '["a"]') as server:
        server.queue(other)
        client = make_client(server, structured_output="text")
        assert isinstance(client.try_complete(CLAIMS, "x"), LLMFailure) and client.request_adjustments() == {}


def test_a_verbatim_prompt_is_sent_exactly_as_written(server, key):
    """A prompt that is a specification (the official WSI-Metric prompts): no response_format, no schema
    note, in every structured-output mode; its own decoder reads the reply."""
    verbatim = Prompt(**{**CLAIMS.__dict__, "system": "\nSplit the text. \n", "verbatim": True,
                         "decode": lambda text: ["decoded", text]})
    server.responder = lambda req: "plain text"
    result = make_client(server).complete(Prompt(**{**verbatim.__dict__, "parse": lambda obj: obj}), "x")
    assert result.value == ["decoded", "plain text"]
    [request] = server.requests
    assert "response_format" not in request
    assert request["messages"] == [{"role": "system", "content": "\nSplit the text. \n"},
                                   {"role": "user", "content": "x"}]


def test_an_empty_reply_cut_at_the_token_limit_says_so(key):
    def responder(request):
        return Reply(raw_body=json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                          "choices": [{"index": 0, "finish_reason": "length",
                                                       "message": {"role": "assistant", "content": ""}}]}))

    with OpenAIStandIn(responder=responder) as server:
        outcome = make_client(server, max_attempts=2).try_complete(CLAIMS, "x")
    assert isinstance(outcome, LLMFailure) and "token limit" in outcome.error


@pytest.mark.parametrize("body, content_type, shown", [
    ("<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", "text/html", "<html><head>"),
    ("<html><body>Captive portal: log in</body></html>", "application/json", "<html><body>Captive"),
    ('{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "mess', "application/json",
     '{"id": "chatcmpl-1"'),
    ("", "application/json", "(an empty body)"),
])
def test_a_200_reply_whose_body_is_not_json_is_retried_then_a_clear_failure(server, key, caplog, body,
                                                                            content_type, shown):
    """A proxy error page or a captive portal answers HTTP 200 with HTML, or a connection cut the body short:
    the SDK raises JSONDecodeError (JSON content type) or hands back the page as a string (other types)."""
    server.queue(*[Reply(raw_body=body.replace("log in", f"log in ({key})"), content_type=content_type)] * 2)
    with caplog.at_level("DEBUG"):
        outcome = make_client(server, max_attempts=2).try_complete(CLAIMS, "x")
    assert isinstance(outcome, LLMFailure) and outcome.attempts == 2 and server.request_count == 2
    assert "HTTP 200" in outcome.error and "not JSON" in outcome.error and shown in outcome.error
    assert "proxy or captive portal" in outcome.error and server.url in outcome.error
    assert key not in outcome.error and key not in caplog.text
    server.queue(Reply(raw_body=body, content_type=content_type))     # then the endpoint recovers
    assert make_client(server, max_attempts=2).complete(CLAIMS, "x").value == ["a", "b"]


def test_a_200_reply_that_is_json_but_no_chat_completion_is_a_clear_failure(server, key):
    server.queue(*[Reply(raw_body='{"status": "ok"}')] * 2)
    outcome = make_client(server, max_attempts=2).try_complete(CLAIMS, "x")
    assert isinstance(outcome, LLMFailure) and "HTTP 200" in outcome.error
    assert "not a chat completion" in outcome.error and '"status"' in outcome.error


def test_a_reply_nested_too_deeply_is_an_invalid_reply_not_a_recursion_error(server, key):
    server.queue("[" * 50000 + "]" * 50000)
    result = make_client(server).complete(CLAIMS, "x")
    assert result.value == ["a", "b"] and result.attempts == 2
    with pytest.raises(ReplyError, match="nested too deeply"):
        decode_json_reply("[" * 50000 + "]" * 50000)


def test_a_reply_that_echoes_the_key_is_redacted_before_it_is_parsed_cached_or_returned(server, key, tmp_path):
    server.responder = lambda req: json.dumps({"claims": [f"the key is {key}", "b"]})
    client = make_client(server, tmp_path)
    result = client.complete(CLAIMS, "x")
    assert result.value == ["the key is [REDACTED]", "b"] and key not in result.raw
    assert key.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("cache"))
    again = make_client(server, tmp_path).complete(CLAIMS, "x")
    assert again.cached and again.value == ["the key is [REDACTED]", "b"]


def test_a_cached_reply_written_before_redaction_is_redacted_when_read(server, key, tmp_path):
    client = make_client(server, tmp_path)
    client.cache.put(client.cache_key(CLAIMS, "x"), CLAIMS.name, CLAIMS.version, "stand-in",
                     json.dumps({"claims": [f"old {key}"]}), 1, 1)
    result = make_client(server, tmp_path).complete(CLAIMS, "x")
    assert result.cached and result.value == ["old [REDACTED]"] and key not in result.raw


def test_the_cache_file_is_created_only_with_its_first_reply(server, key, monkeypatch, tmp_path):
    monkeypatch.delenv("TEST_LLM_KEY")
    client = make_client(server, tmp_path)
    with pytest.raises(LLMConfigError):
        client.complete(CLAIMS, "x")
    assert not (tmp_path / "cache.sqlite").exists() and len(client.cache) == 0
    monkeypatch.setenv("TEST_LLM_KEY", key)
    client.complete(CLAIMS, "x")
    assert (tmp_path / "cache.sqlite").is_file() and len(make_client(server, tmp_path).cache) == 1


def test_a_cache_file_that_is_not_sqlite_is_refused_when_opened(server, key, tmp_path):
    (tmp_path / "cache.sqlite").write_text("not a database " * 100)
    with pytest.raises(LLMConfigError, match="cannot open it as SQLite"):
        make_client(server, tmp_path)


@pytest.mark.parametrize("text", ["[" * 150 + "]" * 150, "Here it is: " + "[" * 150 + "]" * 150 + " (done)"])
def test_a_reply_nested_too_deeply_says_so_bare_or_inside_prose(text):
    with pytest.raises(ReplyError, match="nested too deeply"):
        decode_json_reply(text)
