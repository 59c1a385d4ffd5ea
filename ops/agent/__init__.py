"""The server side of the remote-ops agent (``python -m ops.agent``). Never imports laptop code
(cli, transport, ssh, provision except the package identity)."""
