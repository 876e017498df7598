"""Built-in judges: regex, composite, llm_judge (local HF and a stub OpenAI-compatible server)."""

from __future__ import annotations

import email.utils
import json
import math
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from intentgym.endpoint import retry_after_seconds
from intentgym.errors import IntentgymError
from intentgym.reward_models import REWARD_MODELS
from intentgym.reward_models.llm_judge import JudgeError, OpenAINumberScorer, expected_score

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
    """Answers /v1/chat/completions following a script of behaviours, one per request (the last
    one repeats): "ok", "busy" (0.1 s), "slow" (1 s, past the tests' client timeout), "500",
    "malformed", or (status, Retry-After value or None) for an error the client retries. It
    counts the requests in flight at once."""

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
                if isinstance(action, tuple):
                    status, retry_after = action
                    headers = {} if retry_after is None else {"Retry-After": retry_after}
                    return self._send(status, b'{"error": "slow down"}', headers)
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

            def _send(self, status, data, headers=None):
                try:
                    self.send_response(status)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        # a short poll interval: shutdown() returns within it (the default 0.5 s, per test)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

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


# --- endpoint etiquette: Retry-After, backoff with full jitter, timeouts, concurrency ------------


class FakeTime:
    """Injected into the endpoint instead of time.sleep / time.monotonic: records every wait the
    client asks for and (``advance=True``) moves the clock by it, so no test really sleeps."""

    def __init__(self, advance=True):
        self.now, self.advance = 1000.0, advance
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def sleep(self, seconds):
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds if self.advance else 0.0

    def clock(self):
        with self.lock:
            return self.now


def _endpoint(url, fake, **kw):
    settings = {"timeout": 0.3, "backoff": 0.5, "concurrency": 1, "rng": random.Random(0)}
    return OpenAINumberScorer(url, "judge-x", sleep=fake.sleep, clock=fake.clock, **settings | kw)


def test_retry_after_header_values():
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(" 0 ") == 0.0
    for unreadable in (None, "", "-3", "soon", "nan", "inf"):
        assert retry_after_seconds(unreadable) is None
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    when = email.utils.parsedate_to_datetime(date).timestamp()
    assert retry_after_seconds(date, now=when - 12.5) == pytest.approx(12.5)
    assert retry_after_seconds(date, now=when + 60) == 0.0  # a date in the past: go now


def test_endpoint_waits_as_long_as_retry_after_asks(stub):
    server = stub((429, "2"), "ok")
    fake = FakeTime()
    scorer = _endpoint(server.url, fake)
    assert scorer.distributions(["x"]) == [{80: pytest.approx(0.5), 20: pytest.approx(0.25)}]
    assert scorer.requests == len(server.requests) == 2
    assert fake.sleeps == [2.0]  # the server's number, not the jittered backoff


def test_endpoint_reads_an_http_date_and_caps_retry_after(stub):
    in_30s = email.utils.formatdate(time.time() + 30, usegmt=True)  # whole seconds
    server = stub((503, in_30s), "ok")
    fake = FakeTime()
    _endpoint(server.url, fake).distributions(["x"])
    assert len(fake.sleeps) == 1 and 28.0 < fake.sleeps[0] <= 30.0
    server = stub((429, "3600"), (429, "3600"), "ok")
    fake = FakeTime()
    _endpoint(server.url, fake, max_backoff=5.0).distributions(["x"])
    assert fake.sleeps == [5.0, 5.0] and len(server.requests) == 3
    server = stub((429, "whenever"), "ok")  # unreadable: the usual jittered backoff
    fake = FakeTime()
    _endpoint(server.url, fake, backoff=0.5).distributions(["x"])
    assert len(fake.sleeps) == 1 and 0.0 <= fake.sleeps[0] <= 0.5


