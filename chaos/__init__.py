"""The fault suite (``make chaos``, issue 15): the platform's real processes broken while they work, then checked."""
