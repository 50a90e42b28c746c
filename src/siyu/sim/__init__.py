"""The merchant simulator: a seeded, generative private domain (docs/simulator.md)."""
