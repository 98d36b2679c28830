"""Speaking to the ElevenLabs API. `errors` is shared with the operator, so this package imports nothing heavy."""
