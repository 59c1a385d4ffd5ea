"""The sandbox (real PostgreSQL + real sshd) and its provisioned agent, shared with
tests/transport: the schedule is installed through the agent like every remote command."""

from tests.transport.conftest import provisioned, remote  # noqa: F401 - fixtures
