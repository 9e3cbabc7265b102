"""A clock for the tests: every reading is one millisecond after the one before."""

import datetime as dt


class Clock:
    """A clock that moves one millisecond per reading, from 2024-03-01 12:00 UTC."""

    def __init__(self):
        self.now = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self):
        self.now += dt.timedelta(milliseconds=1)
        return self.now
