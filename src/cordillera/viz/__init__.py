"""Pictures of scenes, rollouts and results."""
