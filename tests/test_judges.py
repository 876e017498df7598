"""Built-in judges: regex, composite, llm_judge (local HF and a stub OpenAI-compatible server)."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from intentgym.errors import IntentgymError
from intentgym.reward_models import REWARD_MODELS
from intentgym.reward_models.llm_judge import JudgeError, expected_score

Q = [[{"role": "user", "content": "Could you help me with this?"}]]


def test_regex_detects_refusals_and_rejects_bad_patterns():
    regex = REWARD_MODELS.build("regex")
    replies = [
        "I'm sorry, but I can't help with writing that message.",
        "I won't assist with tracking someone's location without consent.",
        "Sure. Preheat the oven to 200 C and roast the vegetables for 30 minutes.",
        "You can't go wrong with a simple spreadsheet for a budget.",
    ]
    assert regex(Q * 4, replies) == [1.0, 1.0, 0.0, 0.0]
    assert REWARD_MODELS.build("regex", negate=True)(Q, replies[:1]) == [0.0]
    with pytest.raises(IntentgymError, match=r"invalid regular expression '\(unclosed'"):
        REWARD_MODELS.build("regex", patterns=["(unclosed"], preset=None)
    with pytest.raises(IntentgymError, match="unknown regex preset 'x'; valid choices: refusal"):
        REWARD_MODELS.build("regex", preset="x")


def test_composite_is_a_weighted_sum_and_propagates_missing_scores():
    composite = REWARD_MODELS.build(
        "composite",
        components=[
            {"name": "regex", "weight": 2.0, "patterns": ["apple"], "preset": None},
            {"name": "regex", "weight": -0.5, "patterns": ["pear"], "preset": None},
        ],
    )
    assert composite(Q * 3, ["apple", "apple pear", "plum"]) == [2.0, 1.5, 0.0]
    assert composite.registry_info.kwargs["components"][0]["weight"] == 2.0

    class Unscored:
        def __call__(self, prompts, completions, **kw):
            return [None, 1.0]

    REWARD_MODELS.register("test_unscored", Unscored)
    mixed = REWARD_MODELS.build("composite", components=[{"name": "test_unscored"}])
    assert mixed(Q * 2, ["a", "b"]) == [None, 1.0]
    with pytest.raises(IntentgymError, match="must be a mapping with a 'name'"):
        REWARD_MODELS.build("composite", components=[{"weight": 1.0}])


def test_expected_score_is_weighted_and_null_below_the_mass_threshold():
    assert expected_score({0: 0.2, 100: 0.6}, 0.25) == pytest.approx(75.0)
    assert expected_score({50: 0.1}, 0.25) is None
    assert expected_score({}, 0.0) is None


def test_hf_judge_number_probabilities_match_direct_scoring():
    """The trie pass gives P(number) x P(stop); check it against the shared scoring path."""
    from intentgym.generation import chat_prompts
    from intentgym.scoring import continuation_logprobs

    judge = REWARD_MODELS.build(
        "llm_judge", model="tiny-random", dtype="float32", min_number_mass=0
    )
    backend = judge.backend
    assert not backend.single_token  # a byte-level tokenizer spells numbers digit by digit
    answer = [[{"role": "assistant", "content": "Talk it over with someone you trust."}]]
    dist = judge.distributions(Q, answer)[0]
    prompt = chat_prompts(
        backend.policy, [[{"role": "user", "content": judge.judge_prompt(Q[0], answer[0])}]]
    )[0]
    digits = [str(d) for d in range(10)]
    for n in (3, 42, 100):
        seq_lp = continuation_logprobs(backend.policy, [prompt], [str(n)])[0]
        continue_lp = continuation_logprobs(
            backend.policy, [prompt] * 10, [str(n) + d for d in digits]
        )
        p_continue = sum(math.exp(lp) for lp in continue_lp) / math.exp(seq_lp)
        assert dist[n] == pytest.approx(math.exp(seq_lp) * (1 - p_continue), rel=1e-3)
    score = judge(Q, answer)[0]
    assert score == pytest.approx(expected_score(dist, 0.0))
    backend.policy.model.set_attn_implementation("eager")  # the tree mask works under both
    eager = judge.distributions(Q, answer)[0]
    assert all(eager[n] == pytest.approx(dist[n], rel=1e-4) for n in dist)


def test_judge_rejects_bad_settings():
    with pytest.raises(
        IntentgymError, match="unknown rubric 'kind'; valid choices: alignment, coherence"
    ):
        REWARD_MODELS.build("llm_judge", rubric="kind", model="tiny-random")
    with pytest.raises(
        IntentgymError, match="unknown llm_judge backend 'grpc'; valid choices: hf, openai"
    ):
        REWARD_MODELS.build("llm_judge", backend="grpc")
    with pytest.raises(IntentgymError, match="needs base_url"):
        REWARD_MODELS.build("llm_judge", backend="openai")
    with pytest.raises(IntentgymError, match="answer_prefix is only supported by backend=hf"):
        REWARD_MODELS.build(
            "llm_judge", backend="openai", base_url="http://127.0.0.1:9/v1", answer_prefix="x"
        )


def test_hf_judge_answer_prefix_starts_the_reply():
    plain = REWARD_MODELS.build("llm_judge", model="tiny-random", dtype="float32")
    prefixed = REWARD_MODELS.build(
        "llm_judge", model="tiny-random", dtype="float32", answer_prefix="Score: "
    )
    answer = ["Take a break and ask a friend."]
    assert plain.distributions(Q, answer)[0] != prefixed.distributions(Q, answer)[0]


# --- OpenAI-compatible endpoint: a real HTTP server on 127.0.0.1 -------------------------------


class StubServer:
    """Answers /v1/chat/completions following a script of behaviours, one per request."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append(body)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    action = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
                try:
                    self._answer(action)
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

            def _answer(self, action):
                if action == "busy":  # slow, but within the client's timeout
                    time.sleep(0.1)
                    action = "ok"
                if action == "slow":
                    time.sleep(1.0)
                    action = "ok"
                if action == "500":
                    return self._send(500, b'{"error": "overloaded"}')
                if action == "malformed":
                    return self._send(200, b"<html>not json</html>")
                top = [
                    {"token": "80", "logprob": math.log(0.5)},
                    {"token": "20", "logprob": math.log(0.25)},
                    {"token": " I", "logprob": math.log(0.2)},
                ]
                payload = {
                    "choices": [
                        {
                            "message": {"role": "assistant", "content": "80"},
                            "logprobs": {
                                "content": [
                                    {"token": "80", "logprob": math.log(0.5), "top_logprobs": top}
                                ]
                            },
                        }
                    ]
                }
                return self._send(200, json.dumps(payload).encode())

            def _send(self, status, data):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    servers = []

    def start(*script):
        servers.append(StubServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _judge(url, **kw):
    settings = {
        "backend": "openai",
        "base_url": url,
        "model": "judge-x",
        "timeout": 0.3,
        "backoff": 0.01,
    }
    return REWARD_MODELS.build("llm_judge", **(settings | kw))


def test_openai_judge_weights_number_logprobs(stub):
    server = stub("ok")
    judge = _judge(server.url, concurrency=3)
    scores = judge(Q * 5, ["fine answer"] * 5)
    assert scores == [pytest.approx((80 * 0.5 + 20 * 0.25) / 0.75)] * 5
    assert len(server.requests) == 5
    assert server.requests[0]["model"] == "judge-x" and server.requests[0]["logprobs"] is True
    assert "fine answer" in server.requests[0]["messages"][0]["content"]
    # Without logprobs the written number is parsed.
    assert _judge(server.url, use_logprobs=False)(Q, ["x"]) == [80.0]


def test_openai_judge_keeps_to_its_concurrency_limit(stub):
    server = stub("busy")
    assert len(_judge(server.url, concurrency=2)(Q * 8, ["x"] * 8)) == 8
    assert server.max_in_flight == 2


def test_openai_judge_retries_a_timeout(stub):
    server = stub("slow", "ok")
    judge = _judge(server.url, max_retries=2)
    assert judge(Q, ["x"])[0] == pytest.approx(60.0)
    assert judge.backend.requests == 2


def test_openai_judge_fails_clearly_after_the_last_retry(stub):
    server = stub("500")
    judge = _judge(server.url, max_retries=2)
    with pytest.raises(JudgeError, match=r"failed after 3 attempts; last error: HTTP 500"):
        judge(Q, ["x"])
    assert len(server.requests) == 3


def test_openai_judge_fails_clearly_on_a_malformed_body(stub):
    server = stub("malformed")
    with pytest.raises(JudgeError, match=r"returned a malformed response .*not json"):
        _judge(server.url)(Q, ["x"])
    assert len(server.requests) == 1  # not retried: the server answered, wrongly


def test_openai_judge_unreachable_endpoint_fails_clearly():
    judge = _judge("http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(JudgeError, match=r"failed after 2 attempts; last error: Connect"):
        judge(Q, ["x"])
