"""The Glimpse operator: reconciles VoiceAgent resources into a proxy and an ElevenLabs agent."""

GROUP = "glimpse.dev"
VERSION = "v1alpha1"
PLURAL = "voiceagents"
KIND = "VoiceAgent"
FIELD_MANAGER = "glimpse-operator"
