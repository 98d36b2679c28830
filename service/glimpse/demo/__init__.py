"""The built-in demo model: an OpenAI-compatible upstream that measures the pictures it is shown (size, shape,
colours, brightness) and says so, for a Glimpse with no upstream LLM configured. It understands nothing."""