def test_retry_after_holds_back_the_clients_other_requests(stub):
    """Only the first request gets the 429, yet the second waits out the same pause (the clock
    stands still here, so the pause is still on when the second request starts)."""
    server = stub((429, "5"), "ok")
    fake = FakeTime(advance=False)
    assert len(_endpoint(server.url, fake).distributions(["a", "b"])) == 2
    assert len(server.requests) == 3 and fake.sleeps == [5.0, 5.0]


def test_endpoint_backs_off_with_full_jitter_after_500s(stub):
    server = stub("500", "500", "ok")
    fake = FakeTime()
    scorer = _endpoint(server.url, fake, backoff=0.5, max_retries=3)
    assert scorer.distributions(["x"])[0][80] == pytest.approx(0.5)
    assert scorer.requests == len(server.requests) == 3
    assert len(fake.sleeps) == 2 and 0 <= fake.sleeps[0] <= 0.5 and 0 <= fake.sleeps[1] <= 1.0
    # exhausted: max_retries + 1 attempts, each wait within its doubling, capped ceiling
    server = stub("500")
    fake = FakeTime()
    scorer = _endpoint(server.url, fake, backoff=1.0, max_backoff=3.0, max_retries=4)
    with pytest.raises(JudgeError, match=r"failed after 5 attempts; last error: HTTP 500"):
        scorer.distributions(["x"])
    assert len(server.requests) == 5 and len(fake.sleeps) == 4
    assert all(0 <= w <= c for w, c in zip(fake.sleeps, (1.0, 2.0, 3.0, 3.0), strict=True))


def test_backoff_jitter_stays_within_its_bounds_and_spreads():
    scorer = OpenAINumberScorer(
        "http://127.0.0.1:9/v1", "m", backoff=1.0, max_backoff=10.0, rng=random.Random(1)
    )
    for retry in range(1, 9):
        ceiling = min(10.0, 2.0 ** (retry - 1))
        waits = [scorer.backoff_delay(retry) for _ in range(400)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert min(waits) < 0.05 * ceiling and max(waits) > 0.95 * ceiling  # full jitter
    assert OpenAINumberScorer("http://127.0.0.1:9/v1", "m", backoff=0.0).backoff_delay(3) == 0.0
    with pytest.raises(IntentgymError, match="max_backoff >= 0"):
        OpenAINumberScorer("http://127.0.0.1:9/v1", "m", max_backoff=-1)
    assert _judge("http://127.0.0.1:9/v1", max_backoff=7.5).backend.max_backoff == 7.5


def test_endpoint_retries_timeouts_then_answers(stub):
    server = stub("slow", "slow", "ok")  # each "slow" outlasts the 0.3 s client timeout
    fake = FakeTime()
    scorer = _endpoint(server.url, fake, backoff=0.5, max_retries=2)
    assert scorer.distributions(["x"])[0][80] == pytest.approx(0.5)
    assert scorer.requests == 3
    assert len(fake.sleeps) == 2 and 0 <= fake.sleeps[0] <= 0.5 and 0 <= fake.sleeps[1] <= 1.0


def test_concurrency_limit_holds_through_retries(stub):
    server = stub(*[(429, "1")] * 4, "busy")
    fake = FakeTime()
    scorer = _endpoint(server.url, fake, concurrency=3, max_retries=5)
    assert len(scorer.distributions(["x"] * 9)) == 9
    assert len(server.requests) == 13 and scorer.requests == 13
    assert 1 <= server.max_in_flight <= 3
    # two callers sharing one client share its limit too
    server = stub("busy")
    scorer = _endpoint(server.url, FakeTime(), concurrency=2)
    callers = [threading.Thread(target=scorer.distributions, args=(["x"] * 4,)) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(server.requests) == 8 and server.max_in_flight == 2


def test_endpoint_progress_bar_only_when_asked(stub, capsys):
    server = stub("ok")
    scorer = _endpoint(server.url, FakeTime(), concurrency=2)
    scorer.distributions(["x"] * 3, desc="judging")
    assert "judging" in capsys.readouterr().err
    scorer.distributions(["x"] * 3)
    assert capsys.readouterr().err == ""
