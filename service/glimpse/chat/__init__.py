"""One chat turn: an ElevenLabs custom-LLM request translated for the upstream, with the conversation's
images, and the upstream's answer ready to relay."""
