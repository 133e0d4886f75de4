"""Defenses: Keras layers put between a victim and the outside world."""
