"""The background thread that POSTs ready payloads to their ``webhook_url``, as Apollo does minutes later."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx

from .deliveries import PostJob, PostOutcome

#: The longest the thread sleeps between checks, so an injected (fake) wall clock still gets served.
_MAX_IDLE_S = 0.1
#: POSTs in flight at once.
_POSTERS = 16


class WebhookDispatcher:
    """Runs due POSTs on daemon threads (a hanging receiver never delays exit), off the sandbox's lock.

    ``take_due`` returns the POSTs due now and whether more work is outstanding (when not, the thread sleeps
    until :meth:`wake`); ``report`` records each outcome. Both are the sandbox's (locked) methods. Started
    lazily on the first asynchronous request; :meth:`close` stops it.
    """

    def __init__(
        self,
        take_due: Callable[[], tuple[list[PostJob], bool]],
        report: Callable[[PostJob, PostOutcome], None],
        timeout_s: float,
    ) -> None:
        self._take_due = take_due
        self._report = report
        self._wake = threading.Event()
        self._stopped = threading.Event()
        # trust_env=False: a proxy from the environment must not see (or swallow) local deliveries.
        self._http = httpx.Client(timeout=timeout_s, trust_env=False, follow_redirects=False)
        self._slots = threading.BoundedSemaphore(_POSTERS)
        self._thread = threading.Thread(target=self._loop, name="apollo-webhook-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Re-check the schedule now (a request was registered)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            jobs, outstanding = self._take_due()
            for job in jobs:
                threading.Thread(target=self._post, args=(job,), name="apollo-webhook-post", daemon=True).start()
            # Nothing outstanding: sleep until a request is registered or a POST reports (a retry to schedule).
            self._wake.wait(_MAX_IDLE_S if outstanding else None)
            self._wake.clear()

    def _post(self, job: PostJob) -> None:
        with self._slots:
            outcome = self._send(job)
        if not self._stopped.is_set():
            self._report(job, outcome)
            self._wake.set()

    def _send(self, job: PostJob) -> PostOutcome:
        try:
            response = self._http.post(job.url, content=job.body, headers={"Content-Type": "application/json"})
            return PostOutcome(response.status_code)
        except httpx.HTTPError as exc:
            # The exception text names the URL, which carries the receiver's secret: keep only its kind.
            return PostOutcome(None, f"webhook unreachable ({type(exc).__name__})")
        except Exception as exc:  # a malformed URL (or a closed client) must fail the delivery, not the thread
            return PostOutcome(None, f"webhook unusable ({type(exc).__name__})")

    def close(self) -> None:
        """Stop the thread; POSTs in flight end on their own and are no longer recorded."""
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._http.close()
