"""An OpenAI-compatible ``/chat/completions`` client that reads the first answer token's distribution.

Shared by the ``llm_judge`` reward model (the numbers 0-100) and constitutional AI's feedback
model (the letters of "(A)" / "(B)"): each passes a ``classify`` function that maps a token (or,
without log-probabilities, the written answer) to the class it stands for.

Requests run ``concurrency`` at a time, each with a ``timeout``; timeouts, connection errors, 429
and 5xx responses are retried ``max_retries`` times with exponential backoff; then the call fails
with an error naming the endpoint, the attempts and the last failure. A response that is not the
expected JSON fails at once with an error quoting it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from intentgym.errors import IntentgymError


class EndpointError(IntentgymError):
    """The endpoint could not produce an answer (it failed, or answered nonsense)."""


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
        concurrency: int = 4,
        use_logprobs: bool = True,
        top_logprobs: int = 20,
        max_tokens: int = 4,
        what: str = "judge endpoint",
    ) -> None:
        import httpx

        if max_retries < 0 or concurrency < 1 or timeout <= 0:
            raise IntentgymError(
                f"{what} needs max_retries >= 0, concurrency >= 1 and timeout > 0; got "
                f"max_retries={max_retries}, concurrency={concurrency}, timeout={timeout}"
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.classify, self.classify_text = classify, classify_text
        self.max_retries = max_retries
        self.backoff = backoff
        self.concurrency = concurrency
        self.use_logprobs = use_logprobs
        self.top_logprobs = top_logprobs
        self.max_tokens = max_tokens
        self.what = what
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self.requests = 0  # attempts made, for tests and logs
        self._lock = threading.Lock()

    def distributions(self, texts: Sequence[str]) -> list[dict[int, float]]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, texts))

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
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            with self._lock:
                self.requests += 1
            try:
                response = self.client.post(self.url, json=self.payload(text))
            except httpx.TimeoutException:
                last = f"timed out after {self.client.timeout.read}s"
                continue
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if response.status_code in self.RETRY_STATUS:
                last = f"HTTP {response.status_code}: {response.text[:200]!r}"
                continue
            if response.status_code >= 400:
                raise EndpointError(
                    f"{self.what} {self.url} refused the request: HTTP "
                    f"{response.status_code}: {response.text[:200]!r}"
                )
            return self.parse(response.text)
        raise EndpointError(
            f"{self.what} {self.url} failed after {self.max_retries + 1} attempts; "
            f"last error: {last}"
        )

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
