"""The steps that run next to the engine, written once: on the laptop for direct and tunnel
modes, on the server for the agent. ``results`` holds the values every layer above shares
(requests and outcomes, with ``to_dict``/``from_dict`` for the agent's channel); ``status``
reads the live database; ``engine_side`` backs up into a repository and restores with a safety
backup and a row check."""
