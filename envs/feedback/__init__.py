"""Feedback-v0: users ask for feedback on their claims, work and plans; raters embody an intent."""
