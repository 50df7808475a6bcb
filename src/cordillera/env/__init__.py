"""Gymnasium interfaces over the simulator: single-scene, natively batched, and self-play."""
