"""The lookup engine (HASH, GATHER, SCATTER): the model is hwsim.units.lookup."""
