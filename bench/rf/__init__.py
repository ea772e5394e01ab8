"""RF benchmark (`python -m bench.rf`) and the simulated radio channel it and the tests use."""
