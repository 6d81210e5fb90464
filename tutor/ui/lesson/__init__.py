"""The lesson screens: learn, lessons, demos, coach, challenges, validate and robot reports."""
