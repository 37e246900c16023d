"""Example functions: clock and calendar (one async, one taking a nested model)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field

from lollms_server.functions import function


@function
async def current_time(timezone: str = "UTC") -> str:
    """The current date and time in a time zone.

    Args:
        timezone: An IANA time zone name such as "Europe/Paris".
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{timezone}'") from None
    return dt.datetime.now(zone).isoformat(timespec="seconds")


class Period(BaseModel):
    start: dt.date = Field(description="First day (YYYY-MM-DD).")
    end: dt.date = Field(description="Last day (YYYY-MM-DD).")


@function(name="count_days")
def days_in_period(period: Period, include_weekends: bool = True) -> int:
    """Count the days of a period, both ends included.

    Args:
        period: The period.
        include_weekends: False counts only Monday to Friday.
    """
    if period.end < period.start:
        raise ValueError("the period ends before it starts")
    days = (period.end - period.start).days + 1
    if include_weekends:
        return days
    return sum(1 for i in range(days) if (period.start + dt.timedelta(days=i)).weekday() < 5)
