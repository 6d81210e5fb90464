"""Counts in words: "1 student", "3 students", never "3 student(s)"."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """COUNT and the noun, singular for one (the plural is NOUN + "s" unless given)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
