"""The numbers of an Apollo connection the run report shows (apart from the client, so that loading the Apollo
plugin's component types does not import httpx: a job with no Apollo component never loads it)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import attrs


@attrs.define
class ApiStats:
    """What the ``api`` section of the run report shows."""

    calls: Counter[str] = attrs.field(factory=Counter)
    #: Credits Apollo reported as consumed.
    credits: Decimal = Decimal(0)
    #: Credits that may have been charged without Apollo saying so: calls whose response was lost after Apollo
    #: may have applied them, and answers that leave the count out (waterfall mode), at their worst case.
    credits_at_risk: Decimal = Decimal(0)
    #: Successful paid calls whose response did not report the credits consumed.
    credits_unreported_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    wait_s: float = 0.0
    outcomes: Counter[str] = attrs.field(factory=Counter)
    #: ``crmsync plan``: calls that would be made (by URL) and the credits they could cost at most.
    planned: Counter[str] = attrs.field(factory=Counter)
    estimated_credits: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The report section."""
        return {
            "calls": dict(self.calls),
            "credits": float(self.credits),
            "credits_confirmed": float(self.credits),
            "credits_at_risk": float(self.credits_at_risk),
            **({"credits_unreported_calls": self.credits_unreported_calls} if self.credits_unreported_calls else {}),
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "wait_s": round(self.wait_s, 3),
            **dict(self.outcomes),
            **(
                {"planned_calls": dict(self.planned), "estimated_credits": self.estimated_credits}
                if self.planned
                else {}
            ),
        }
