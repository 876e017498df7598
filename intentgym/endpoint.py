"""An OpenAI-compatible ``/chat/completions`` client that reads the first answer token's distribution.

Shared by the ``llm_judge`` reward model (the numbers 0-100) and constitutional AI's feedback
model (the letters of "(A)" / "(B)"): each passes a ``classify`` function that maps a token (or,
without log-probabilities, the written answer) to the class it stands for.

How it treats the server:

* at most ``concurrency`` requests are in flight per client (a thread pool per call, and a
  semaphore around each request, so callers that share a client share the limit too);
* every request has a ``timeout`` in seconds (httpx's connect, read, write and pool timeouts);
* timeouts, connection errors, 408/409/429 and 5xx responses are retried ``max_retries`` times.
  Before retry k (1, 2, ...) the request waits ``uniform(0, min(max_backoff, backoff * 2**(k-1)))``
  seconds: exponential backoff with full jitter, so requests that failed together do not come
  back together;
* a ``Retry-After`` header on such a response (seconds or an HTTP date) sets that wait instead,
  capped at ``max_backoff`` (default 60 s), and holds back every request of this client until
  then, not only the one that received it;
* after the last retry the call fails with an error naming the endpoint, the attempts and the last
  failure. A response that is not the expected JSON fails at once with an error quoting it.

``sleep`` (default :func:`time.sleep`) and ``clock`` (default :func:`time.monotonic`) can be
injected, so tests record the waits instead of waiting. ``distributions(texts, desc=...)`` shows a
progress bar over the requests (callers pass ``desc=... if ctx.progress else None``).
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timezone
from typing import Any

from intentgym.errors import IntentgymError


class EndpointError(IntentgymError):
    """The endpoint could not produce an answer (it failed, or answered nonsense)."""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds: a number of seconds or an HTTP date
    (RFC 9110, section 10.2.3; a date in the past is 0). None when the header is absent or
    unreadable. ``now``: the wall-clock time (epoch seconds) a date counts from."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class ChatEndpoint:
    """First-token class distributions from an OpenAI-compatible chat-completions endpoint.

    ``classify(token)`` maps a token of the answer's first position to a class (or None); the
    distribution over classes is the summed probability of the top log-probabilities in each.
    Without log-probabilities (``use_logprobs=False``, or a server that returns none),
    ``classify_text(content)`` maps the written answer to one class with probability 1.
    """

    RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        classify: Callable[[str], int | None],
        classify_text: Callable[[str], int | None],
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        concurrency: int = 4,
        use_logprobs: bool = True,
        top_logprobs: int = 20,
        max_tokens: int = 4,
        what: str = "judge endpoint",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        import httpx

        if max_retries < 0 or concurrency < 1 or timeout <= 0 or backoff < 0 or max_backoff < 0:
            raise IntentgymError(
                f"{what} needs max_retries >= 0, concurrency >= 1, timeout > 0, backoff >= 0 and "
                f"max_backoff >= 0; got max_retries={max_retries}, concurrency={concurrency}, "
                f"timeout={timeout}, backoff={backoff}, max_backoff={max_backoff}"
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.classify, self.classify_text = classify, classify_text
        self.max_retries = max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.concurrency = concurrency
        self.sleep, self.clock = sleep, clock
        self.random = rng or random.Random()
        self.use_logprobs = use_logprobs
        self.top_logprobs = top_logprobs
        self.max_tokens = max_tokens
        self.what = what
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self.requests = 0  # attempts made, for tests and logs
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._paused_until = -math.inf  # clock time before which no request starts (Retry-After)

    def distributions(
        self, texts: Sequence[str], desc: str | None = None
    ) -> list[dict[int, float]]:
        """The class distribution of each text's answer, in order; ``desc``: a progress bar
        over the requests with this label (None: none)."""
        from tqdm.auto import tqdm

        out: list[dict[int, float]] = [{} for _ in texts]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._one, text): i for i, text in enumerate(texts)}
            try:
                done = as_completed(futures)
                for future in tqdm(
                    done, total=len(futures), desc=desc, unit="request", disable=desc is None
                ):
                    out[futures[future]] = future.result()
            except BaseException:
                for future in futures:  # queued requests are not sent after a failure
                    future.cancel()
                raise
        return out

    def backoff_delay(self, retry: int) -> float:
        """The wait before retry ``retry`` (1, 2, ...) when the server named none: full jitter,
        uniform in [0, min(max_backoff, backoff * 2**(retry - 1))]."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** min(retry - 1, 64))
        with self._lock:
            return self.random.uniform(0.0, ceiling)

    def _wait(self, until: float) -> None:
        """Sleep until ``until`` and until any pause a ``Retry-After`` set is over."""
        with self._lock:
            until = max(until, self._paused_until)
        remaining = until - self.clock()
        if remaining > 0:
            self.sleep(remaining)

    def payload(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": text}],
            "temperature": 0,
            "max_tokens": 1 if self.use_logprobs else self.max_tokens,
        }
        if self.use_logprobs:
            body |= {"logprobs": True, "top_logprobs": self.top_logprobs}
        return body

    def _one(self, text: str) -> dict[int, float]:
        import httpx

        last = ""
        not_before = -math.inf  # this request's own backoff deadline (clock time)
        for attempt in range(self.max_retries + 1):
            self._wait(not_before)
            with self._lock:
                self.requests += 1
            try:
                with self._slots:
                    response = self.client.post(self.url, json=self.payload(text))
            except httpx.TimeoutException:
                last = f"timed out after {self.client.timeout.read}s"
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if response.status_code not in self.RETRY_STATUS:
                    break
                last = f"HTTP {response.status_code}: {response.text[:200]!r}"
                asked = retry_after_seconds(response.headers.get("Retry-After"))
                if asked is not None:  # the server's word, within our cap, for all requests
                    not_before = self.clock() + min(asked, self.max_backoff)
                    with self._lock:
                        self._paused_until = max(self._paused_until, not_before)
                    continue
            not_before = self.clock() + self.backoff_delay(attempt + 1)
        else:
            raise EndpointError(
                f"{self.what} {self.url} failed after {self.max_retries + 1} attempts; "
                f"last error: {last}"
            )
        if response.status_code >= 400:
            raise EndpointError(
                f"{self.what} {self.url} refused the request: HTTP "
                f"{response.status_code}: {response.text[:200]!r}"
            )
        return self.parse(response.text)

    def parse(self, body: str) -> dict[int, float]:
        """The class distribution in a chat-completions response body."""
        try:
            choice = json.loads(body)["choices"][0]
            content = str(choice["message"]["content"] or "")
            top = (
                choice["logprobs"]["content"][0]["top_logprobs"]
                if self.use_logprobs and choice.get("logprobs")
                else None
            )
            distribution: dict[int, float] = {}
            if top is not None:
                for entry in top:
                    key = self.classify(str(entry["token"]))
                    if key is not None:
                        distribution[key] = distribution.get(key, 0.0) + math.exp(entry["logprob"])
                return distribution
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise EndpointError(
                f"{self.what} {self.url} returned a malformed response "
                f"({type(e).__name__}: {e}): {body[:200]!r}"
            ) from None
        key = self.classify_text(content)
        return {key: 1.0} if key is not None else {}
