"""The embedded default: a throwaway PostgreSQL and a real OpenSSH server on loopback."""
