"""Laptop side of the remote-ops agent: connect over SSH, provision, run the agent, move files.

Modules, one job each: ``connection`` (open/close one strict Fabric connection), ``commands``
(the one place remote command strings are built), ``identity`` (version + content hash of the
package), ``provision`` (server venv), ``agent_run`` (talk to ``python -m ops.agent``),
``transfer`` (pull/push files safely), ``jobs`` (setup/backup/restore/status/doctor flows).
"""
