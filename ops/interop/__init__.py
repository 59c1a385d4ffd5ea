"""Files we did not write: old JSON backups and plain SQL dumps in, plain SQL out; one detector."""
