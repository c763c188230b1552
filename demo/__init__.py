"""A first run that shows something: ``make demo`` loads a year of realistic history into the running platform
(``demo/load.py``); the history is planned from the data files here (``demo/plan.py``, ``ideas.toml``,
``people.toml``)."""
