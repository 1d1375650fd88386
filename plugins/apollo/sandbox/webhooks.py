"""The background thread that POSTs ready payloads to their ``webhook_url``, as Apollo does minutes later."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from .deliveries import PostJob, PostOutcome

#: The longest the thread sleeps between checks, so an injected (fake) wall clock still gets served.
_MAX_IDLE_S = 0.1
_POSTERS = 8


class WebhookDispatcher:
    """Runs due POSTs on a small pool, off the sandbox's lock.

    ``take_due`` returns the POSTs due now; ``report`` records each outcome. Both
    are the sandbox's (locked) methods. Started lazily on the first asynchronous request; :meth:`close` stops it.
    """

    def __init__(
        self,
        take_due: Callable[[], list[PostJob]],
        report: Callable[[PostJob, PostOutcome], None],
        timeout_s: float,
    ) -> None:
        self._take_due = take_due
        self._report = report
        self._wake = threading.Event()
        self._stopped = threading.Event()
        # trust_env=False: a proxy from the environment must not see (or swallow) local deliveries.
        self._http = httpx.Client(timeout=timeout_s, trust_env=False, follow_redirects=False)
        self._pool = ThreadPoolExecutor(max_workers=_POSTERS, thread_name_prefix="apollo-webhook")
        self._thread = threading.Thread(target=self._loop, name="apollo-webhook-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Re-check the schedule now (a request was registered)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            jobs = self._take_due()
            for job in jobs:
                self._pool.submit(self._post, job)
            self._wake.wait(_MAX_IDLE_S)
            self._wake.clear()

    def _post(self, job: PostJob) -> None:
        try:
            response = self._http.post(job.url, content=job.body, headers={"Content-Type": "application/json"})
            outcome = PostOutcome(response.status_code)
        except httpx.HTTPError as exc:
            # The exception text names the URL, which carries the receiver's secret: keep only its kind.
            outcome = PostOutcome(None, f"webhook unreachable ({type(exc).__name__})")
        except Exception as exc:  # a malformed URL must fail the delivery, not kill the worker
            outcome = PostOutcome(None, f"webhook unusable ({type(exc).__name__})")
        if not self._stopped.is_set():
            self._report(job, outcome)

    def close(self) -> None:
        """Stop the thread and the pool; POSTs in flight finish but are no longer recorded."""
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()
