"""The simulated outside world: its DNS data and the authentication results it yields."""
