"""Trigger-facing code: each blueprint turns HttpRequest / QueueMessage / TimerRequest into domain calls."""
