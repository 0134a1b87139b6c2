"""Errors raised for bad input. Every message names the entry it is about."""


class BadInputError(ValueError):
    """An input entry cannot be used (unreadable, disordered, unknown element, bad target...).

    Attributes:
        entry: identifier of the offending entry (file name, id or row).
        reason: what is wrong with it, in words.
    """

    def __init__(self, entry: str, reason: str):
        self.entry = str(entry)
        self.reason = " ".join(str(reason).split())  # one line, whatever a parser said
        super().__init__(f"{self.entry}: {reason}")

    def __reduce__(self):
        """Pickled as its entry and reason (a worker process sends it back to its parent)."""
        return type(self), (self.entry, self.reason)


class SkipReport:
    """Collects entries that were skipped on the user's request (``skip_bad``), with reasons."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, error: BadInputError) -> None:
        self.items.append((error.entry, error.reason))

    def __len__(self) -> int:
        return len(self.items)

    def summary(self, limit: int = 10) -> str:
        """Human-readable summary of the skipped entries (at most ``limit`` listed)."""
        if not self.items:
            return "no entries skipped"
        lines = [f"skipped {len(self.items)} entries:"]
        lines += [f"  {entry}: {reason}" for entry, reason in self.items[:limit]]
        if len(self.items) > limit:
            lines.append(f"  ... and {len(self.items) - limit} more")
        return "\n".join(lines)

    def to_csv(self, path) -> None:
        import csv

        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "reason"])
            writer.writerows(self.items)
