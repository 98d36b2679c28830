"""Conversation state: which conversation a chat request belongs to, the images each conversation holds
(in memory or Redis) and their lifecycle, putting them into the messages, and new sessions for the page."""
