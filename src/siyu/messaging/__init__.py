"""Messaging and fatigue control: templates, caps and quiet hours, sends, delivery, guide tasks."""
